/**
 * The benchmark suite: `npm run bench` (full, 9–12 min, bounded under 15),
 * `npm run bench -- --quick` (under 2 min), `npm run bench -- --profile`
 * (a CPU profile of the earwax server during the 50-client echo).
 *
 * Each server runs in its own process pinned to core 0, the load generator
 * in another pinned to core 1, over loopback. This runner coordinates them,
 * relays the load generator's CPU/memory readings of the server, and prints
 * one markdown table (also written to bench/results/latest.md).
 *
 * Two scenarios go beyond one server process and one load generator:
 * `crowd` holds 100,000 idle connections (scaled down to the open-file
 * limit) from several loopback source addresses in one server process (run
 * only when `--only` names it: it takes minutes at 100,000);
 * `cores` runs nestjs-earwax as one process and as a Node cluster of
 * several joined by the Redis adapter (by default 2 processes sharing core
 * 0: what a second process costs; `--cores=N` spreads N over N cores).
 *
 * Options:
 *   --quick          short windows, one repetition (a preview, not a result)
 *   --reps=N         repetitions of every scenario
 *   --only=a,b       scenarios to run: echo, turn, room, broadcast, churn, idle,
 *                    slow, scale, cluster, cores, crowd (crowd only when named)
 *   --profile[=srv[:scenario]]  profile one server (default earwaxLine) during
 *                    the 50-client echo, or the first step of another
 *                    scenario (e.g. earwaxLine:turn, plain:churn), instead
 *   --compare=path   also run another build of the library (its index.js)
 *                    wherever earwax line or telnet mode runs, as "candidate"
 *   --otel           also run earwax line mode with OpenTelemetry on, in the
 *                    echo scenario: no-op spans (no SDK), and an SDK
 *                    sampling every span (see servers/otel.ts)
 *   --server-flags=f Node/V8 flags for every server process alike (e.g.
 *                    "--max-semi-space-size=1"), stated in the report
 *   --no-build       use the existing dist/ and bench build
 *   --out=name       write bench/results/<name>.md and .json (default latest)
 *   --cores=N        cores scenario: N server processes pinned to cores
 *                    0..N-1, load generators on the other cores (falls back,
 *                    with a note, when the machine has fewer than N+1)
 *
 * See bench/README.md for what each scenario measures.
 */
import { execFileSync, spawn } from 'node:child_process';
import {
  accessSync,
  constants,
  mkdirSync,
  readFileSync,
  writeFileSync,
} from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import { resolve } from 'node:path';
import { URL, fileURLToPath } from 'node:url';
import process from 'node:process';
import { parseArgs } from 'node:util';
import { performance } from 'node:perf_hooks';
import { clearInterval, setInterval } from 'node:timers';
import { setTimeout as sleep } from 'node:timers/promises';
import * as prettier from 'prettier';
import {
  fileLimits,
  hasTaskset,
  startNode,
  stopChild,
  waitForMessage,
} from './lib/children.mjs';
import { waitForQuiet, watchForeignLoad } from './lib/foreign-load.mjs';
import { profileMarkdown, summarizeProfile } from './lib/profile.mjs';
import { collect, formatNumber, resultsTable } from './lib/report.mjs';

const root = fileURLToPath(new URL('..', import.meta.url));
const here = (path) => fileURLToPath(new URL(path, import.meta.url));
const resultsDir = here('results/');
const buildDir = `${root}dist-dev/bench-build/bench/servers/`;

const { values: options } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    reps: { type: 'string' },
    only: { type: 'string' },
    profile: { type: 'string' },
    compare: { type: 'string' },
    out: { type: 'string', default: 'latest' },
    'server-flags': { type: 'string', default: '' },
    'no-build': { type: 'boolean', default: false },
    cores: { type: 'string' },
    otel: { type: 'boolean', default: false },
  },
  // `--profile` alone means the default server.
  args: process.argv
    .slice(2)
    .map((a) => (a === '--profile' ? '--profile=earwaxLine' : a)),
});
const quick = options.quick;
/** Extra Node/V8 flags, the same for every server (never the load generator). */
const serverFlags = options['server-flags'].split(/\s+/).filter(Boolean);
const log = (...args) => console.error(...args);

// ---------------------------------------------------------------------------
// The servers and scenarios.

/** Each server: its program, its `--mode` per scenario, its echo protocol. */
const servers = {
  plain: {
    label: 'plain Node `net`',
    script: 'plain.js',
    modes: {
      echo: 'echo',
      // One socket.write per turn: the least a server can do.
      turn: 'turn-one',
      // Output coalesced by hand, once per event-loop turn.
      room: 'room',
      broadcast: 'broadcast',
      churn: 'churn',
      idle: 'echo',
      slow: 'flood',
      scale: 'echo',
      crowd: 'echo',
    },
    protocol: 'line',
  },
  plainTurnLines: {
    label: 'plain Node `net`, one write per line',
    script: 'plain.js',
    modes: { turn: 'turn-lines' },
    protocol: 'line',
  },
  nest: {
    label: 'NestJS TCP (`Transport.TCP`)',
    script: 'nest-tcp.js',
    modes: { echo: 'echo' },
    protocol: 'nest',
  },
  earwaxLine: {
    label: 'nestjs-earwax, line mode',
    script: 'earwax.js',
    modes: {
      echo: 'line',
      turn: 'turn',
      room: 'room',
      broadcast: 'broadcast',
      churn: 'churn',
      idle: 'line',
      slow: 'flood',
      scale: 'line',
      crowd: 'line',
    },
    protocol: 'line',
  },
  earwaxRaw: {
    label: 'nestjs-earwax, raw mode',
    script: 'earwax.js',
    modes: { echo: 'raw' },
    protocol: 'line',
  },
  earwaxTelnet: {
    label: 'nestjs-earwax, telnet mode',
    script: 'earwax.js',
    modes: { echo: 'telnet' },
    protocol: 'telnet',
  },
  // The cluster-broadcast scenario: the same broadcast server, alone, or
  // as three processes joined by the Redis adapter (run by runCluster).
  earwaxOneProcess: {
    label: 'nestjs-earwax, one process',
    script: 'earwax-cluster.js',
    modes: { cluster: 'single' },
    processes: 1,
  },
  earwaxThreeProcesses: {
    label: 'nestjs-earwax, 3 processes + RedisAdapter',
    script: 'earwax-cluster.js',
    modes: { cluster: 'cluster' },
    processes: 3,
    redis: true,
  },
  // The cores scenario: one process, or a Node cluster of several joined by
  // the Redis adapter (run by runCores; the mode is each step's kind).
  earwaxCoresOne: {
    label: 'nestjs-earwax, 1 process',
    script: 'earwax-cores.js',
    modes: { cores: 'echo, broadcast' },
    processes: 1,
  },
  earwaxCoresMany: {
    label: 'nestjs-earwax, N processes (cluster) + RedisAdapter',
    script: 'earwax-cores.js',
    modes: { cores: 'echo, broadcast' },
    processes: 'many',
    redis: true,
  },
};

if (options.compare) {
  // A candidate build (a copy of dist/ with a change), A/B against the
  // current one in the same run. Keep it inside the repository (dist-dev/ is
  // ignored) so that its imports of @nestjs/* resolve to the same packages.
  servers.earwaxCandidate = {
    ...servers.earwaxLine,
    label: `nestjs-earwax, line mode, candidate (${options.compare})`,
    env: { EARWAX_PACKAGE: resolve(options.compare) },
  };
  servers.earwaxTelnetCandidate = {
    ...servers.earwaxTelnet,
    label: `nestjs-earwax, telnet mode, candidate (${options.compare})`,
    env: { EARWAX_PACKAGE: resolve(options.compare) },
  };
}

if (options.otel) {
  // What the openTelemetry option costs when it is on (see servers/otel.ts):
  // no-op spans (the API without an SDK), and an SDK sampling every span.
  servers.earwaxOtelNoop = {
    ...servers.earwaxLine,
    label:
      'nestjs-earwax, line mode, openTelemetry: true, no SDK (no-op spans)',
    env: { EARWAX_OTEL: 'noop' },
  };
  servers.earwaxOtelSdk = {
    ...servers.earwaxLine,
    label: 'nestjs-earwax, line mode, OpenTelemetry SDK (every span sampled)',
    env: { EARWAX_OTEL: 'sdk' },
  };
}

const KiB = 1024;
const MiB = 1024 * 1024;
const notes = [];

/** Connections a process may hold, given the open-file limit. */
function fitConnections(wanted, what) {
  const limit = Math.min(fileLimits.hard, 1 << 20) - 200;
  if (wanted <= limit) return wanted;
  notes.push(
    `${what}: scaled down from ${wanted} to ${limit} connections (open-file hard limit ${fileLimits.hard}).`,
  );
  return limit;
}

const echoClients = [1, 50, 500];
// Echo figures move most from run to run on a small VM, hence more
// repetitions of shorter windows there.
const echoReps = Number(options.reps ?? (quick ? 1 : 6));
const reps = Number(options.reps ?? (quick ? 1 : 5));
const memoryReps = Number(options.reps ?? (quick ? 1 : 3));
const broadcastSizes = [1000, 10_000].map((n) =>
  fitConnections(n, 'broadcast'),
);
const idleConnections = fitConnections(10_000, 'idle memory');
const clusterConnections = fitConnections(1000, 'cluster broadcast');
const scaleConnections = fitConnections(15_000, 'many connections');
/**
 * The crowd scenario's aim; scaled down (with a note) only when it runs,
 * which is only when `--only` names it: at 100,000 connections it takes
 * minutes, more than the full run's bound leaves.
 */
const CROWD_WANTED = 100_000;
/** Each source address has ~28,000 ephemeral ports (32768–60999): 25,000 each. */
const CROWD_PER_ADDRESS = 25_000;
const crowdConnections = options.only?.split(',').includes('crowd')
  ? fitConnections(CROWD_WANTED, 'crowd (one process)')
  : CROWD_WANTED;
/**
 * The cores scenario's layout. By default (the cost of a second process):
 * 2 server processes, every one of them (and Redis) on core 0, the load
 * generator on core 1. With `--cores=N`: N server processes, one per core
 * 0..N-1, and a load generator on each remaining core (at most 8).
 */
const coresPlan = (() => {
  const available = os.availableParallelism();
  const cost = {
    scaling: false,
    processes: 2,
    serverCores: '0',
    workerCores: undefined,
    loadCores: ['1'],
    where: 'every server process and Redis on core 0',
  };
  if (options.cores === undefined) return cost;
  const wanted = Number(options.cores);
  if (!Number.isInteger(wanted) || wanted < 1) {
    throw new Error(`--cores: a whole number of cores, not ${options.cores}`);
  }
  const selected = !options.only || options.only.split(',').includes('cores');
  let n = wanted;
  if (n + 1 > available) {
    n = available - 1;
    if (selected) {
      notes.push(
        `--cores=${wanted}: this machine has ${available} cores; ${wanted} server processes on cores of their own and a load generator need ${wanted + 1}. ` +
          (n >= 2
            ? `Ran ${n} server processes instead.`
            : 'Measured the cost of 2 processes on one core instead (the default).'),
      );
    }
  }
  if (n < 2) {
    if (selected && wanted === 1) {
      notes.push(
        '--cores=1: one server process has nothing to compare; measured the cost of 2 processes on one core instead (the default).',
      );
    }
    return cost;
  }
  const loadCores = [];
  for (let core = n; core < available && loadCores.length < 8; core++) {
    loadCores.push(String(core));
  }
  return {
    scaling: true,
    processes: n,
    serverCores: `0-${n - 1}`,
    workerCores: Array.from({ length: n }, (_, i) => i).join(','),
    loadCores,
    where: `server processes on cores 0–${n - 1}, ${loadCores.length} load generator${loadCores.length > 1 ? 's' : ''} on cores ${loadCores[0]}–${loadCores[loadCores.length - 1]}`,
  };
})();
servers.earwaxCoresMany.label = `nestjs-earwax, ${coresPlan.processes} processes (\`node:cluster\`) + RedisAdapter`;
const floodMs = quick ? 3000 : 4000;
/** 800 lines of 64 bytes every 10 ms: 5.1 MB/s to each slow client. */
const floodLines = 800;

const scenarios = [
  {
    key: 'echo',
    servers: ['plain', 'nest', 'earwaxLine', 'earwaxRaw', 'earwaxTelnet'],
    reps: echoReps,
    steps: echoClients.map((clients) => ({
      kind: 'echo',
      label: `echo, ${clients} client${clients > 1 ? 's' : ''}`,
      clients,
      warmupMs: quick ? 300 : 750,
      durationMs: quick ? 1000 : 2500,
    })),
    metrics: [
      { key: 'rps', label: 'round trips/s', get: (r) => r.opsPerSec },
      {
        key: 'cpu',
        label: 'server CPU µs/line',
        get: (r) => r.serverCpuUsPerOp,
      },
      { key: 'p50', label: 'p50 latency ms', get: (r) => r.p50Ms },
      { key: 'p99', label: 'p99 latency ms', get: (r) => r.p99Ms },
      {
        key: 'busy',
        label: 'server CPU % (of one core)',
        get: (r) => r.serverCpuPct,
      },
    ],
  },
  {
    key: 'turn',
    servers: ['plain', 'plainTurnLines', 'earwaxLine'],
    reps: memoryReps,
    steps: [
      {
        kind: 'turn',
        label: 'turn (5 reply lines per command), 50 clients',
        clients: 50,
        replyLines: 5,
        warmupMs: quick ? 300 : 750,
        durationMs: quick ? 1000 : 2500,
      },
    ],
    metrics: [
      { key: 'rate', label: 'commands/s', get: (r) => r.opsPerSec },
      {
        key: 'cpu',
        label: 'server CPU µs/command',
        get: (r) => r.serverCpuUsPerOp,
      },
      {
        key: 'p50',
        label: 'p50 latency ms (until the 5th line)',
        get: (r) => r.p50Ms,
      },
      {
        key: 'p99',
        label: 'p99 latency ms (until the 5th line)',
        get: (r) => r.p99Ms,
      },
    ],
  },
  {
    key: 'room',
    servers: ['plain', 'earwaxLine'],
    reps: memoryReps,
    steps: [
      {
        kind: 'room',
        label:
          'room, 200 players in 10 rooms (3 lines to the sender, 19 to the room)',
        clients: 200,
        rooms: 10,
        replyLines: 3,
        warmupMs: quick ? 300 : 750,
        durationMs: quick ? 1000 : 2500,
      },
    ],
    metrics: [
      { key: 'rate', label: 'commands/s', get: (r) => r.opsPerSec },
      {
        key: 'cpu',
        label: 'server CPU µs/command',
        get: (r) => r.serverCpuUsPerOp,
      },
      {
        key: 'cpuLine',
        label: 'server CPU µs per delivered line',
        get: (r) => r.serverCpuUsPerLine,
      },
      {
        key: 'p99',
        label: "p99 latency ms (the sender's 3 lines)",
        get: (r) => r.p99Ms,
      },
    ],
  },
  {
    key: 'broadcast',
    servers: ['plain', 'earwaxLine'],
    reps,
    steps: broadcastSizes.map((connections) => ({
      kind: 'broadcast',
      label: `broadcast to ${connections.toLocaleString('en-US')}`,
      connections,
      rounds: quick ? 5 : 20,
      warmupRounds: 2,
    })),
    metrics: [
      {
        key: 'cpu',
        label: 'server CPU µs per delivered line',
        get: (r) => r.serverCpuUsPerLine,
      },
      {
        key: 'last',
        label: 'ms until the last client has it',
        get: (r) => r.lastReceivedMs,
      },
    ],
  },
  {
    key: 'churn',
    servers: ['plain', 'earwaxLine'],
    reps,
    steps: [
      {
        kind: 'churn',
        label: 'connection churn (32 at a time)',
        concurrency: 32,
        warmupMs: quick ? 300 : 1000,
        durationMs: quick ? 1000 : 3000,
      },
    ],
    metrics: [
      { key: 'rate', label: 'connections/s', get: (r) => r.connectionsPerSec },
      {
        key: 'cpu',
        label: 'server CPU µs/connection',
        get: (r) => r.serverCpuUsPerConnection,
      },
    ],
  },
  {
    key: 'idle',
    servers: ['plain', 'earwaxLine'],
    reps: memoryReps,
    steps: [
      {
        kind: 'idle',
        label: `idle memory, ${idleConnections.toLocaleString('en-US')} connections`,
        connections: idleConnections,
        cycles: 2,
      },
    ],
    metrics: [
      {
        key: 'rss',
        label: 'RSS per connection, KiB',
        get: (r) => r.rssPerConnection / KiB,
      },
      {
        key: 'heap',
        label: 'V8 heap per connection, KiB',
        get: (r) => r.heapPerConnection / KiB,
      },
      {
        key: 'rssAfter',
        label: 'RSS after all closed vs before, MiB',
        get: (r) => r.rssAfterCloseDelta / MiB,
      },
      {
        key: 'rssGrowth',
        label: 'RSS growth, 1st to 2nd wave (after close), MiB',
        get: (r) => r.rssGrowthBetweenWaves / MiB,
      },
      {
        key: 'heapRetained',
        label: 'V8 heap retained after close, KiB',
        get: (r) => r.heapRetained / KiB,
      },
    ],
  },
  {
    key: 'slow',
    servers: ['plain', 'earwaxLine'],
    reps: memoryReps,
    steps: [
      {
        kind: 'slow',
        label: `slow consumers (10 never read; 5 MB/s each for ${floodMs / 1000} s)`,
        clients: 10,
        floodMs,
      },
    ],
    metrics: [
      {
        key: 'peak',
        label: 'server RSS peak growth, MiB',
        get: (r) => r.rssPeakDelta / MiB,
      },
      {
        key: 'buffered',
        label: 'most output buffered for one client, KiB',
        get: (r) => r.maxBuffered / KiB,
      },
      {
        key: 'drops',
        label: 'clients dropped (slow_consumer)',
        get: (r) => r.slowConsumerDrops,
      },
    ],
  },
  {
    key: 'cluster',
    servers: ['earwaxOneProcess', 'earwaxThreeProcesses'],
    reps: memoryReps,
    run: runCluster,
    steps: [
      {
        kind: 'cluster',
        label: `cluster broadcast, ${clusterConnections.toLocaleString('en-US')} connections`,
        connections: clusterConnections,
        warmupRounds: 3,
        rounds: quick ? 10 : 30,
        burst: quick ? 50 : 200,
      },
    ],
    metrics: [
      {
        key: 'rate',
        label: `delivered lines/s (${quick ? 50 : 200} broadcasts at once)`,
        get: (r) => r.linesPerSec,
      },
      {
        key: 'cpu',
        label: 'server CPU µs per delivered line (all processes)',
        get: (r) => r.serverCpuUsPerLine,
      },
      {
        key: 'p50',
        label: 'p50 latency ms (each delivered line)',
        get: (r) => r.p50Ms,
      },
      {
        key: 'p99',
        label: 'p99 latency ms (each delivered line)',
        get: (r) => r.p99Ms,
      },
      {
        key: 'last',
        label: 'ms until the last receiver has it',
        get: (r) => r.lastReceivedMs,
      },
    ],
  },
  {
    key: 'scale',
    servers: ['plain', 'earwaxLine'],
    reps: memoryReps,
    steps: [
      {
        kind: 'scale',
        label: `${(scaleConnections + 1).toLocaleString('en-US')} connections, probe ping-pong`,
        connections: scaleConnections,
        backgroundPerSec: scaleConnections / 10,
        warmupMs: 1000,
        durationMs: quick ? 3000 : 8000,
      },
    ],
    metrics: [
      { key: 'p50', label: 'probe p50 latency ms', get: (r) => r.p50Ms },
      { key: 'p99', label: 'probe p99 latency ms', get: (r) => r.p99Ms },
      { key: 'max', label: 'probe max latency ms', get: (r) => r.maxMs },
      { key: 'cpu', label: 'server CPU %', get: (r) => r.serverCpuPct },
    ],
  },
  {
    key: 'crowd',
    servers: ['plain', 'earwaxLine'],
    reps: memoryReps,
    // Run only when named: `--only=crowd`.
    optIn: true,
    steps: [
      {
        kind: 'crowd',
        label: `${crowdConnections.toLocaleString('en-US')} idle connections in one process, probe ping-pong`,
        connections: crowdConnections,
        // As many addresses as the full 100,000 needs, even when scaled down.
        sourceAddresses: Math.ceil(CROWD_WANTED / CROWD_PER_ADDRESS),
        concurrency: 200,
        openBudgetMs: 120_000,
        warmupMs: 1000,
        durationMs: quick ? 3000 : 8000,
        // Opening, the GCs and closing, on top of the probe's time.
        budgetMs: 120_000 + 60_000 + crowdConnections,
      },
    ],
    metrics: [
      { key: 'held', label: 'connections held', get: (r) => r.held },
      {
        key: 'rss',
        label: 'RSS per connection, KiB',
        get: (r) => r.rssPerConnection / KiB,
      },
      {
        key: 'heap',
        label: 'V8 heap per connection, KiB',
        get: (r) => r.heapPerConnection / KiB,
      },
      { key: 'p50', label: 'probe p50 latency ms', get: (r) => r.p50Ms },
      { key: 'p99', label: 'probe p99 latency ms', get: (r) => r.p99Ms },
      { key: 'max', label: 'probe max latency ms', get: (r) => r.maxMs },
    ],
  },
  {
    key: 'cores',
    servers: ['earwaxCoresOne', 'earwaxCoresMany'],
    reps: memoryReps,
    run: runCores,
    steps: [
      {
        kind: 'echo',
        label: `cores: echo, 50 clients (${coresPlan.where})`,
        clients: 50,
        warmupMs: quick ? 300 : 750,
        durationMs: quick ? 1000 : 2500,
      },
      {
        kind: 'broadcast',
        label: `cores: broadcast to ${(1000).toLocaleString('en-US')} (${coresPlan.where})`,
        connections: fitConnections(1000, 'cores broadcast'),
        // Broadcasts in flight at once: the next is sent as soon as every
        // receiver has the one this many before it.
        inFlight: 8,
        warmupMs: quick ? 300 : 750,
        durationMs: quick ? 1000 : 2500,
      },
    ],
    metrics: [
      {
        key: 'rate',
        label: 'lines/s (echoed; delivered)',
        get: (r) => r.linesPerSec,
      },
      {
        key: 'cpu',
        label: 'server CPU µs per line (all processes)',
        get: (r) => r.serverCpuUsPerLine,
      },
      {
        key: 'redis',
        label: 'redis-server CPU µs per line',
        get: (r) => r.redisCpuUsPerLine,
      },
      {
        key: 'busy',
        label: 'server CPU % (all processes; 100 = one core)',
        get: (r) => r.serverCpuPct,
      },
    ],
  },
];

if (servers.earwaxCandidate) {
  for (const scenario of scenarios) {
    for (const [server, candidate] of [
      ['earwaxLine', 'earwaxCandidate'],
      ['earwaxTelnet', 'earwaxTelnetCandidate'],
    ]) {
      const at = scenario.servers.indexOf(server);
      if (at !== -1) scenario.servers.splice(at + 1, 0, candidate);
    }
  }
}

if (servers.earwaxOtelNoop) {
  for (const scenario of scenarios) {
    const at = scenario.servers.indexOf('earwaxLine');
    if (at !== -1 && scenario.key === 'echo') {
      scenario.servers.splice(at + 1, 0, 'earwaxOtelNoop', 'earwaxOtelSdk');
    }
  }
}

/** Rows that are not measurements: the figures recorded for the original Python server. */
const PYTHON =
  'earwax_server 0.1.2 (Python, gevent): recorded, not re-measured';
const recorded = [
  {
    scenario: 'echo',
    step: echoClients.indexOf(50),
    server: PYTHON,
    metric: 'server CPU µs/line',
    value: '33.7',
  },
  {
    scenario: 'idle',
    step: 0,
    server: PYTHON,
    metric: 'RSS per connection, KB',
    value: '17.2',
  },
];

// ---------------------------------------------------------------------------
// Running one server under one load.

let portCounter = 0;
/** Fixed ports, below the ephemeral range, rotated so no run waits on another. */
const nextPort = () => 20000 + (portCounter++ % 100);

/** A budget for a load generator's steps, generous: it only catches hangs. */
function deadlineFor(steps) {
  let ms = 30_000;
  for (const step of steps) {
    ms += (step.warmupMs ?? 0) + (step.durationMs ?? 0) + (step.floodMs ?? 0);
    ms += step.budgetMs ?? 0;
    ms += 60_000;
  }
  return ms;
}

/**
 * Starts `serverKey` in scenario `scenarioKey`'s mode, runs the load
 * generator's `steps` against it, stops both. Returns the step results and
 * the other load seen meanwhile (% of a core).
 */
async function runOnce(serverKey, scenarioKey, steps, { cpuProfile } = {}) {
  const server = servers[serverKey];
  const port = nextPort();
  const maxConnections = Math.max(
    ...steps.map((s) => (s.connections ?? s.clients ?? 0) + 1),
  );
  const files = maxConnections + 500;
  const serverArgs = ['--expose-gc', ...serverFlags];
  if (cpuProfile) {
    serverArgs.push(
      '--cpu-prof',
      `--cpu-prof-dir=${cpuProfile.dir}`,
      `--cpu-prof-name=${cpuProfile.name}`,
    );
  }
  serverArgs.push(
    buildDir + server.script,
    `--port=${port}`,
    `--mode=${server.modes[scenarioKey]}`,
    `--flood-ms=${floodMs}`,
    `--flood-lines=${floodLines}`,
  );
  const child = startNode(serverArgs, {
    core: 0,
    files,
    label: `${serverKey} server`,
    env: server.env,
  });
  let loadgen;
  try {
    await waitForMessage(child, (m) => m.type === 'ready', 30_000);
    const foreignLoad = watchForeignLoad(child.pid);
    const spec = {
      port,
      protocol: server.protocol,
      deadlineMs: deadlineFor(steps),
      steps,
    };
    loadgen = startNode([here('loadgen.mjs'), JSON.stringify(spec)], {
      core: 1,
      files,
      label: 'load generator',
    });
    // Relay the load generator's readings of the server.
    loadgen.on('message', (m) => {
      if (m.type === 'request' && child.connected) {
        child.send({ id: m.id, cmd: m.cmd }, () => {});
      }
    });
    child.on('message', (m) => {
      if (m.type === 'reply' && loadgen.connected) loadgen.send(m, () => {});
    });
    const { results, cpuUs } = await waitForMessage(
      loadgen,
      (m) => m.type === 'result',
      spec.deadlineMs + 5000,
    );
    return { results, foreignPct: foreignLoad(cpuUs) };
  } finally {
    if (loadgen) await stopChild(loadgen, 2000);
    await stopChild(child);
  }
}

// ---------------------------------------------------------------------------
// The cluster-broadcast scenario: several server processes and a Redis.

/** Where Debian's redis-server package puts it, or on the PATH. */
function findRedisServer() {
  const dirs = [
    ...(process.env.PATH ?? '').split(':'),
    '/usr/bin',
    '/usr/local/bin',
  ];
  for (const dir of dirs.filter(Boolean)) {
    try {
      accessSync(`${dir}/redis-server`, constants.X_OK);
      return `${dir}/redis-server`;
    } catch {
      // Not there.
    }
  }
  throw new Error(
    'cluster scenario: redis-server is not installed (apt-get install redis-server).',
  );
}

/** A redis-server on `port`, pinned to `core`, nothing persisted; resolves when ready. */
async function startRedis(port, core) {
  const args = [
    findRedisServer(),
    '--port',
    String(port),
    '--bind',
    '127.0.0.1',
    '--save',
    '',
    '--appendonly',
    'no',
    '--loglevel',
    'notice',
  ];
  const argv = hasTaskset ? ['-c', String(core), ...args] : args.slice(1);
  const child = spawn(hasTaskset ? 'taskset' : args[0], argv, {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const kill = () => child.kill('SIGKILL');
  process.on('exit', kill);
  child.once('exit', () => process.off('exit', kill));
  let output = '';
  await new Promise((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`redis-server did not start: ${output}`)),
      10_000,
    );
    const keep = (chunk) => {
      output += chunk;
      if (/Ready to accept connections/.test(output)) {
        clearTimeout(timer);
        resolve();
      }
    };
    child.stdout.on('data', keep);
    child.stderr.on('data', keep);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`redis-server exited (${code}): ${output}`));
    });
  });
  return child;
}

/** utime + stime of a process from /proc, µs (clock-tick resolution). */
function procCpuUs(pid) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) * 10_000;
  } catch {
    return 0;
  }
}

let usageSeq = 1_000_000;
/** One server's usage, through its control channel. */
async function askUsage(child) {
  const id = ++usageSeq;
  const reply = waitForMessage(
    child,
    (m) => m.type === 'reply' && m.id === id,
    10_000,
  );
  child.send({ id, cmd: 'usage' }, () => {});
  return (await reply).usage;
}

/**
 * Runs the cluster-broadcast load against `serverKey`: its processes (all on
 * core 0, with the Redis they share: the same CPU as the one process of the
 * baseline), the load generator on core 1. Servers' usage is summed for the
 * load generator.
 */
async function runCluster(serverKey, scenarioKey, steps) {
  const server = servers[serverKey];
  const step = steps[0];
  const files = step.connections + 500;
  const children = [];
  let redis;
  let loadgen;
  try {
    const env = { ...server.env };
    if (server.redis) {
      const redisPort = nextPort();
      redis = await startRedis(redisPort, 0);
      env.REDIS_URL = `redis://127.0.0.1:${redisPort}`;
    }
    const ports = [];
    for (let i = 0; i < server.processes; i++) {
      const port = nextPort();
      ports.push(port);
      children.push(
        startNode(
          [
            buildDir + server.script,
            `--port=${port}`,
            `--mode=${server.modes[scenarioKey]}`,
          ],
          { core: 0, files, label: `${serverKey} server ${i + 1}`, env },
        ),
      );
    }
    await Promise.all(
      children.map((c) => waitForMessage(c, (m) => m.type === 'ready', 30_000)),
    );
    // The first server is the one watched; the others and Redis are the
    // benchmark's own load, added below.
    const foreignLoad = watchForeignLoad(children[0].pid);
    const othersCpu = async () => {
      let us = redis ? procCpuUs(redis.pid) : 0;
      for (const child of children.slice(1))
        us += (await askUsage(child)).cpuUs;
      return us;
    };
    const othersBefore = await othersCpu();
    const spec = {
      ports,
      connections: step.connections,
      rounds: step.rounds,
      warmupRounds: step.warmupRounds,
      burst: step.burst,
      deadlineMs: 180_000,
    };
    loadgen = startNode([buildDir + 'cluster-load.js', JSON.stringify(spec)], {
      core: 1,
      files,
      label: 'cluster load generator',
    });
    loadgen.on('message', (m) => {
      if (m.type !== 'request') return;
      void Promise.all(children.map(askUsage)).then(
        (all) => {
          const usage = {
            cpuUs: all.reduce((sum, u) => sum + u.cpuUs, 0),
            connections: all.reduce((sum, u) => sum + u.connections, 0),
          };
          if (loadgen.connected)
            loadgen.send({ type: 'reply', id: m.id, usage }, () => {});
        },
        (err) => log(`cluster: usage failed: ${err.message}`),
      );
    });
    const { results, cpuUs } = await waitForMessage(
      loadgen,
      (m) => m.type === 'result',
      spec.deadlineMs + 5000,
    );
    const others = (await othersCpu()) - othersBefore;
    return { results, foreignPct: foreignLoad(cpuUs + others) };
  } finally {
    if (loadgen) await stopChild(loadgen, 2000);
    await Promise.all(children.map((c) => stopChild(c)));
    redis?.kill('SIGKILL');
  }
}

/** The cluster broadcast against the one process, as ratios of medians. */
function clusterComparison(results) {
  const scenario = scenarios.find((s) => s.key === 'cluster');
  const runs = results.cluster;
  if (!scenario || !runs) return undefined;
  const ratio = (key) => {
    const metric = scenario.metrics.find((m) => m.key === key);
    const three = collect(runs.earwaxThreeProcesses, 0, metric).median;
    const one = collect(runs.earwaxOneProcess, 0, metric).median;
    return `${(three / one).toFixed(2)}×`;
  };
  return (
    'Cluster broadcast, 3 processes + RedisAdapter against one process ' +
    `(same core): throughput ${ratio('rate')}, server CPU per delivered line ${ratio('cpu')}, ` +
    `p50 ${ratio('p50')}, p99 ${ratio('p99')}, last receiver ${ratio('last')}.`
  );
}

// ---------------------------------------------------------------------------
// The cores scenario: one process, or a Node cluster joined by Redis, under
// the same load from one or more load generators.

/**
 * redis-server's CPU time, user + system of all its threads in µs, from
 * `INFO cpu` (µs resolution; /proc's 10 ms ticks are too coarse for a
 * window in which Redis works for a few milliseconds).
 */
function redisCpuUs(port) {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ port, host: '127.0.0.1' });
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error('redis-server did not answer INFO'));
    }, 5000);
    let text = '';
    socket.setEncoding('latin1');
    socket.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    socket.on('data', (data) => {
      text += data;
      // A bulk string: `$<length>\r\n<body>\r\n`.
      const header = /^\$(\d+)\r\n/.exec(text);
      if (!header || text.length < header[0].length + Number(header[1])) return;
      clearTimeout(timer);
      socket.destroy();
      const field = (name) =>
        Number(new RegExp(`^${name}:([\\d.]+)`, 'm').exec(text)?.[1]);
      resolve((field('used_cpu_sys') + field('used_cpu_user')) * 1e6);
    });
    socket.write('INFO cpu\r\n');
  });
}

/** Sends `command` to a cores load generator; resolves with its reply. */
let coresCommandId = 0;
function commandLoad(loadgen, command, timeoutMs = 60_000) {
  const id = ++coresCommandId;
  const reply = waitForMessage(
    loadgen,
    (m) => m.type === 'reply' && m.id === id,
    timeoutMs,
  );
  loadgen.send({ ...command, id }, () => {});
  return reply;
}

/** `total` split into `parts` shares as even as can be. */
function shares(total, parts) {
  return Array.from(
    { length: parts },
    (_, i) => Math.floor(total / parts) + (i < total % parts ? 1 : 0),
  );
}

/**
 * A reading of the server (every process, summed), of Redis and of every
 * load generator's count, with the clock read on both sides and the
 * midpoint used (see loadgen.mjs `mark`).
 */
async function coresMark(child, loadgens, redis) {
  const t0 = performance.now();
  const [usage, redisUs, ...counts] = await Promise.all([
    askUsage(child),
    redis ? redisCpuUs(redis.port) : NaN,
    ...loadgens.map((g) => commandLoad(g, { cmd: 'count' })),
  ]);
  const t1 = performance.now();
  return {
    usage,
    count: counts.reduce((sum, c) => sum + c.count, 0),
    redisUs,
    t: (t0 + t1) / 2,
  };
}

/** The figures between two marks. */
function coresBetween(a, b) {
  const lines = b.count - a.count;
  const seconds = (b.t - a.t) / 1000;
  const cpuUs = b.usage.cpuUs - a.usage.cpuUs;
  return {
    lines,
    seconds,
    linesPerSec: lines / seconds,
    serverCpuUsPerLine: cpuUs / lines,
    serverCpuPct: (cpuUs / 1e6 / seconds) * 100,
    redisCpuUsPerLine: (b.redisUs - a.redisUs) / lines,
    // How the work spread over the processes (the primary's and each
    // worker's CPU in the window, each worker's connections), for the JSON.
    perProcess: Object.fromEntries(
      Object.entries(b.usage.extras).map(([key, value]) => [
        key,
        key.endsWith('CpuUs') ? value - a.usage.extras[key] : value,
      ]),
    ),
  };
}

/** Polls the server until it holds `n` connections. */
async function waitForConnections(child, n, what) {
  const until = Date.now() + 30_000;
  for (;;) {
    if ((await askUsage(child)).connections === n) return;
    if (Date.now() > until)
      throw new Error(`cores: timed out waiting for ${what}`);
    await sleep(50);
  }
}

/** Echo: ping-pong on every client, counted over one window. */
async function coresEcho(step, child, loadgens, redis) {
  await Promise.all(
    shares(step.clients, loadgens.length).map((clients, i) =>
      commandLoad(loadgens[i], { cmd: 'echo', clients }),
    ),
  );
  await sleep(step.warmupMs);
  const a = await coresMark(child, loadgens, redis);
  await sleep(step.durationMs);
  const b = await coresMark(child, loadgens, redis);
  return { clients: step.clients, ...coresBetween(a, b) };
}

/**
 * Broadcast: receivers spread over the load generators, one trigger on the
 * first. A steady stream of broadcasts, `inFlight` at a time (the next line
 * is sent when every receiver, on every load generator, has the one
 * `inFlight` before it), delivered lines counted over one window.
 */
async function coresBroadcast(step, child, loadgens, redis) {
  await Promise.all(
    shares(step.connections, loadgens.length).map((connections, i) =>
      commandLoad(loadgens[i], {
        cmd: 'receivers',
        connections,
        trigger: i === 0,
      }),
    ),
  );
  await waitForConnections(
    child,
    step.connections + 1,
    `${step.connections + 1} connections`,
  );
  const delivered = loadgens.map(() => 0);
  let sent = 0;
  let streaming = true;
  let progressAt = Date.now();
  const pump = () => {
    const everywhere = Math.min(...delivered);
    while (streaming && sent < everywhere + step.inFlight) {
      sent++;
      loadgens[0].send({ cmd: 'send', id: 0 }, () => {});
    }
  };
  const listeners = loadgens.map((loadgen, i) => {
    const onMessage = (m) => {
      if (m.type !== 'delivered') return;
      delivered[i] = Math.max(delivered[i], m.line);
      progressAt = Date.now();
      pump();
    };
    loadgen.on('message', onMessage);
    return () => loadgen.off('message', onMessage);
  });
  try {
    const stalled = setInterval(() => {
      if (Date.now() - progressAt > 20_000) streaming = false;
    }, 1000);
    pump();
    await sleep(step.warmupMs);
    const a = await coresMark(child, loadgens, redis);
    await sleep(step.durationMs);
    const b = await coresMark(child, loadgens, redis);
    clearInterval(stalled);
    if (!streaming) throw new Error('cores: broadcasts stopped arriving');
    streaming = false;
    // Let the lines in flight arrive before the connections close.
    const until = Date.now() + 10_000;
    while (Math.min(...delivered) < sent && Date.now() < until) {
      await sleep(20);
    }
    return {
      connections: step.connections,
      broadcasts: sent,
      ...coresBetween(a, b),
    };
  } finally {
    for (const off of listeners) off();
  }
}

/**
 * Runs the cores scenario's steps against `serverKey`: for each step, a
 * fresh server (one process, or a primary and its workers, pinned as
 * `coresPlan` says) and fresh load generators, one per load core. The
 * Redis, for several processes, lives through both steps (each run of the
 * server has its own key prefix).
 */
async function runCores(serverKey, scenarioKey, steps) {
  const server = servers[serverKey];
  const processes = server.processes === 'many' ? coresPlan.processes : 1;
  const foreignLoad = watchForeignLoad();
  /** CPU of the benchmark's own processes that come and go, µs. */
  let ownUs = 0;
  let redis;
  const results = [];
  try {
    const env = { ...server.env, BENCH_PROCESSES: String(processes) };
    if (processes > 1) {
      const redisPort = nextPort();
      redis = await startRedis(redisPort, coresPlan.serverCores);
      redis.port = redisPort;
      env.REDIS_URL = `redis://127.0.0.1:${redisPort}`;
      if (coresPlan.workerCores) env.BENCH_WORKER_CORES = coresPlan.workerCores;
    }
    for (const step of steps) {
      const port = nextPort();
      const files = (step.connections ?? step.clients) + 500;
      const child = startNode(
        [
          '--expose-gc',
          ...serverFlags,
          buildDir + server.script,
          `--port=${port}`,
          `--mode=${step.kind}`,
        ],
        {
          core: processes > 1 ? coresPlan.serverCores : '0',
          files,
          label: `${serverKey} server`,
          env,
        },
      );
      const loadgens = [];
      let serverUs = 0;
      try {
        await waitForMessage(child, (m) => m.type === 'ready', 60_000);
        for (const core of coresPlan.loadCores) {
          const loadgen = startNode(
            [
              buildDir + 'cores-load.js',
              JSON.stringify({ port, deadlineMs: 180_000 }),
            ],
            { core, files, label: `cores load generator (core ${core})` },
          );
          loadgens.push(loadgen);
        }
        await Promise.all(
          loadgens.map((g) =>
            waitForMessage(g, (m) => m.type === 'ready', 30_000),
          ),
        );
        const run = step.kind === 'echo' ? coresEcho : coresBroadcast;
        const result = await run(step, child, loadgens, redis);
        const closed = await Promise.all(
          loadgens.map((g) => commandLoad(g, { cmd: 'close' })),
        );
        await waitForConnections(child, 0, 'all connections closed');
        serverUs = (await askUsage(child)).cpuUs;
        const exits = await Promise.all(
          loadgens.map((g) => commandLoad(g, { cmd: 'exit' })),
        );
        ownUs += exits.reduce((sum, e) => sum + e.cpuUs, 0);
        results.push({
          ...result,
          processes,
          loadGenerators: loadgens.length,
          socketErrors: closed.reduce((sum, c) => sum + c.socketErrors, 0),
        });
      } finally {
        await Promise.all(loadgens.map((g) => stopChild(g, 2000)));
        await stopChild(child);
        ownUs += serverUs;
      }
    }
    if (redis) ownUs += procCpuUs(redis.pid);
    return { results, foreignPct: foreignLoad(ownUs) };
  } finally {
    redis?.kill('SIGKILL');
  }
}

/** Several processes against one, as ratios of medians (for the notes). */
function coresRatios(results) {
  const scenario = scenarios.find((s) => s.key === 'cores');
  const runs = results.cores;
  if (!scenario || !runs) return undefined;
  const ratio = (step, key) => {
    const metric = scenario.metrics.find((m) => m.key === key);
    const many = collect(runs.earwaxCoresMany, step, metric).median;
    const one = collect(runs.earwaxCoresOne, step, metric).median;
    return many / one;
  };
  return {
    echoCpu: ratio(0, 'cpu'),
    broadcastCpu: ratio(1, 'cpu'),
    echoRate: ratio(0, 'rate'),
    broadcastRate: ratio(1, 'rate'),
  };
}

function coresComparison(results) {
  const r = coresRatios(results);
  if (!r) return undefined;
  return (
    `Cores, ${coresPlan.processes} processes + RedisAdapter against one process (${coresPlan.where}): ` +
    `server CPU per echoed line ${r.echoCpu.toFixed(2)}×, per delivered broadcast line ${r.broadcastCpu.toFixed(2)}×; ` +
    `throughput ${r.echoRate.toFixed(2)}× (echo), ${r.broadcastRate.toFixed(2)}× (broadcast).`
  );
}

/** The targets of the cores scenario (see targets()). */
function coresTargets(results) {
  const r = coresRatios(results) ?? { echoCpu: NaN, broadcastCpu: NaN };
  const status = (value, limit) =>
    Number.isFinite(value) ? (value <= limit ? 'met' : 'MISSED') : 'not run';
  const where = coresPlan.scaling
    ? `on cores 0–${coresPlan.processes - 1}`
    : 'on one core';
  return [
    {
      name: `${coresPlan.processes} processes (${where}) vs 1: server CPU per echoed line ≤ 1.1×`,
      status: status(r.echoCpu, 1.1),
      figure: `${r.echoCpu.toFixed(2)}×`,
    },
    {
      name: `${coresPlan.processes} processes (${where}) vs 1: server CPU per delivered broadcast line ≤ 1.2×`,
      status: status(r.broadcastCpu, 1.2),
      figure: `${r.broadcastCpu.toFixed(2)}×`,
    },
  ];
}

// ---------------------------------------------------------------------------
// Build, environment.

function build() {
  const tsc = `${root}node_modules/.bin/tsc`;
  for (const project of ['tsconfig.build.json', 'bench/tsconfig.json']) {
    log(`building: tsc -p ${project}`);
    execFileSync(tsc, ['-p', project], { cwd: root, stdio: 'inherit' });
  }
}

function machine() {
  const cpuinfo = readFileSync('/proc/cpuinfo', 'utf8');
  const model =
    /model name\s*:\s*(.*)/.exec(cpuinfo)?.[1] ?? os.cpus()[0].model;
  return {
    cpus: os.availableParallelism(),
    model,
    node: process.version,
    kernel: os.release(),
    taskset: hasTaskset,
    fileLimits,
  };
}

// ---------------------------------------------------------------------------
// The targets the project is measured against.

function targets(results) {
  const median = (scenario, server, step, metricKey) => {
    const def = scenarios.find((s) => s.key === scenario);
    if (!def) return NaN;
    const metric = def.metrics.find((m) => m.key === metricKey);
    return collect(results[scenario]?.[server], step, metric).median;
  };
  const ratio = (scenario, step, metric) =>
    median(scenario, 'earwaxLine', step, metric) /
    median(scenario, 'plain', step, metric);
  const e50 = echoClients.indexOf(50);
  const list = [];
  const add = (name, value, met, figure) =>
    list.push({
      name,
      status: Number.isFinite(value) ? (met ? 'met' : 'MISSED') : 'not run',
      figure,
    });

  const cpu50 = ratio('echo', e50, 'cpu');
  add(
    'Echo via @EarwaxEvent, line mode, 50 clients: server CPU per line ≤ 1.3× plain',
    cpu50,
    cpu50 <= 1.3,
    `${cpu50.toFixed(2)}× (${formatNumber(median('echo', 'earwaxLine', e50, 'cpu'))} vs ${formatNumber(median('echo', 'plain', e50, 'cpu'))} µs)`,
  );
  const p99 = ratio('echo', e50, 'p99');
  add(
    'p99 latency at 50 clients ≤ 1.2× plain',
    p99,
    p99 <= 1.2,
    `${p99.toFixed(2)}× (${formatNumber(median('echo', 'earwaxLine', e50, 'p99'))} vs ${formatNumber(median('echo', 'plain', e50, 'p99'))} ms)`,
  );
  const b = broadcastSizes.length - 1;
  const bcast = ratio('broadcast', b, 'cpu');
  add(
    `Broadcast to ${broadcastSizes[b].toLocaleString('en-US')}: CPU per delivered line ≤ 1.2× the plain loop`,
    bcast,
    bcast <= 1.2,
    `${bcast.toFixed(2)}× (${formatNumber(median('broadcast', 'earwaxLine', b, 'cpu'))} vs ${formatNumber(median('broadcast', 'plain', b, 'cpu'))} µs)`,
  );
  const rssKiB = median('idle', 'earwaxLine', 0, 'rss');
  const idle = ratio('idle', 0, 'rss');
  add(
    'Idle memory ≤ 1.25× plain per connection and under 10 KB',
    idle,
    idle <= 1.25 && rssKiB * 1.024 < 10,
    `${idle.toFixed(2)}× (${formatNumber(rssKiB)} vs ${formatNumber(median('idle', 'plain', 0, 'rss'))} KiB)`,
  );
  const retainedKiB = median('idle', 'earwaxLine', 0, 'heapRetained');
  const live = (results.idle?.earwaxLine ?? [])
    .filter((r) => !r.error)
    .map((r) => r.results[0].liveContextsAfter);
  // "Nothing retained": no connection context left in the transport, and
  // the V8 heap, after two waves of connections, back within 100 bytes per
  // connection of its size before any (compiled code and inline caches made
  // meanwhile stay; a leak of even one small object per connection would
  // not fit).
  const heapRetainedPerConnection = (retainedKiB * KiB) / idleConnections;
  add(
    'Nothing retained after all connections close',
    retainedKiB,
    live.every((n) => n === 0) && heapRetainedPerConnection < 100,
    `V8 heap ${formatNumber(retainedKiB)} KiB above the start after ${idleConnections.toLocaleString('en-US')} connections opened and closed twice ` +
      `(${formatNumber(heapRetainedPerConnection)} B per connection; plain Node ${formatNumber(median('idle', 'plain', 0, 'heapRetained'))} KiB); ` +
      `connection contexts left: ${live.join(', ') || 'n/a'}`,
  );
  const scaleP99 = median('scale', 'earwaxLine', 0, 'p99');
  add(
    `${(scaleConnections + 1).toLocaleString('en-US')} concurrent connections in one process, probe p99 < 50 ms`,
    scaleP99,
    scaleP99 < 50,
    `${formatNumber(scaleP99)} ms`,
  );
  return list;
}

// ---------------------------------------------------------------------------
// Main.

async function format(text, parser) {
  const config =
    (await prettier.resolveConfig(`${resultsDir}x.${parser}`)) ?? {};
  return prettier.format(text, { ...config, parser });
}

async function profileRun(serverKey, scenarioKey) {
  const dir = `${resultsDir}profiles`;
  mkdirSync(dir, { recursive: true });
  const scenario = scenarios.find((s) => s.key === scenarioKey);
  // Echo is profiled at 50 clients; any other scenario at its first step.
  const first =
    scenarioKey === 'echo'
      ? scenario.steps[echoClients.indexOf(50)]
      : scenario.steps[0];
  const step = {
    ...first,
    warmupMs: 2000,
    durationMs: quick ? 3000 : 10_000,
  };
  const tag = scenarioKey === 'echo' ? 'echo50' : scenarioKey;
  const name = `${serverKey}-${tag}.cpuprofile`;
  log(`profiling ${serverKey}: ${step.label}`);
  const {
    results: [result],
  } = await runOnce(serverKey, scenarioKey, [step], {
    cpuProfile: { dir, name },
  });
  const figures = scenario.metrics
    .map((m) => `${formatNumber(m.get(result))} ${m.label}`)
    .join(', ');
  log(`  ${figures} (profiler on)`);
  const summary = summarizeProfile(`${dir}/${name}`, result.windowUs);
  const md = await format(
    profileMarkdown(
      summary,
      `CPU profile: ${servers[serverKey].label}, ${step.label}`,
    ) +
      `\nProfile: \`bench/results/profiles/${name}\` (open in Chrome DevTools or speedscope). ` +
      `With the profiler on: ${figures}.\n`,
    'markdown',
  );
  writeFileSync(
    `${resultsDir}profile-${serverKey}${scenarioKey === 'echo' ? '' : `-${scenarioKey}`}.md`,
    md,
  );
  console.log(md);
}

/** Other work above this (% of one core) during a run makes it a retry. */
const FOREIGN_LIMIT_PCT = 10;
/** Attempts of one run at most. */
const MAX_ATTEMPTS = 3;
/**
 * Time that repeats (and waiting for the machine to quieten before them)
 * may add to the whole benchmark, so that it stays bounded: a repeat starts
 * only while less than this has been spent. None in a quick preview.
 */
const REPEAT_BUDGET_MS = quick ? 0 : 90_000;
/** The longest wait for other processes to quieten, before a repeat. */
const QUIET_WAIT_MS = 20_000;

/**
 * One repetition of a scenario on one server, repeated (within bounds) when
 * other processes were busy enough during it to skew the figures.
 */
async function measure(scenario, serverKey, tag, foreign) {
  for (let attempt = 1; ; attempt++) {
    const t0 = Date.now();
    const { results, foreignPct } = await (scenario.run ?? runOnce)(
      serverKey,
      scenario.key,
      scenario.steps,
    );
    const brief = scenario.steps
      .map(
        (step, i) =>
          `${step.label}: ${scenario.metrics
            .map((m) => `${m.label} ${formatNumber(m.get(results[i]))}`)
            .join(', ')}`,
      )
      .join('; ');
    log(
      `${tag} (${((Date.now() - t0) / 1000).toFixed(1)} s, other load ${foreignPct.toFixed(0)}% of a core) ${brief}`,
    );
    const errors = results.reduce((n, r) => n + r.socketErrors, 0);
    if (errors) log(`  note: ${errors} client socket errors`);
    if (foreignPct <= FOREIGN_LIMIT_PCT) {
      if (attempt > 1) foreign.spentMs += Date.now() - t0;
      return { results, foreignPct };
    }
    if (attempt > 1) foreign.spentMs += Date.now() - t0;
    if (attempt < MAX_ATTEMPTS && foreign.spentMs < REPEAT_BUDGET_MS) {
      foreign.repeated++;
      const waitStart = Date.now();
      const quiet = await waitForQuiet(FOREIGN_LIMIT_PCT, QUIET_WAIT_MS);
      foreign.spentMs += Date.now() - waitStart;
      log(
        `  other processes were busy: repeating this run (other load now ${quiet.toFixed(0)}%)`,
      );
      continue;
    }
    foreign.kept++;
    foreign.max = Math.max(foreign.max, foreignPct);
    return { results, foreignPct };
  }
}

async function main() {
  if (!options['no-build']) build();
  mkdirSync(resultsDir, { recursive: true });
  if (quick) {
    notes.push(
      'Quick preview: one repetition of short windows. Use the full run for figures to compare.',
    );
  }
  if (!hasTaskset) {
    notes.push('taskset not found: processes were not pinned to cores.');
  }
  if (options.profile) {
    const [serverKey, scenarioKey = 'echo'] = options.profile.split(':');
    if (!servers[serverKey]) {
      throw new Error(`--profile: unknown server ${serverKey}`);
    }
    const scenario = scenarios.find((s) => s.key === scenarioKey);
    if (!scenario?.servers.includes(serverKey) || scenario.run) {
      throw new Error(
        `--profile: ${serverKey} does not run in a scenario ${scenarioKey} of its own`,
      );
    }
    await profileRun(serverKey, scenarioKey);
    return;
  }

  const startLoad = await waitForQuiet(
    FOREIGN_LIMIT_PCT,
    quick ? 0 : QUIET_WAIT_MS,
  );
  log(`other load before starting: ${startLoad.toFixed(0)}% of a core`);
  if (startLoad > FOREIGN_LIMIT_PCT) {
    notes.push(
      `Other processes used ${startLoad.toFixed(0)}% of a core when the run started.`,
    );
  }
  const only = options.only?.split(',');
  const selected = scenarios.filter((s) =>
    only ? only.includes(s.key) : !s.optIn,
  );
  const env = machine();
  const started = Date.now();
  log(
    `${env.model}, ${env.cpus} CPUs, Node ${env.node}; ${quick ? 'quick' : 'full'} run`,
  );
  const results = {};
  let failures = 0;
  const foreign = { repeated: 0, kept: 0, max: 0, spentMs: 0 };
  for (const scenario of selected) {
    log(
      `${scenario.key}: starting at ${((Date.now() - started) / 1000).toFixed(0)} s`,
    );
    results[scenario.key] = {};
    for (let rep = 0; rep < scenario.reps; rep++) {
      // Servers take turns within each repetition, so drift in the machine
      // affects them alike.
      for (const serverKey of scenario.servers) {
        const runs = (results[scenario.key][serverKey] ??= []);
        const tag = `[${scenario.key} ${rep + 1}/${scenario.reps}] ${serverKey}`;
        try {
          runs.push(await measure(scenario, serverKey, tag, foreign));
        } catch (err) {
          failures++;
          runs.push({ error: String(err?.message ?? err) });
          log(`${tag} FAILED: ${err?.stack ?? err}`);
        }
      }
    }
  }
  if (foreign.repeated || foreign.kept) {
    notes.push(
      `Other processes competed for the CPU: ${foreign.repeated} run(s) were repeated because other work used more than ${FOREIGN_LIMIT_PCT}% of a core during them` +
        (foreign.kept
          ? `; ${foreign.kept} run(s) kept with more (at most ${MAX_ATTEMPTS} attempts, ${REPEAT_BUDGET_MS / 1000} s for repeats; highest: ${foreign.max.toFixed(0)}% of a core)`
          : '') +
        '.',
    );
  }
  const seconds = (Date.now() - started) / 1000;

  const table = resultsTable(selected, results, servers, recorded);
  const targetList = targets(results);
  const comparison = clusterComparison(results);
  if (comparison) notes.push(comparison);
  targetList.push(...coresTargets(results));
  const coresNote = coresComparison(results);
  if (coresNote) notes.push(coresNote);
  const md = await format(
    [
      `# nestjs-earwax benchmark (${quick ? 'quick preview' : 'full run'})`,
      '',
      `${new Date().toISOString()}. ${env.model}, ${env.cpus} CPUs; Node ${env.node}; Linux ${env.kernel}. ` +
        `Servers pinned to core 0, load generator to core 1${hasTaskset ? '' : ' (not pinned: no taskset)'}; loopback. ` +
        `Medians of ${echoReps} repetitions for echo, ${reps} for broadcast and churn, ${memoryReps} for the rest; ` +
        `"vs plain Node" is the ratio of medians to the plain Node server of this run. Took ${seconds.toFixed(0)} s.` +
        (serverFlags.length > 0
          ? ` Every server process ran with \`${serverFlags.join(' ')}\`.`
          : ''),
      '',
      table,
      '',
      '## Targets',
      '',
      ...targetList.map((t) => `- **${t.status}**: ${t.name}: ${t.figure}`),
      '',
      ...(notes.length
        ? ['## Notes', '', ...notes.map((n) => `- ${n}`), '']
        : []),
    ].join('\n'),
    'markdown',
  );
  writeFileSync(`${resultsDir}${options.out}.md`, md);
  writeFileSync(
    `${resultsDir}${options.out}.json`,
    await format(
      JSON.stringify({
        machine: env,
        serverFlags,
        quick,
        seconds,
        scenarios: selected,
        results,
      }),
      'json',
    ),
  );
  console.log(md);
  log(
    `written: bench/results/${options.out}.md and .json (${seconds.toFixed(0)} s)`,
  );
  if (failures) {
    log(`${failures} run(s) failed.`);
    process.exitCode = 1;
  }
}

main().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
