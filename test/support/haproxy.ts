import { type ChildProcess, spawn } from 'node:child_process';
import {
  accessSync,
  constants,
  mkdtempSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { type AddressInfo, connect, createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';

/** The PROXY protocol version HAProxy sends: `send-proxy` or `send-proxy-v2`. */
export type SendProxyVersion = 1 | 2;

/** Options of {@link startHaproxy}. */
export interface HaproxyOptions {
  /**
   * The port of the Earwax listener on 127.0.0.1 that HAProxy forwards to:
   * a plain one, or a TLS one for TLS passthrough (HAProxy runs in `mode
   * tcp` and never terminates TLS, so the client's TLS bytes follow the
   * PROXY header as they came).
   */
  readonly earwaxPort: number;
  /** One frontend (with its own port) per version; default `[1, 2]`. */
  readonly versions?: readonly SendProxyVersion[];
  /** How long HAProxy may take to accept on every frontend; default 5 s. */
  readonly startTimeoutMs?: number;
}

/**
 * The address the readiness probe connects from. Every frontend rejects it
 * (`tcp-request connection reject`) before choosing a backend, so probing
 * never opens a connection to Earwax, and a probe that HAProxy closes shows
 * HAProxy itself is running its event loop on that port.
 */
export const HAPROXY_PROBE_SOURCE = '127.0.0.254';

/** Where Debian's haproxy package puts the binary, and where else it may be. */
const HAPROXY_DIRS = [
  '/usr/sbin',
  '/usr/local/sbin',
  '/usr/bin',
  '/usr/local/bin',
  '/sbin',
];
const BIND_ATTEMPTS = 3;
const STOP_TIMEOUT_MS = 3000;
const PROBE_TIMEOUT_MS = 1000;
const PROBE_RETRY_MS = 25;
const OUTPUT_LIMIT = 4000;

/** The haproxy binary, or an Error that says how to install it. */
export function findHaproxy(): string {
  const dirs = [
    ...(process.env.PATH ?? '').split(delimiter).filter(Boolean),
    ...HAPROXY_DIRS,
  ];
  for (const dir of dirs) {
    const candidate = join(dir, 'haproxy');
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // Not there; try the next one.
    }
  }
  throw new Error(
    `HAProxy (haproxy) is not installed (looked in $PATH and ${HAPROXY_DIRS.join(', ')}): ` +
      'install the Debian package with `apt-get install haproxy` (.ci/run does).',
  );
}

/** The configuration: one frontend and one backend per version. */
function config(
  earwaxPort: number,
  frontends: ReadonlyMap<SendProxyVersion, number>,
): string {
  const lines = [
    'global',
    '  maxconn 256',
    // A port HAProxy cannot have alone fails its start (and is retried).
    '  noreuseport',
    '',
    'defaults',
    '  mode tcp',
    '  timeout connect 2s',
    '  timeout client 10s',
    '  timeout server 10s',
  ];
  for (const [version, port] of frontends) {
    const send = version === 1 ? 'send-proxy' : 'send-proxy-v2';
    lines.push(
      '',
      `frontend fe_v${version}`,
      `  bind 127.0.0.1:${port}`,
      `  tcp-request connection reject if { src ${HAPROXY_PROBE_SOURCE} }`,
      `  default_backend be_v${version}`,
      '',
      `backend be_v${version}`,
      `  server s1 127.0.0.1:${earwaxPort} ${send}`,
    );
  }
  return lines.join('\n') + '\n';
}

/** `count` distinct ports that were free on 127.0.0.1 a moment ago. */
async function freePorts(count: number): Promise<number[]> {
  const servers: Server[] = [];
  try {
    for (let i = 0; i < count; i++) {
      const server = createServer();
      servers.push(server);
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(0, '127.0.0.1', () => resolve());
      });
    }
    return servers.map((s) => (s.address() as AddressInfo).port);
  } finally {
    await Promise.all(
      servers.map(
        (s) =>
          new Promise<void>((resolve) =>
            s.listening ? s.close(() => resolve()) : resolve(),
          ),
      ),
    );
  }
}

/**
 * One connection attempt from {@link HAPROXY_PROBE_SOURCE}: `'accepted'`
 * once connected and then closed by the other side (HAProxy's reject),
 * `'not yet'` when refused or not closed within the probe's bound.
 */
function probe(port: number): Promise<'accepted' | 'not yet'> {
  return new Promise((resolve) => {
    const socket = connect({
      host: '127.0.0.1',
      port,
      localAddress: HAPROXY_PROBE_SOURCE,
    });
    let connected = false;
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      socket.destroy();
    }, PROBE_TIMEOUT_MS);
    socket.on('connect', () => (connected = true));
    socket.on('error', () => undefined);
    socket.resume();
    socket.once('close', () => {
      clearTimeout(timer);
      resolve(connected && !timedOut ? 'accepted' : 'not yet');
    });
  });
}

/**
 * A real HAProxy, `haproxy -f <cfg> -db` (foreground, no daemon), in front of
 * an Earwax listener: one frontend on 127.0.0.1 per PROXY version, each
 * forwarding to Earwax with `send-proxy` (v1) or `send-proxy-v2` (v2), in
 * `mode tcp`, so the same configuration serves a TLS listener (passthrough).
 */
export class Haproxy {
  /** Everything HAProxy wrote (stdout and stderr), the last few KiB. */
  output = '';
  private readonly exited: Promise<void>;
  private exit: string | undefined;
  private stopping: Promise<void> | undefined;

  private constructor(
    private readonly child: ChildProcess,
    private readonly dir: string,
    /** Each frontend's port, by the PROXY version its backend sends. */
    readonly ports: ReadonlyMap<SendProxyVersion, number>,
  ) {
    const keep = (chunk: Buffer) => {
      this.output = (this.output + chunk.toString()).slice(-OUTPUT_LIMIT);
    };
    child.stdout?.on('data', keep);
    child.stderr?.on('data', keep);
    this.exited = new Promise((resolve) => {
      child.once('exit', (code, signal) => {
        this.exit ??= signal ? `signal ${signal}` : `code ${code}`;
        resolve();
      });
      child.once('error', (err) => {
        this.exit ??= `error ${err.message}`;
        resolve();
      });
    });
  }

  /** The port of the frontend whose backend sends PROXY `version`. */
  port(version: SendProxyVersion): number {
    const port = this.ports.get(version);
    if (port === undefined) {
      throw new Error(`HAProxy was started without a v${version} frontend.`);
    }
    return port;
  }

  /**
   * Starts HAProxy in front of `earwaxPort` and waits until every frontend
   * accepts. A start that fails to bind a port (taken since it was found
   * free) is retried with new ports; anything else fails with its output.
   * Throws if the haproxy binary is not installed.
   */
  static async start(options: HaproxyOptions): Promise<Haproxy> {
    const binary = findHaproxy();
    const versions = options.versions ?? [1, 2];
    const timeoutMs = options.startTimeoutMs ?? 5000;
    const dir = mkdtempSync(join(tmpdir(), 'earwax-haproxy-'));
    try {
      for (let attempt = 1; ; attempt++) {
        const found = await freePorts(versions.length);
        const ports = new Map(versions.map((v, i) => [v, found[i]]));
        const file = join(dir, 'haproxy.cfg');
        writeFileSync(file, config(options.earwaxPort, ports));
        const child = spawn(binary, ['-f', file, '-db'], {
          cwd: dir,
          stdio: ['ignore', 'pipe', 'pipe'],
        });
        const haproxy = new Haproxy(child, dir, ports);
        try {
          await haproxy.waitReady(timeoutMs);
          return haproxy;
        } catch (err) {
          await haproxy.kill();
          const bindFailed = /cannot bind|Address already in use/i.test(
            haproxy.output,
          );
          if (bindFailed && attempt < BIND_ATTEMPTS) continue;
          throw err;
        }
      }
    } catch (err) {
      rmSync(dir, { recursive: true, force: true });
      throw err;
    }
  }

  /** Stops HAProxy (SIGTERM, then SIGKILL) and removes its folder. */
  stop(): Promise<void> {
    this.stopping ??= this.kill().finally(() =>
      rmSync(this.dir, { recursive: true, force: true }),
    );
    return this.stopping;
  }

  private async waitReady(timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (const [version, port] of this.ports) {
      for (;;) {
        if (this.exit !== undefined) {
          throw new Error(
            `haproxy exited (${this.exit}) while starting; its output: ${this.output}`,
          );
        }
        if ((await probe(port)) === 'accepted' && this.exit === undefined) {
          break;
        }
        if (Date.now() >= deadline) {
          throw new Error(
            `haproxy's v${version} frontend (127.0.0.1:${port}) did not accept within ${timeoutMs} ms; its output: ${this.output}`,
          );
        }
        // Bounded retry: the next probe, or at once if haproxy exits.
        let timer: NodeJS.Timeout | undefined;
        await Promise.race([
          this.exited,
          new Promise(
            (resolve) => (timer = setTimeout(resolve, PROBE_RETRY_MS)),
          ),
        ]);
        clearTimeout(timer);
      }
    }
  }

  /** Ends the process: SIGTERM, then SIGKILL if it has not exited in time. */
  private async kill(): Promise<void> {
    if (this.exit !== undefined) return;
    for (const signal of ['SIGTERM', 'SIGKILL'] as const) {
      this.child.kill(signal);
      let timer: NodeJS.Timeout | undefined;
      const exited = await Promise.race([
        this.exited.then(() => true),
        new Promise<false>(
          (resolve) =>
            (timer = setTimeout(() => resolve(false), STOP_TIMEOUT_MS)),
        ),
      ]);
      clearTimeout(timer);
      if (exited) return;
    }
    throw new Error(
      `haproxy (pid ${this.child.pid}) did not exit after SIGTERM and SIGKILL.`,
    );
  }
}
