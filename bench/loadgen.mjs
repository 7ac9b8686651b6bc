/**
 * The load generator: one process, pinned to its own core by bench/run.mjs,
 * driving one benchmark server over loopback.
 *
 * Usage (from run.mjs only, which provides the IPC channel):
 *   node bench/loadgen.mjs '<json spec>'
 * where the spec is `{ port, protocol, deadlineMs, steps: [...] }` and each
 * step is one of the `steps` below. Server CPU and memory are read through
 * run.mjs, which relays `usage` and `gc` requests to the server's control
 * channel (bench/servers/control.ts). The results go back as one `result`
 * message; then the process exits.
 */
import net from 'node:net';
import { performance } from 'node:perf_hooks';
import process from 'node:process';
import { clearInterval, setInterval, setTimeout } from 'node:timers';
import { setTimeout as sleep } from 'node:timers/promises';
import { percentile } from './lib/stats.mjs';

const spec = JSON.parse(process.argv[2] ?? '{}');
if (!process.send || !spec.port) {
  console.error('loadgen: run me from bench/run.mjs');
  process.exit(2);
}

// Never outlive the benchmark.
process.on('disconnect', () => process.exit(0));
setTimeout(() => {
  console.error(`loadgen: deadline of ${spec.deadlineMs} ms reached; exiting.`);
  process.exit(3);
}, spec.deadlineMs ?? 120_000).unref();

const HOST = '127.0.0.1';
/** The echoed line: 62 characters, 64 bytes on the wire with `\r\n`. */
const PAYLOAD = 'ping-'.padEnd(62, '0123456789');
const LINE = Buffer.from(PAYLOAD + '\r\n');
const LINE_BYTES = LINE.length;
/** Connections being opened at once: below the servers' listen backlog. */
const CONNECT_CONCURRENCY = 200;

// ---------------------------------------------------------------------------
// The control channel, through run.mjs to the server.

let nextRequestId = 1;
const pendingRequests = new Map();
process.on('message', (message) => {
  if (message.type !== 'reply') return;
  pendingRequests.get(message.id)?.(message.usage);
  pendingRequests.delete(message.id);
});

/** Asks the server for its `usage` (or to `gc` first, then report). */
function serverUsage(cmd = 'usage') {
  return new Promise((resolve) => {
    const id = nextRequestId++;
    pendingRequests.set(id, resolve);
    process.send({ type: 'request', id, cmd });
  });
}

/**
 * A synchronised reading of the server and of a client-side counter. The
 * server's figures are taken somewhere between our request and its reply
 * (the reply can wait behind a busy event loop), so the counter and the
 * clock are read on both sides and the midpoints used.
 */
async function mark(counter) {
  const c0 = counter();
  const t0 = performance.now();
  const cpu0 = process.cpuUsage();
  const usage = await serverUsage();
  const c1 = counter();
  const t1 = performance.now();
  const cpu1 = process.cpuUsage();
  const ownCpuUs = (cpu0.user + cpu0.system + cpu1.user + cpu1.system) / 2;
  return { usage, count: (c0 + c1) / 2, t: (t0 + t1) / 2, ownCpuUs };
}

/** The figures between two marks. */
function between(a, b) {
  const ops = b.count - a.count;
  const seconds = (b.t - a.t) / 1000;
  const serverCpuUs = b.usage.cpuUs - a.usage.cpuUs;
  return {
    ops,
    seconds,
    opsPerSec: ops / seconds,
    serverCpuUsPerOp: serverCpuUs / ops,
    serverCpuPct: (serverCpuUs / 1e6 / seconds) * 100,
    clientCpuPct: ((b.ownCpuUs - a.ownCpuUs) / 1e6 / seconds) * 100,
  };
}

/** Polls the server until `predicate(usage)` holds. */
async function waitForServer(predicate, what, timeoutMs = 30_000) {
  const until = performance.now() + timeoutMs;
  for (;;) {
    const usage = await serverUsage();
    if (predicate(usage)) return usage;
    if (performance.now() > until) {
      throw new Error(`timed out waiting for the server: ${what}`);
    }
    await sleep(50);
  }
}

// ---------------------------------------------------------------------------
// Connections.

let socketErrors = 0;

function connect(port) {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ port, host: HOST, noDelay: true });
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error('connect timed out'));
    }, 10_000);
    socket.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    socket.once('connect', () => {
      clearTimeout(timer);
      socket.removeAllListeners('error');
      socket.on('error', () => socketErrors++);
      resolve(socket);
    });
  });
}

/** Opens `count` connections, a bounded number at a time. */
async function openMany(port, count) {
  const sockets = new Array(count);
  let next = 0;
  const worker = async () => {
    while (next < count) {
      const i = next++;
      sockets[i] = await connect(port);
    }
  };
  const workers = [];
  for (let i = 0; i < Math.min(CONNECT_CONCURRENCY, count); i++) {
    workers.push(worker());
  }
  await Promise.all(workers);
  return sockets;
}

/** Closes our side of every socket and waits until the server holds none. */
async function closeAll(sockets, { waitForServer: wait = true } = {}) {
  for (const socket of sockets) socket.end();
  if (wait) {
    await waitForServer(
      (u) => u.connections <= 0 && (u.extras.liveContexts ?? 0) <= 0,
      'all connections closed',
    );
  }
  for (const socket of sockets) socket.destroy();
}

/**
 * Source ports of the crowd scenario, named by the load generator rather
 * than left to the kernel: its choice of a port for a socket bound to an
 * address (port 0) searches the ephemeral range, about 1.5 ms of kernel time
 * per connection at 20,000 connections, and a port so bound is then skipped
 * by every other program's outgoing connections until it is closed. These
 * are below the ephemeral range (32768–60999), and not the benchmark's own
 * server ports (20000–20099).
 */
const CROWD_PORTS = { first: 1025, last: 32767, skip: [20000, 20099] };

/** The next source port of address `index`, or undefined when none is left. */
function nextCrowdPort(cursors, index) {
  let port = cursors[index]++;
  if (port >= CROWD_PORTS.skip[0] && port <= CROWD_PORTS.skip[1]) {
    port = CROWD_PORTS.skip[1] + 1;
    cursors[index] = port + 1;
  }
  return port <= CROWD_PORTS.last ? port : undefined;
}

/** A connection from `localAddress`:`localPort`. */
function connectFrom(localAddress, localPort) {
  return new Promise((resolve, reject) => {
    const socket = net.connect({
      port: spec.port,
      host: HOST,
      localAddress,
      localPort,
      noDelay: true,
    });
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error('connect timed out'));
    }, 10_000);
    socket.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    socket.once('connect', () => {
      clearTimeout(timer);
      socket.removeAllListeners('error');
      socket.on('error', () => socketErrors++);
      resolve(socket);
    });
  });
}

// ---------------------------------------------------------------------------
// Protocols of the echo scenario: how to ask, and how to tell a whole reply.

/**
 * Line protocols (plain Node, earwax line and raw mode): the reply to a
 * 64-byte line is 64 bytes ending in `\n`, however TCP splits it.
 */
function lineClient(socket, onReply) {
  let bytes = 0;
  let checked = false;
  socket.on('data', (chunk) => {
    if (!checked) {
      checked = true;
      if (chunk[0] !== LINE[0]) {
        throw new Error(`unexpected reply: ${chunk.toString().slice(0, 80)}`);
      }
    }
    bytes += chunk.length;
    while (bytes >= LINE_BYTES) {
      bytes -= LINE_BYTES;
      onReply();
    }
  });
  return () => socket.write(LINE);
}

/**
 * Nest's TCP transport: `<length>#<json>` both ways (the length counts
 * characters), request `{pattern, data, id}`, reply `{id, response}` plus
 * `isDisposed: true` on the last message of a response (see
 * @nestjs/microservices helpers/json-socket.js and server/server-tcp.js).
 */
function nestClient(socket, onReply, index) {
  const json = JSON.stringify({
    pattern: 'echo',
    data: PAYLOAD,
    id: `${index}`,
  });
  const request = `${json.length}#${json}`;
  let buffer = '';
  socket.setEncoding('utf8');
  socket.on('data', (data) => {
    buffer += data;
    for (;;) {
      const hash = buffer.indexOf('#');
      if (hash === -1) return;
      const length = Number(buffer.slice(0, hash));
      const end = hash + 1 + length;
      if (buffer.length < end) return;
      const message = JSON.parse(buffer.slice(hash + 1, end));
      buffer = buffer.slice(end);
      if (message.err) throw new Error(`Nest TCP error: ${message.err}`);
      if ('response' in message && message.response !== PAYLOAD) {
        throw new Error(`unexpected Nest reply: ${JSON.stringify(message)}`);
      }
      if (message.isDisposed) onReply();
    }
  });
  return () => socket.write(request);
}

/** What a telnet-mode server sends at connect: six offers of 3 bytes. */
const TELNET_OFFER_BYTES = 18;

/**
 * Earwax in telnet mode: its option offers (IAC DO TTYPE, ...) come first and
 * are left unanswered, as by a client that ignores them; then the replies are
 * 64-byte lines, as in line mode.
 */
function telnetClient(socket, onReply) {
  let bytes = -TELNET_OFFER_BYTES;
  let checked = false;
  socket.on('data', (chunk) => {
    if (!checked) {
      checked = true;
      if (chunk[0] !== 0xff) {
        throw new Error(
          `expected telnet offers, got: ${chunk.toString().slice(0, 80)}`,
        );
      }
    }
    bytes += chunk.length;
    while (bytes >= LINE_BYTES) {
      bytes -= LINE_BYTES;
      onReply();
    }
  });
  return () => socket.write(LINE);
}

const protocols = { line: lineClient, nest: nestClient, telnet: telnetClient };

// ---------------------------------------------------------------------------
// Scenarios.

/** A growable list of latencies (ms). */
class Samples {
  values = new Float64Array(1 << 16);
  length = 0;
  push(value) {
    if (this.length === this.values.length) {
      const bigger = new Float64Array(this.values.length * 2);
      bigger.set(this.values);
      this.values = bigger;
    }
    this.values[this.length++] = value;
  }
  sorted() {
    return this.values.slice(0, this.length).sort();
  }
}

/** What a `turn` client sends: a game command. */
const TURN_COMMAND = Buffer.from('look\r\n');
/** What a `room` client sends once in its room. */
const ROOM_COMMAND = Buffer.from(
  'say Well met, friends! Any news from the road?\r\n',
);
/** The first byte of a line said by another member of the room ("* "). */
const ROOM_BROADCAST_BYTE = '*'.charCodeAt(0);
const LF = 0x0a;

/**
 * Calls `onLine(fromOthers)` for every `\n`-terminated line that arrives on
 * `socket`, however TCP splits or joins them (a line across reads, several
 * lines in one); `fromOthers` when the line begins with the room-broadcast
 * prefix. Counts the bytes read into `bytes.in`.
 */
function readLines(socket, bytes, onLine) {
  let atStart = true;
  let fromOthers = false;
  socket.on('data', (chunk) => {
    bytes.in += chunk.length;
    let i = 0;
    while (i < chunk.length) {
      if (atStart) {
        fromOthers = chunk[i] === ROOM_BROADCAST_BYTE;
        atStart = false;
      }
      const nl = chunk.indexOf(LF, i);
      if (nl === -1) return;
      atStart = true;
      i = nl + 1;
      onLine(fromOthers);
    }
  });
}

const steps = {
  /**
   * Ping-pong: every client sends a line, waits for the echo, sends the next.
   * Round trips/s, server CPU per line, latency percentiles.
   */
  async echo({ clients, warmupMs, durationMs }) {
    const sockets = await openMany(spec.port, clients);
    const makeClient = protocols[spec.protocol];
    let completed = 0;
    let recording = false;
    let running = true;
    const latencies = new Samples();
    for (let i = 0; i < sockets.length; i++) {
      let sentAt = 0;
      const send = makeClient(
        sockets[i],
        () => {
          const now = performance.now();
          completed++;
          if (recording) latencies.push(now - sentAt);
          if (running) {
            sentAt = now;
            send();
          }
        },
        i,
      );
      sentAt = performance.now();
      send();
    }
    await sleep(warmupMs);
    const a = await mark(() => completed);
    recording = true;
    await sleep(durationMs);
    recording = false;
    const b = await mark(() => completed);
    running = false;
    await sleep(100);
    await closeAll(sockets, { waitForServer: spec.protocol !== 'nest' });
    const sorted = latencies.sorted();
    return {
      clients,
      ...between(a, b),
      p50Ms: percentile(sorted, 0.5),
      p99Ms: percentile(sorted, 0.99),
      // The measured window on the server's clock, to cut a CPU profile.
      windowUs: [a.usage.monotonicUs, b.usage.monotonicUs],
    };
  },

  /**
   * A game's turn: every client sends a command and waits until it has all
   * `replyLines` lines of the answer, then sends the next. Commands/s,
   * server CPU per command, latency (until the last line) percentiles.
   */
  async turn({ clients, replyLines, warmupMs, durationMs }) {
    const sockets = await openMany(spec.port, clients);
    const bytes = { in: 0 };
    let completed = 0;
    let recording = false;
    let running = true;
    const latencies = new Samples();
    for (const socket of sockets) {
      let sentAt = 0;
      let lines = 0;
      readLines(socket, bytes, (fromOthers) => {
        if (fromOthers) throw new Error('turn: unexpected room line');
        if (++lines < replyLines) return;
        lines = 0;
        const now = performance.now();
        completed++;
        if (recording) latencies.push(now - sentAt);
        if (running) {
          sentAt = now;
          socket.write(TURN_COMMAND);
        }
      });
      sentAt = performance.now();
      socket.write(TURN_COMMAND);
    }
    await sleep(warmupMs);
    const bytesBefore = bytes.in;
    const a = await mark(() => completed);
    recording = true;
    await sleep(durationMs);
    recording = false;
    const b = await mark(() => completed);
    const bytesInWindow = bytes.in - bytesBefore;
    running = false;
    await sleep(100);
    await closeAll(sockets);
    const sorted = latencies.sorted();
    const figures = between(a, b);
    return {
      clients,
      replyLines,
      ...figures,
      p50Ms: percentile(sorted, 0.5),
      p99Ms: percentile(sorted, 0.99),
      // A check that every server sends the same: bytes of one answer.
      bytesPerCommand: bytesInWindow / figures.ops,
      // The measured window on the server's clock, to cut a CPU profile.
      windowUs: [a.usage.monotonicUs, b.usage.monotonicUs],
    };
  },

  /**
   * Rooms: `clients` players join `rooms` rooms (`join <n>`, round-robin by
   * connection order); then each, closed loop, says something and waits for
   * its `replyLines` lines, while the server also sends one line to every
   * other member of its room. Commands/s, server CPU per command and per
   * delivered line (the sender's and the room's), the sender's latency.
   */
  async room({ clients, rooms, replyLines, warmupMs, durationMs }) {
    const sockets = await openMany(spec.port, clients);
    const bytes = { in: 0 };
    let completed = 0;
    let delivered = 0;
    let fromRoom = 0;
    let joined = 0;
    let recording = false;
    let running = true;
    const latencies = new Samples();
    let allJoined;
    const joinedAll = new Promise((resolve) => (allJoined = resolve));
    const starts = [];
    sockets.forEach((socket, i) => {
      let sentAt = 0;
      // The join is answered with one line, a command with `replyLines`.
      let pending = 1;
      let inRoom = false;
      const send = () => {
        pending = replyLines;
        sentAt = performance.now();
        socket.write(ROOM_COMMAND);
      };
      starts.push(send);
      readLines(socket, bytes, (fromOthers) => {
        delivered++;
        if (fromOthers) {
          fromRoom++;
          return;
        }
        if (--pending > 0) return;
        if (pending < 0) throw new Error('room: more reply lines than asked');
        if (!inRoom) {
          inRoom = true;
          if (++joined === clients) allJoined();
          return;
        }
        completed++;
        if (recording) latencies.push(performance.now() - sentAt);
        if (running) send();
      });
      socket.write(`join ${i % rooms}\r\n`);
    });
    let timer;
    await Promise.race([
      joinedAll,
      new Promise((resolve, reject) => {
        timer = setTimeout(
          () => reject(new Error(`room: ${joined} of ${clients} joined`)),
          20_000,
        );
      }),
    ]).finally(() => clearTimeout(timer));
    for (const send of starts) send();
    await sleep(warmupMs);
    // The delivered-line counters are read beside mark()'s own counter,
    // in the same turn of the event loop.
    const reading = async () => {
      const before = { delivered, fromRoom };
      const m = await mark(() => completed);
      return {
        ...m,
        delivered: (before.delivered + delivered) / 2,
        fromRoom: (before.fromRoom + fromRoom) / 2,
      };
    };
    const a = await reading();
    recording = true;
    await sleep(durationMs);
    recording = false;
    const b = await reading();
    running = false;
    await sleep(100);
    await closeAll(sockets);
    const sorted = latencies.sorted();
    const figures = between(a, b);
    const lines = b.delivered - a.delivered;
    const serverCpuUs = b.usage.cpuUs - a.usage.cpuUs;
    return {
      clients,
      rooms,
      ...figures,
      deliveredLinesPerSec: lines / figures.seconds,
      serverCpuUsPerLine: serverCpuUs / lines,
      // Checks: lines said to the room per command (members - 1).
      roomLinesPerCommand: (b.fromRoom - a.fromRoom) / figures.ops,
      linesPerCommand: lines / figures.ops,
      p50Ms: percentile(sorted, 0.5),
      p99Ms: percentile(sorted, 0.99),
      windowUs: [a.usage.monotonicUs, b.usage.monotonicUs],
    };
  },

  /**
   * Fan-out: `connections` receivers and one trigger connection; each trigger
   * line is sent by the server to every receiver. Server CPU per delivered
   * line, and the time from the trigger until the last receiver has it.
   */
  async broadcast({ connections, rounds, warmupRounds }) {
    const receivers = await openMany(spec.port, connections);
    const [trigger] = await openMany(spec.port, 1);
    trigger.on('data', () => {});
    let round = 0;
    let reached = 0;
    let roundDone = () => {};
    for (const socket of receivers) {
      let bytes = 0;
      let seen = 0;
      socket.on('data', (chunk) => {
        bytes += chunk.length;
        while (bytes >= (seen + 1) * LINE_BYTES) {
          seen++;
          if (seen === round && ++reached === connections) roundDone();
        }
      });
    }
    await waitForServer(
      (u) => u.connections === connections + 1,
      `${connections + 1} connections`,
    );
    const fanOut = async () => {
      round++;
      reached = 0;
      let timer;
      const done = new Promise((resolve, reject) => {
        roundDone = resolve;
        timer = setTimeout(
          () =>
            reject(new Error(`broadcast round ${round}: ${reached} received`)),
          20_000,
        );
      });
      const start = performance.now();
      trigger.write(LINE);
      await done.finally(() => clearTimeout(timer));
      return performance.now() - start;
    };
    for (let i = 0; i < warmupRounds; i++) await fanOut();
    const delivered = () => (round - 1) * connections + reached;
    const times = [];
    await sleep(50);
    const a = await mark(delivered);
    for (let i = 0; i < rounds; i++) times.push(await fanOut());
    const b = await mark(delivered);
    await closeAll([...receivers, trigger]);
    times.sort((x, y) => x - y);
    return {
      connections,
      rounds,
      serverCpuUsPerLine: between(a, b).serverCpuUsPerOp,
      lastReceivedMs: percentile(times, 0.5),
      lastReceivedMaxMs: times[times.length - 1],
    };
  },

  /**
   * Connection churn: `concurrency` loops of connect, wait for the greeting
   * (sent from the server's connect hook, after its guard), close, wait for
   * the server's close. Connections/s and server CPU per connection.
   */
  async churn({ concurrency, warmupMs, durationMs }) {
    let completed = 0;
    let failures = 0;
    let running = true;
    const cycle = () =>
      new Promise((resolve) => {
        const socket = net.connect({ port: spec.port, host: HOST });
        socket.once('data', () => socket.end());
        socket.on('error', () => failures++);
        socket.on('close', () => {
          completed++;
          resolve();
        });
      });
    const loop = async () => {
      while (running) await cycle();
    };
    const loops = [];
    for (let i = 0; i < concurrency; i++) loops.push(loop());
    await sleep(warmupMs);
    const a = await mark(() => completed);
    await sleep(durationMs);
    const b = await mark(() => completed);
    running = false;
    await Promise.all(loops);
    const figures = between(a, b);
    return {
      concurrency,
      connectionsPerSec: figures.opsPerSec,
      serverCpuUsPerConnection: figures.serverCpuUsPerOp,
      failures,
    };
  },

  /**
   * Idle memory: server RSS (and V8 heap) per connection at `connections`
   * idle connections, after full GCs; then all close, twice over, to see
   * what is retained.
   */
  async idle({ connections, cycles }) {
    const base = await serverUsage('gc');
    const cycleResults = [];
    for (let c = 0; c < cycles; c++) {
      const sockets = await openMany(spec.port, connections);
      for (const socket of sockets) socket.on('data', () => {});
      await waitForServer(
        (u) => u.connections === connections,
        `${connections} connections`,
      );
      await sleep(300);
      const loaded = await serverUsage('gc');
      await closeAll(sockets);
      await sleep(300);
      const after = await serverUsage('gc');
      cycleResults.push({ loaded, after });
    }
    const first = cycleResults[0];
    const last = cycleResults[cycleResults.length - 1];
    return {
      connections,
      rssPerConnection: (first.loaded.rss - base.rss) / connections,
      heapPerConnection: (first.loaded.heapUsed - base.heapUsed) / connections,
      // What the process still holds after everything closed: the RSS a
      // first wave leaves behind (V8 and malloc keep freed pages), and the
      // growth from the first wave's aftermath to the last one's (a leak
      // shows here), and the V8 heap compared to before any connection.
      rssAfterCloseDelta: first.after.rss - base.rss,
      rssGrowthBetweenWaves: last.after.rss - first.after.rss,
      heapRetained: last.after.heapUsed - base.heapUsed,
      liveContextsAfter: last.after.extras.liveContexts ?? 0,
    };
  },

  /**
   * Slow consumers: `clients` connections ask for a flood of lines and never
   * read. Server RSS is sampled while the server writes to them.
   */
  async slow({ clients, floodMs }) {
    const base = await serverUsage('gc');
    const sockets = await openMany(spec.port, clients);
    for (const socket of sockets) {
      // Never read: the kernel buffers fill, then the server's.
      socket.pause();
      socket.write('flood\r\n');
    }
    let peak = base;
    const until = performance.now() + floodMs + 1000;
    while (performance.now() < until) {
      await sleep(100);
      const usage = await serverUsage();
      if (usage.rss > peak.rss) peak = usage;
    }
    const end = await serverUsage();
    for (const socket of sockets) socket.destroy();
    return {
      clients,
      floodMs,
      rssPeakDelta: peak.rss - base.rss,
      rssEndDelta: end.rss - base.rss,
      slowConsumerDrops: end.extras.slowConsumerDrops ?? 0,
      maxBuffered: end.extras.floodMaxBuffered,
    };
  },

  /**
   * Many connections: `connections` mostly idle clients (together sending
   * `backgroundPerSec` lines a second) and one probe client doing ping-pong
   * with a short pause between pings. The probe's latency percentiles.
   */
  async scale({ connections, backgroundPerSec, warmupMs, durationMs }) {
    const sockets = await openMany(spec.port, connections);
    for (const socket of sockets) socket.on('data', () => {});
    const [probe] = await openMany(spec.port, 1);
    await waitForServer(
      (u) => u.connections === connections + 1,
      `${connections + 1} connections`,
    );
    // Background: a few idle clients speak every 10 ms, round-robin.
    const perTick = Math.max(1, Math.round(backgroundPerSec / 100));
    let cursor = 0;
    let background = 0;
    const ticker = setInterval(() => {
      for (let i = 0; i < perTick; i++) {
        sockets[cursor].write(LINE);
        cursor = (cursor + 1) % sockets.length;
        background++;
      }
    }, 10);
    let recording = false;
    let running = true;
    const latencies = new Samples();
    let sentAt = 0;
    const send = lineClient(probe, () => {
      if (recording) latencies.push(performance.now() - sentAt);
      if (running) {
        setTimeout(() => {
          sentAt = performance.now();
          send();
        }, 10);
      }
    });
    sentAt = performance.now();
    send();
    await sleep(warmupMs);
    const a = await mark(() => background);
    recording = true;
    await sleep(durationMs);
    recording = false;
    const b = await mark(() => background);
    running = false;
    clearInterval(ticker);
    await sleep(50);
    await closeAll([...sockets, probe]);
    const sorted = latencies.sorted();
    const figures = between(a, b);
    return {
      connections: connections + 1,
      samples: sorted.length,
      p50Ms: percentile(sorted, 0.5),
      p99Ms: percentile(sorted, 0.99),
      maxMs: sorted[sorted.length - 1],
      backgroundPerSec: figures.opsPerSec,
      serverCpuPct: figures.serverCpuPct,
    };
  },

  /**
   * A crowd in one server process: `connections` idle connections opened
   * from `sourceAddresses` loopback addresses (127.0.0.2, 127.0.0.3, ...),
   * `concurrency` at a time, for at most `openBudgetMs`. Then server RSS and
   * V8 heap per held connection after full GCs, and a probe client's
   * ping-pong latency (a 10 ms pause between pings) while all are held.
   * Each connection sends one line when it opens, then nothing. A connect
   * that fails is counted, not fatal: the figures are per connection the
   * server holds.
   */
  async crowd({
    connections,
    sourceAddresses,
    concurrency,
    openBudgetMs,
    warmupMs,
    durationMs,
  }) {
    const base = await serverUsage('gc');
    const sockets = [];
    const cursors = new Array(sourceAddresses).fill(CROWD_PORTS.first);
    let failures = 0;
    let portsSkipped = 0;
    let firstFailure = '';
    let next = 0;
    const openStart = performance.now();
    const openUntil = openStart + openBudgetMs;
    const opener = async () => {
      while (next < connections && performance.now() < openUntil) {
        const address = next++ % sourceAddresses;
        const localAddress = `127.0.0.${2 + address}`;
        // A port another program holds on the wildcard address is skipped.
        for (let attempt = 0; ; attempt++) {
          const localPort = nextCrowdPort(cursors, address);
          try {
            if (localPort === undefined) throw new Error('no source port left');
            const socket = await connectFrom(localAddress, localPort);
            socket.on('data', () => {});
            // One line, echoed and ignored, as a player's first words: the
            // earwax transport drops a connection that sends nothing within
            // its firstInputTimeout (60 s by default), and opening 100,000
            // can take that long.
            socket.write(LINE);
            sockets.push(socket);
            break;
          } catch (err) {
            if (err.code === 'EADDRINUSE' && attempt < 100) {
              portsSkipped++;
              continue;
            }
            failures++;
            firstFailure ||= `${localAddress}:${localPort}: ${err.code ?? err.message}`;
            break;
          }
        }
      }
    };
    const openers = [];
    for (let i = 0; i < Math.min(concurrency, connections); i++) {
      openers.push(opener());
    }
    await Promise.all(openers);
    const openSeconds = (performance.now() - openStart) / 1000;
    // Every connection we hold, accepted: the server's count catches up.
    const alive = () => sockets.filter((s) => !s.destroyed).length;
    await waitForServer(
      (u) => u.connections >= alive(),
      `${alive()} connections`,
      60_000,
    ).catch(() => {});
    await sleep(300);
    const loaded = await serverUsage('gc');
    const held = loaded.connections;

    const [probe] = await openMany(spec.port, 1);
    let recording = false;
    let running = true;
    const latencies = new Samples();
    let sentAt = 0;
    const send = lineClient(probe, () => {
      if (recording) latencies.push(performance.now() - sentAt);
      if (running) {
        setTimeout(() => {
          sentAt = performance.now();
          send();
        }, 10);
      }
    });
    sentAt = performance.now();
    send();
    await sleep(warmupMs);
    const a = await mark(() => latencies.length);
    recording = true;
    await sleep(durationMs);
    recording = false;
    const b = await mark(() => latencies.length);
    running = false;
    await sleep(50);

    // Closed by a reset: an orderly close would leave as many sockets in
    // TIME_WAIT for a minute, more than the kernel's table holds at 100,000.
    const closeStart = performance.now();
    const all = [...sockets, probe];
    for (const socket of all) socket.resetAndDestroy();
    await waitForServer(
      (u) => u.connections <= 0 && (u.extras.liveContexts ?? 0) <= 0,
      'all connections closed',
      60_000 + all.length,
    );
    const closeSeconds = (performance.now() - closeStart) / 1000;
    const sorted = latencies.sorted();
    return {
      wanted: connections,
      opened: sockets.length,
      held,
      failures,
      firstFailure,
      portsSkipped,
      sourceAddresses,
      openSeconds,
      closeSeconds,
      rssPerConnection: (loaded.rss - base.rss) / held,
      heapPerConnection: (loaded.heapUsed - base.heapUsed) / held,
      rssLoaded: loaded.rss,
      heapLoaded: loaded.heapUsed,
      samples: sorted.length,
      p50Ms: percentile(sorted, 0.5),
      p99Ms: percentile(sorted, 0.99),
      maxMs: sorted[sorted.length - 1],
      serverCpuPct: between(a, b).serverCpuPct,
    };
  },
};

const results = [];
for (const step of spec.steps) {
  const run = steps[step.kind];
  if (!run) throw new Error(`loadgen: unknown step ${step.kind}`);
  results.push({ ...(await run(step)), socketErrors });
  socketErrors = 0;
}
// With our CPU time, so that the runner can tell other load from ours.
const { user, system } = process.cpuUsage();
process.send({ type: 'result', results, cpuUs: user + system }, () =>
  process.exit(0),
);
