/**
 * The control channel every benchmark server shares with `bench/run.mjs`.
 *
 * The server is a child process with a Node IPC channel. It says `ready` once
 * listening, then answers `usage`, `gc` and `stop` requests. CPU comes from
 * `process.cpuUsage()` (microsecond resolution, every thread of the process)
 * rather than `/proc/PID/stat`, whose 10 ms ticks are too coarse for a
 * broadcast that costs a few milliseconds.
 */
import { parseArgs } from 'node:util';

/** What a server reports about itself. */
export interface Usage {
  /** User + system CPU time of the whole process so far, in µs. */
  cpuUs: number;
  /** `process.hrtime` in µs: the clock of V8's CPU profiles. */
  monotonicUs: number;
  rss: number;
  heapUsed: number;
  external: number;
  arrayBuffers: number;
  /** Connections the server holds (-1 when it cannot tell). */
  connections: number;
  /** Server-specific figures (slow-consumer drops, and so on). */
  extras: Record<string, number>;
}

/** What a server program plugs into {@link serve}. */
export interface ServerProgram {
  /** Starts listening on 127.0.0.1:`port`; resolves once bound. */
  listen(port: number): Promise<void>;
  /** Connections currently held. */
  connections(): number;
  /** Server-specific figures. */
  extras?(): Record<string, number>;
  /** Closes the server. */
  close(): Promise<void>;
}

/** The command line every server takes: `--port=N --mode=NAME ...`. */
export interface ServerArgs {
  port: number;
  mode: string;
  /** How long a flood (slow-consumer scenario) runs, in ms. */
  floodMs: number;
  /** Lines per flood tick (one tick every {@link FLOOD_TICK_MS}). */
  floodLines: number;
}

/** Flood pacing: `floodLines` lines every this many ms, per connection. */
export const FLOOD_TICK_MS = 10;

/** The line a flood sends: 62 characters, 64 bytes with its `\r\n`. */
export const FLOOD_TEXT = 'flood-'.padEnd(62, 'x');

/** What the churn servers send a new connection. */
export const GREETING = 'welcome';

/** The churn servers' connection check: a ban list nobody is on. */
export const BANNED_HOSTS: ReadonlySet<string> = new Set(['192.0.2.1']);

/**
 * The `turn` scenario's answer to a command, before its prompt: a room's
 * title, description, exits and who is here (48–65 bytes each with `\r\n`).
 */
export const TURN_LINES: readonly string[] = [
  'The Great Hall of Castle Earwax [indoors, lit]',
  'Tapestries line the stone walls; a fire crackles in the hearth.',
  'Obvious exits: north, east, south, west, up and down.',
  'Here: Aldric the smith, a grey cat and three adventurers.',
];

/** The prompt that ends a turn (`turn` and `room` scenarios), made per command. */
export function turnPrompt(turn: number): string {
  return `<HP 120/120 MP 45/45 MV 90/90 | turn ${turn}> What now?`;
}

/**
 * The `room` scenario: a client's first line is `join <room>` (answered
 * with one line); each later line, `say <text>`, is answered with three
 * lines to the sender and one line, starting with this prefix, to every
 * other member of its room. The load generator tells them apart by it.
 */
export const ROOM_BROADCAST_PREFIX = '* ';

/** The second of the three lines a `room` sender gets. */
export const ROOM_HEARD =
  'Your words carry through the room; everyone here hears you.';

/** Parses the server command line. */
export function serverArgs(): ServerArgs {
  const { values } = parseArgs({
    options: {
      port: { type: 'string' },
      mode: { type: 'string' },
      'flood-ms': { type: 'string', default: '4000' },
      'flood-lines': { type: 'string', default: '320' },
    },
  });
  const port = Number(values.port);
  if (!Number.isInteger(port) || port <= 0 || port >= 32768) {
    // Below the ephemeral range: a loopback connect to a closed ephemeral
    // port can connect to itself.
    throw new Error(
      `--port must be an integer in 1..32767; got ${values.port}`,
    );
  }
  return {
    port,
    mode: values.mode ?? 'echo',
    floodMs: Number(values['flood-ms']),
    floodLines: Number(values['flood-lines']),
  };
}

interface Request {
  id: number;
  cmd: 'usage' | 'gc' | 'stop';
}

/** The longest a server may live, whatever happens to its parent. */
const MAX_LIFETIME_MS = 20 * 60_000;

/**
 * Runs a server program under the control channel: listens, reports
 * `ready`, answers requests, and exits on `stop`, when the parent goes away,
 * or after {@link MAX_LIFETIME_MS}.
 */
export async function serve(program: ServerProgram, port: number) {
  if (!process.send) throw new Error('Run me from bench/run.mjs (needs IPC).');
  const send = process.send.bind(process);
  // Never outlive the benchmark: an orphaned server would hold its port and
  // thousands of sockets.
  process.on('disconnect', () => process.exit(0));
  setTimeout(() => {
    console.error('benchmark server: maximum lifetime reached; exiting.');
    process.exit(2);
  }, MAX_LIFETIME_MS).unref();

  const usage = (): Usage => {
    const cpu = process.cpuUsage();
    const mem = process.memoryUsage();
    return {
      cpuUs: cpu.user + cpu.system,
      monotonicUs: Number(process.hrtime.bigint() / 1000n),
      rss: mem.rss,
      heapUsed: mem.heapUsed,
      external: mem.external,
      arrayBuffers: mem.arrayBuffers,
      connections: program.connections(),
      extras: program.extras?.() ?? {},
    };
  };

  process.on('message', (message: Request) => {
    const { id, cmd } = message;
    if (cmd === 'usage') {
      send({ type: 'reply', id, usage: usage() });
    } else if (cmd === 'gc') {
      void collectGarbage().then(() =>
        send({ type: 'reply', id, usage: usage() }),
      );
    } else if (cmd === 'stop') {
      // A bounded close: process.exit() also writes a --cpu-prof profile,
      // which a kill would lose.
      const timer = setTimeout(() => process.exit(0), 3000);
      void program
        .close()
        .catch((err: unknown) => console.error('close failed:', err))
        .finally(() => {
          clearTimeout(timer);
          process.exit(0);
        });
    }
  });

  await program.listen(port);
  send({ type: 'ready', port });
}

/**
 * Full garbage collections (with `--expose-gc`), twice with a turn of the
 * event loop between so that objects freed by the first (and their
 * finalizers and weak callbacks) are gone.
 */
async function collectGarbage(): Promise<void> {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (!gc) return;
  for (let i = 0; i < 2; i++) {
    gc();
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}
