import { setImmediate as nextTurn } from 'node:timers/promises';
import { formatHostPort } from '../../utils/host-port.js';
import { HostileSocket } from './hostile-socket.js';
import type {
  HostileAttackName,
  HostileConnectionTally,
  HostileEnding,
  HostileResult,
  HostileTarget,
} from './hostile.interfaces.js';
import { ProbeSession, type ResolvedProbe } from './probe-session.js';

/** After its deadline, how long an attack has to wind down. */
const STOP_GRACE_MS = 2000;
/** How long a hostile socket closed by the runner waits for the server. */
const CLOSE_GRACE_MS = 1000;
/** How many probe failures a result lists. */
const MAX_FAILURES = 5;

/**
 * A target with its defaults applied.
 *
 * @internal
 */
export interface ResolvedTarget {
  readonly host: string;
  readonly port: number;
  readonly from: readonly string[];
  readonly probe: ResolvedProbe;
}

/**
 * What an attack's body is given.
 *
 * @internal
 */
export interface AttackContext {
  readonly target: ResolvedTarget;
  /** Aborted at the attack's deadline. */
  readonly signal: AbortSignal;
  /** Opens a hostile connection, from the next `from` address. */
  open(options?: {
    read?: boolean;
    telnet?: boolean;
    greeting?: string | RegExp;
    tls?: { servername?: string };
  }): HostileSocket;
  /**
   * Says the attack is in full swing: probing starts. Resolves once the
   * first probe made during the attack has its answer (or not).
   */
  engaged(): Promise<void>;
  /**
   * Waits `ms`, or less if the deadline passes or `socket` (when given)
   * sees the server close.
   *
   * @returns Whether the attack should go on.
   */
  pause(ms: number, socket?: HostileSocket): Promise<boolean>;
  /** Lets the event loop run (the server may share this process). */
  turn(): Promise<void>;
}

/**
 * An attack: sends its traffic through `ctx` and resolves when done. The
 * runner closes whatever it leaves open.
 *
 * @internal
 */
export type AttackBody = (ctx: AttackContext) => Promise<void>;

/**
 * Checks a target and applies its defaults.
 *
 * @throws TypeError for a value that cannot work, naming it.
 * @internal
 */
export function resolveTarget(target: HostileTarget): ResolvedTarget {
  if (typeof target !== 'object' || target === null) {
    throw new TypeError(
      'nestjs-earwax/testing: the target must be an object { host?, port, probe }.',
    );
  }
  const { host = '127.0.0.1', port, from, probe } = target;
  if (typeof host !== 'string' || host.length === 0) {
    throw new TypeError(
      `nestjs-earwax/testing: target.host must be a host name or address, got ${JSON.stringify(host)}.`,
    );
  }
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    throw new TypeError(
      `nestjs-earwax/testing: target.port must be an integer from 1 to 65535, got ${String(port)}.`,
    );
  }
  const addresses =
    from === undefined ? [] : typeof from === 'string' ? [from] : [...from];
  if (addresses.some((a) => typeof a !== 'string' || a.length === 0)) {
    throw new TypeError(
      'nestjs-earwax/testing: target.from must be a local address or a list of them.',
    );
  }
  if (typeof probe !== 'object' || probe === null) {
    throw new TypeError(
      'nestjs-earwax/testing: target.probe must be { line, expect }: a line the server always answers, and its reply.',
    );
  }
  if (typeof probe.line !== 'string' || /[\r\n]/.test(probe.line)) {
    throw new TypeError(
      `nestjs-earwax/testing: probe.line must be a string without a line end, got ${JSON.stringify(probe.line)}.`,
    );
  }
  if (typeof probe.expect !== 'string' && !(probe.expect instanceof RegExp)) {
    throw new TypeError(
      'nestjs-earwax/testing: probe.expect must be a string or a RegExp.',
    );
  }
  if (
    probe.from !== undefined &&
    (typeof probe.from !== 'string' || probe.from.length === 0)
  ) {
    throw new TypeError(
      'nestjs-earwax/testing: probe.from must be a local address.',
    );
  }
  const encoding = probe.encoding ?? 'utf8';
  if (!Buffer.isEncoding(encoding)) {
    throw new TypeError(
      `nestjs-earwax/testing: probe.encoding ${JSON.stringify(encoding)} is not an encoding.`,
    );
  }
  return {
    host,
    port,
    from: addresses,
    probe: {
      line: probe.line,
      expect: probe.expect,
      timeoutMs: positiveInteger('probe.timeoutMs', probe.timeoutMs, 3000),
      intervalMs: positiveInteger('probe.intervalMs', probe.intervalMs, 250),
      telnet: probe.telnet ?? false,
      encoding,
      preamble: probe.preamble,
      from: probe.from,
    },
  };
}

/**
 * An option that must be a positive integer, or its default.
 *
 * @throws TypeError otherwise.
 * @internal
 */
export function positiveInteger(
  name: string,
  value: number | undefined,
  fallback: number,
): number {
  if (value === undefined) return fallback;
  if (!Number.isSafeInteger(value) || value < 1) {
    throw new TypeError(
      `nestjs-earwax/testing: ${name} must be a positive integer, got ${String(value)}.`,
    );
  }
  return value;
}

/**
 * Runs one attack between probes: checks the probe is served, runs the
 * body with probes every `intervalMs` once it is engaged, stops it at its
 * deadline, closes what it left open, probes again on the old connection
 * and a new one, and counts what happened. Never rejects: whatever goes
 * wrong is in the result's `error`.
 *
 * @internal
 */
export async function runAttack(
  attack: HostileAttackName,
  target: ResolvedTarget,
  description: string,
  timeoutMs: number,
  body: AttackBody,
): Promise<HostileResult> {
  const { host, port, probe } = target;
  const where = formatHostPort(host, port);
  const failures: string[] = [];
  const fail = (when: string, why: string) => {
    if (failures.length < MAX_FAILURES) failures.push(`${when}: ${why}`);
  };
  const sockets: HostileSocket[] = [];
  const probeReport = {
    before: false,
    during: { attempts: 0, served: 0 },
    after: false,
    afterNew: false,
    failures,
  };
  const result = (error: string | undefined, durationMs: number) => {
    const served =
      probeReport.before &&
      probeReport.during.attempts > 0 &&
      probeReport.during.served === probeReport.during.attempts &&
      probeReport.after &&
      probeReport.afterNew;
    return {
      attack,
      description,
      target: where,
      durationMs,
      connection: sockets[0]?.outcome(),
      connections: tally(sockets),
      probe: probeReport,
      served,
      error,
    } satisfies HostileResult;
  };

  // Before: a server that does not answer the probe cannot be judged.
  let session: ProbeSession;
  try {
    session = await ProbeSession.open(host, port, probe);
  } catch (err) {
    fail('before', describe(err));
    return result(
      `The probe could not connect to ${where} before the attack (${describe(err)}); check host, port and that the server runs.`,
      0,
    );
  }
  const before = await session.roundTrip();
  if (before !== undefined) {
    fail('before', before);
    await session.close();
    return result(
      `The probe was not served before the attack: check probe.line and probe.expect against what the server answers (${before}).`,
      0,
    );
  }
  probeReport.before = true;

  const deadline = new AbortController();
  const stopProbing = new AbortController();
  const wakeAll = () => {
    for (const socket of sockets) socket.wake();
  };
  deadline.signal.addEventListener('abort', wakeAll, { once: true });
  let from = 0;
  let probing: Promise<void> | undefined;
  let firstProbe: Promise<void> | undefined;
  const ctx: AttackContext = {
    target,
    signal: deadline.signal,
    open: (options = {}) => {
      const socket = new HostileSocket({
        host,
        port,
        from:
          target.from.length === 0
            ? undefined
            : target.from[from++ % target.from.length],
        read: options.read ?? true,
        telnet: options.telnet ?? probe.telnet,
        encoding: probe.encoding,
        expect: probe.expect,
        greeting: options.greeting,
        tls: options.tls,
        signal: deadline.signal,
      });
      sockets.push(socket);
      return socket;
    },
    engaged: () => {
      if (firstProbe) return firstProbe;
      let first!: () => void;
      firstProbe = new Promise((resolve) => (first = resolve));
      probing = (async () => {
        for (;;) {
          const failure = await session.roundTrip();
          probeReport.during.attempts++;
          if (failure === undefined) probeReport.during.served++;
          else fail('during', failure);
          first();
          if (stopProbing.signal.aborted) return;
          await pause(probe.intervalMs, stopProbing.signal);
          if (stopProbing.signal.aborted) return;
        }
      })();
      return firstProbe;
    },
    pause: async (ms, socket) => {
      if (deadline.signal.aborted) return false;
      if (socket) {
        let timedOut = false;
        const timer = setTimeout(() => {
          timedOut = true;
          socket.wake();
        }, ms);
        await socket.until(() => timedOut || socket.serverHasClosed);
        clearTimeout(timer);
        return !deadline.signal.aborted && !socket.serverHasClosed;
      }
      await pause(ms, deadline.signal);
      return !deadline.signal.aborted;
    },
    turn: () => nextTurn(),
  };

  const startedAt = Date.now();
  const timer = setTimeout(() => deadline.abort(), timeoutMs);
  let error: string | undefined;
  let stuck: NodeJS.Timeout | undefined;
  try {
    const running = body(ctx);
    const outcome = await Promise.race([
      running.then(() => 'done' as const),
      new Promise<'stuck'>((resolve) => {
        stuck = setTimeout(resolve, timeoutMs + STOP_GRACE_MS, 'stuck');
      }),
    ]);
    if (outcome === 'stuck') {
      error = `The attack did not stop within ${STOP_GRACE_MS} ms of its ${timeoutMs} ms deadline; its connections were destroyed.`;
      // Its waits end once its sockets close; nothing of it is left running.
      running.catch(() => undefined);
      for (const socket of sockets) socket.destroy();
    }
  } catch (err) {
    error = `The attack failed: ${describe(err)}`;
  } finally {
    clearTimeout(timer);
    clearTimeout(stuck);
  }
  const durationMs = Date.now() - startedAt;
  if (
    error === undefined &&
    sockets.length > 0 &&
    sockets.every((socket) => !socket.connected)
  ) {
    const { errors } = tally(sockets);
    const why = Object.keys(errors).join(', ') || 'no error reported';
    error = `No hostile connection could be opened (${why}); check target.from: each must be an address of this machine.`;
  }
  if (!firstProbe && error === undefined) {
    fail('during', 'the attack ended before it was engaged');
  }
  stopProbing.abort();
  await probing;
  // What the attack left open is closed cleanly, and given a moment.
  await Promise.all(sockets.map((socket) => socket.close(CLOSE_GRACE_MS)));
  deadline.abort();

  // After: the connection opened before, then a new one.
  const after = await session.roundTrip();
  probeReport.after = after === undefined;
  if (after !== undefined) fail('after', after);
  await session.close();
  try {
    const fresh = await ProbeSession.open(host, port, probe);
    const served = await fresh.roundTrip();
    probeReport.afterNew = served === undefined;
    if (served !== undefined) fail('after, new connection', served);
    await fresh.close();
  } catch (err) {
    fail('after, new connection', describe(err));
  }
  return result(error, durationMs);
}

/** Waits `ms`, or until `signal` aborts. */
function pause(ms: number, signal: AbortSignal): Promise<void> {
  if (signal.aborted) return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener('abort', done, { once: true });
  });
}

/** Counts the outcomes of an attack's connections. */
function tally(sockets: readonly HostileSocket[]): HostileConnectionTally {
  const endings: Record<HostileEnding, number> = {
    closed_by_server: 0,
    reset_by_server: 0,
    closed_by_client: 0,
    failed: 0,
  };
  const lastReceived: Record<string, number> = {};
  const errors: Record<string, number> = {};
  let connected = 0;
  let serverClosed = 0;
  let answered = 0;
  let greeted = 0;
  for (const socket of sockets) {
    const outcome = socket.outcome();
    endings[outcome.ending]++;
    if (socket.connected) connected++;
    if (outcome.serverClosed) serverClosed++;
    if (outcome.answered) answered++;
    if (socket.greeted) greeted++;
    lastReceived[outcome.lastReceived] =
      (lastReceived[outcome.lastReceived] ?? 0) + 1;
    if (outcome.error !== undefined) {
      errors[outcome.error] = (errors[outcome.error] ?? 0) + 1;
    }
  }
  return {
    attempted: sockets.length,
    connected,
    endings,
    serverClosed,
    answered,
    greeted,
    lastReceived,
    errors,
  };
}

function describe(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
