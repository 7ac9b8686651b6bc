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
import { WatchedChild } from './child-process.js';
import { awaitEvent } from './pending-waits.js';

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
/** Cleanup only: SIGKILL if SIGTERM has not ended it by then. */
const STOP_KILL_AFTER_MS = 3000;
/** How long to wait before probing again a port that refused. */
const PROBE_RETRY_MS = 25;

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
 * `'not yet'` when refused (nothing listens on the port yet). It has no time
 * limit: a connection in the port's backlog waits for HAProxy's event loop.
 */
function probe(port: number): Promise<'accepted' | 'not yet'> {
  return new Promise((resolve) => {
    const socket = connect({
      host: '127.0.0.1',
      port,
      localAddress: HAPROXY_PROBE_SOURCE,
    });
    let connected = false;
    socket.on('connect', () => (connected = true));
    socket.on('error', () => undefined);
    socket.resume();
    socket.once('close', () => resolve(connected ? 'accepted' : 'not yet'));
  });
}

/**
 * A real HAProxy, `haproxy -f <cfg> -db` (foreground, no daemon), in front of
 * an Earwax listener: one frontend on 127.0.0.1 per PROXY version, each
 * forwarding to Earwax with `send-proxy` (v1) or `send-proxy-v2` (v2), in
 * `mode tcp`, so the same configuration serves a TLS listener (passthrough).
 */
export class Haproxy {
  private stopping: Promise<void> | undefined;

  private constructor(
    private readonly child: WatchedChild,
    private readonly dir: string,
    /** Each frontend's port, by the PROXY version its backend sends. */
    readonly ports: ReadonlyMap<SendProxyVersion, number>,
  ) {}

  /** Everything HAProxy wrote (stdout and stderr). */
  get output(): string {
    return `${this.child.lines.entries.join('\n')}\n${this.child.stderr}`;
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
   * accepts, however long that takes on a busy machine; fails at once, with
   * its output, if HAProxy exits first. A start that fails to bind a port
   * (taken since it was found free) is retried with new ports. Throws if
   * the haproxy binary is not installed.
   */
  static async start(options: HaproxyOptions): Promise<Haproxy> {
    const binary = findHaproxy();
    const versions = options.versions ?? [1, 2];
    const dir = mkdtempSync(join(tmpdir(), 'earwax-haproxy-'));
    try {
      for (let attempt = 1; ; attempt++) {
        const found = await freePorts(versions.length);
        const ports = new Map(versions.map((v, i) => [v, found[i]]));
        const file = join(dir, 'haproxy.cfg');
        writeFileSync(file, config(options.earwaxPort, ports));
        const child = WatchedChild.spawn(
          'haproxy',
          binary,
          ['-f', file, '-db'],
          {
            cwd: dir,
            stderrLines: true,
          },
        );
        const haproxy = new Haproxy(child, dir, ports);
        try {
          await awaitEvent(
            haproxy.waitReady(),
            `haproxy to serve 127.0.0.1:${found.join(', ')}`,
          );
          return haproxy;
        } catch (err) {
          await child.stop('SIGKILL');
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
    this.stopping ??= this.child
      .stop('SIGTERM', STOP_KILL_AFTER_MS)
      .then(() => undefined)
      .finally(() => rmSync(this.dir, { recursive: true, force: true }));
    return this.stopping;
  }

  /**
   * Probes every frontend until HAProxy serves it; a refused probe (not
   * bound yet) is tried again shortly. Fails at once if HAProxy exits.
   */
  private async waitReady(): Promise<void> {
    const exited = this.child.closed.then(() => 'exited' as const);
    for (const [version, port] of this.ports) {
      for (;;) {
        const result = await Promise.race([probe(port), exited]);
        if (result === 'exited' || !this.child.running) {
          await this.child.closed;
          throw new Error(
            `haproxy exited while starting (its v${version} frontend on 127.0.0.1:${port}); ${this.child.describe()}`,
          );
        }
        if (result === 'accepted') break;
        let timer: NodeJS.Timeout | undefined;
        await Promise.race([
          exited,
          new Promise(
            (resolve) => (timer = setTimeout(resolve, PROBE_RETRY_MS)),
          ),
        ]);
        clearTimeout(timer);
      }
    }
  }
}
