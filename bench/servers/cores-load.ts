/**
 * A load generator of the `cores` scenario: one of one or more processes
 * (bench/run.mjs starts one per spare core, each pinned to its own), driving
 * the same server port, step by step as the runner commands. Lives with the
 * servers because it is compiled with them; the runner reads the server's
 * usage itself and sums the counts of every load generator, so the
 * measured windows are the same for all of them.
 *
 * Usage (from run.mjs only): `node cores-load.js '<json spec>'`, the spec
 * being `{ port, deadlineMs }`. Commands arrive as `{ id, cmd, ... }` and
 * are answered with `{ type: 'reply', id, ... }`:
 * - `echo { clients }`: opens `clients` connections, each doing ping-pong
 *   (a 64-byte line, wait for the whole echo, the next) from then on;
 * - `receivers { connections, trigger }`: opens `connections` receiving
 *   connections (and, with `trigger`, the one connection whose lines the
 *   server broadcasts);
 * - `send`: the trigger writes one line; each time every receiver of this
 *   process has the `n`th line, `{ type: 'delivered', line: n }` (from 1)
 *   is sent unasked;
 * - `count`: lines echoed, or delivered to receivers, so far; own CPU;
 * - `close`: stops, closes every connection;
 * - `exit`: answers with own CPU time, then exits.
 */
import { connect, type Socket } from 'node:net';
import { performance } from 'node:perf_hooks';

interface Spec {
  port: number;
  deadlineMs: number;
}

interface Command {
  id: number;
  cmd: 'echo' | 'receivers' | 'send' | 'count' | 'close' | 'exit';
  clients?: number;
  connections?: number;
  trigger?: boolean;
}

const spec = JSON.parse(process.argv[2] ?? '{}') as Spec;
const send = process.send?.bind(process);
if (!send || !spec.port) {
  console.error('cores-load: run me from bench/run.mjs');
  process.exit(2);
}
// Never outlive the benchmark.
process.on('disconnect', () => process.exit(0));
setTimeout(() => {
  console.error(`cores-load: deadline of ${spec.deadlineMs} ms reached.`);
  process.exit(3);
}, spec.deadlineMs).unref();

/** The line: 62 characters, 64 bytes on the wire with `\r\n`. */
const LINE = Buffer.from('cores-'.padEnd(62, '0123456789') + '\r\n');
const LINE_BYTES = LINE.length;
/** Connections being opened at once: below the servers' listen backlog. */
const CONNECT_CONCURRENCY = 200;

const sockets: Socket[] = [];
let trigger: Socket | undefined;
/** Lines echoed (echo) or delivered to a receiver (broadcast). */
let count = 0;
let running = true;
let socketErrors = 0;

function open(): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect({
      port: spec.port,
      host: '127.0.0.1',
      noDelay: true,
    });
    socket.once('connect', () => {
      socket.removeAllListeners('error');
      socket.on('error', () => socketErrors++);
      resolve(socket);
    });
    socket.once('error', reject);
  });
}

async function openMany(n: number): Promise<Socket[]> {
  const opened: Socket[] = new Array<Socket>(n);
  let next = 0;
  const worker = async () => {
    while (next < n) {
      const i = next++;
      opened[i] = await open();
    }
  };
  await Promise.all(
    Array.from({ length: Math.min(CONNECT_CONCURRENCY, n) }, worker),
  );
  return opened;
}

/** Ping-pong on every connection, counting whole echoes. */
async function echo(clients: number): Promise<void> {
  const opened = await openMany(clients);
  sockets.push(...opened);
  for (const socket of opened) {
    let bytes = 0;
    socket.on('data', (chunk: Buffer) => {
      bytes += chunk.length;
      while (bytes >= LINE_BYTES) {
        bytes -= LINE_BYTES;
        count++;
        if (running) socket.write(LINE);
      }
    });
    socket.write(LINE);
  }
}

/**
 * Receivers: counts every whole line each receives, and says when all of
 * them have line `n`.
 */
async function receivers(n: number, withTrigger: boolean): Promise<void> {
  const opened = await openMany(n);
  sockets.push(...opened);
  /** How many receivers have line `i + 1`. */
  const reached: number[] = [];
  for (const socket of opened) {
    let bytes = 0;
    let seen = 0;
    socket.on('data', (chunk: Buffer) => {
      bytes += chunk.length;
      while (bytes >= LINE_BYTES) {
        bytes -= LINE_BYTES;
        count++;
        const all = (reached[seen] ?? 0) + 1;
        reached[seen] = all;
        seen++;
        if (all === opened.length) send?.({ type: 'delivered', line: seen });
      }
    });
  }
  if (withTrigger) {
    [trigger] = await openMany(1);
    trigger.on('data', () => undefined);
  }
}

async function handle(command: Command): Promise<Record<string, unknown>> {
  switch (command.cmd) {
    case 'echo':
      await echo(command.clients ?? 0);
      return {};
    case 'receivers':
      await receivers(command.connections ?? 0, command.trigger === true);
      return {};
    case 'send':
      trigger?.write(LINE);
      return {};
    case 'count': {
      const cpu = process.cpuUsage();
      return { count, cpuUs: cpu.user + cpu.system, t: performance.now() };
    }
    case 'close':
      running = false;
      for (const socket of sockets) socket.end();
      trigger?.end();
      return { socketErrors };
    case 'exit': {
      const cpu = process.cpuUsage();
      for (const socket of sockets) socket.destroy();
      trigger?.destroy();
      return { cpuUs: cpu.user + cpu.system, socketErrors };
    }
  }
}

process.on('message', (command: Command) => {
  handle(command).then(
    (reply) =>
      send?.({ type: 'reply', id: command.id, ...reply }, () => {
        if (command.cmd === 'exit') process.exit(0);
      }),
    (err: unknown) => {
      console.error('cores-load:', err);
      process.exit(1);
    },
  );
});
send({ type: 'ready' });
