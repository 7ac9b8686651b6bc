/**
 * The load generator of the cluster-broadcast scenario (bench/run.mjs
 * starts it, pinned to its own core, with an IPC channel): the receivers
 * spread round-robin over the ports of every server process, one trigger
 * connection on the first. Lives with the servers because it is compiled
 * with them; bench/loadgen.mjs drives one server only.
 *
 * Usage (from run.mjs only): `node cluster-load.js '<json spec>'`, the spec
 * being `{ ports, connections, rounds, warmupRounds, burst, deadlineMs }`.
 * It asks run.mjs for the servers' usage (`{ type: 'request', cmd: 'usage' }`,
 * answered with the sum over every server process) and sends one `result`.
 *
 * Two phases, each line 64 bytes (62 characters and `\r\n`):
 * - latency: `rounds` broadcasts one after another (after `warmupRounds`),
 *   each waited for until every receiver has it: the delay of every
 *   delivered line (p50, p99) and of the last receiver of each round;
 * - throughput: `burst` trigger lines written at once: delivered lines per
 *   second until every receiver has them all, and the server processes'
 *   CPU (summed) per delivered line.
 */
import { connect, type Socket } from 'node:net';
import { performance } from 'node:perf_hooks';

interface Spec {
  ports: number[];
  connections: number;
  rounds: number;
  warmupRounds: number;
  burst: number;
  deadlineMs: number;
}

interface Usage {
  cpuUs: number;
  connections: number;
}

const spec = JSON.parse(process.argv[2] ?? '{}') as Spec;
const send = process.send?.bind(process);
if (!send || !Array.isArray(spec.ports)) {
  console.error('cluster-load: run me from bench/run.mjs');
  process.exit(2);
}
// Never outlive the benchmark.
process.on('disconnect', () => process.exit(0));
setTimeout(() => {
  console.error(`cluster-load: deadline of ${spec.deadlineMs} ms reached.`);
  process.exit(3);
}, spec.deadlineMs).unref();

const LINE = Buffer.from('bcast-'.padEnd(62, '0123456789') + '\r\n');
const LINE_BYTES = LINE.length;
const CONNECT_CONCURRENCY = 200;
const ROUND_TIMEOUT_MS = 30_000;

let requestId = 0;
const pending = new Map<number, (usage: Usage) => void>();
process.on('message', (message: { type: string; id: number; usage: Usage }) => {
  if (message.type !== 'reply') return;
  pending.get(message.id)?.(message.usage);
  pending.delete(message.id);
});

function usage(): Promise<Usage> {
  const id = ++requestId;
  return new Promise((resolve) => {
    pending.set(id, resolve);
    send?.({ type: 'request', id, cmd: 'usage' });
  });
}

function open(port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect({ port, host: '127.0.0.1', noDelay: true });
    socket.once('connect', () => resolve(socket));
    socket.once('error', reject);
  });
}

async function openReceivers(): Promise<Socket[]> {
  const sockets: Socket[] = new Array<Socket>(spec.connections);
  let next = 0;
  const worker = async () => {
    while (next < spec.connections) {
      const i = next++;
      sockets[i] = await open(spec.ports[i % spec.ports.length]);
    }
  };
  await Promise.all(
    Array.from(
      { length: Math.min(CONNECT_CONCURRENCY, spec.connections) },
      worker,
    ),
  );
  return sockets;
}

function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))];
}

async function main(): Promise<void> {
  const receivers = await openReceivers();
  const trigger = await open(spec.ports[0]);
  trigger.on('data', () => undefined);
  for (;;) {
    const u = await usage();
    if (u.connections === spec.connections + 1) break;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }

  /** When each line was sent (index: the line's number, from 0). */
  const sentAt: number[] = [];
  /** Delays of the measured deliveries, ms. */
  const delays: number[] = [];
  let measuring = false;
  /** Lines every receiver must have before `waiter` runs. */
  let target = 0;
  let reached = 0;
  let waiter: () => void = () => undefined;
  for (const socket of receivers) {
    let bytes = 0;
    let seen = 0;
    socket.on('data', (chunk: Buffer) => {
      bytes += chunk.length;
      const now = performance.now();
      while (bytes >= (seen + 1) * LINE_BYTES) {
        if (measuring) delays.push(now - sentAt[seen]);
        seen++;
        if (seen === target && ++reached === spec.connections) waiter();
      }
    });
  }
  const deliver = async (lines: number): Promise<number> => {
    reached = 0;
    target += lines;
    let timer: NodeJS.Timeout | undefined;
    const done = new Promise<void>((resolve, reject) => {
      waiter = resolve;
      timer = setTimeout(
        () =>
          reject(
            new Error(
              `broadcast: ${reached} of ${spec.connections} receivers had line ${target} after ${ROUND_TIMEOUT_MS} ms`,
            ),
          ),
        ROUND_TIMEOUT_MS,
      );
    });
    const start = performance.now();
    for (let i = 0; i < lines; i++) sentAt.push(start);
    trigger.write(lines === 1 ? LINE : Buffer.concat(Array(lines).fill(LINE)));
    await done.finally(() => clearTimeout(timer));
    return performance.now() - start;
  };

  for (let i = 0; i < spec.warmupRounds; i++) await deliver(1);
  const lastReceived: number[] = [];
  measuring = true;
  for (let i = 0; i < spec.rounds; i++) lastReceived.push(await deliver(1));
  measuring = false;

  const before = await usage();
  const burstMs = await deliver(spec.burst);
  const after = await usage();
  const delivered = spec.burst * spec.connections;

  const sortedDelays = Float64Array.from(delays).sort();
  const sortedLast = Float64Array.from(lastReceived).sort();
  for (const socket of [...receivers, trigger]) socket.destroy();
  const own = process.cpuUsage();
  send?.({
    type: 'result',
    cpuUs: own.user + own.system,
    results: [
      {
        connections: spec.connections,
        processes: spec.ports.length,
        p50Ms: percentile(sortedDelays, 0.5),
        p99Ms: percentile(sortedDelays, 0.99),
        lastReceivedMs: percentile(sortedLast, 0.5),
        linesPerSec: delivered / (burstMs / 1000),
        serverCpuUsPerLine: (after.cpuUs - before.cpuUs) / delivered,
        socketErrors: 0,
      },
    ],
  });
}

main().catch((err: unknown) => {
  console.error('cluster-load:', err);
  process.exit(1);
});
