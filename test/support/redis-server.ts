import { afterAll, beforeAll } from '@jest/globals';
import { Redis } from 'ioredis';
import { accessSync, constants, mkdtempSync, rmSync } from 'node:fs';
import { type AddressInfo, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { WatchedChild } from './child-process.js';

/** Where Debian's redis-server package puts the binary, and elsewhere. */
const REDIS_DIRS = ['/usr/bin', '/usr/local/bin', '/usr/sbin', '/bin'];
const BIND_ATTEMPTS = 3;
/** Cleanup only: SIGKILL if SIGTERM has not ended it by then. */
const STOP_KILL_AFTER_MS = 3000;
const READY = /Ready to accept connections/;

/** The redis-server binary, or an Error that says how to install it. */
export function findRedisServer(): string {
  const dirs = [
    ...(process.env.PATH ?? '').split(delimiter).filter(Boolean),
    ...REDIS_DIRS,
  ];
  for (const dir of dirs) {
    const candidate = join(dir, 'redis-server');
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // Not there; try the next one.
    }
  }
  throw new Error(
    `redis-server is not installed (looked in $PATH and ${REDIS_DIRS.join(', ')}): ` +
      'install the Debian package with `apt-get install redis-server` (.ci/run does).',
  );
}

/** A port that was free on 127.0.0.1 a moment ago. */
async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/**
 * A real `redis-server` for a test: in the foreground, on 127.0.0.1 and a
 * free port, with nothing persisted (`--save '' --appendonly no`), in a
 * scratch folder removed on stop. It can be killed (a crash: SIGKILL) and
 * started again on the same port, empty, as a restarted cache would be.
 */
export class RedisServer {
  private child: WatchedChild | undefined;

  private constructor(
    readonly port: number,
    private readonly dir: string,
  ) {}

  /** `redis://127.0.0.1:<port>`. */
  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  /** Whether redis-server is running. */
  get running(): boolean {
    return this.child?.running ?? false;
  }

  /** What the current (or last) redis-server wrote, stdout and stderr. */
  get output(): string {
    const child = this.child;
    return child ? `${child.lines.entries.join('\n')}\n${child.stderr}` : '';
  }

  /**
   * Starts redis-server on a free port and waits until it says it accepts
   * connections, or fails at once with its output if it exits first. A
   * start that loses its port to another process is retried on a new one.
   * Throws if redis-server is not installed.
   */
  static async start(): Promise<RedisServer> {
    const dir = mkdtempSync(join(tmpdir(), 'earwax-redis-'));
    try {
      for (let attempt = 1; ; attempt++) {
        const server = new RedisServer(await freePort(), dir);
        try {
          await server.launch();
          return server;
        } catch (err) {
          await server.kill();
          const bindFailed = /Address already in use/i.test(server.output);
          if (bindFailed && attempt < BIND_ATTEMPTS) continue;
          throw err;
        }
      }
    } catch (err) {
      rmSync(dir, { recursive: true, force: true });
      throw err;
    }
  }

  /** Starts it again on the same port (after `kill()` or `stop()`): empty. */
  async restart(): Promise<void> {
    if (this.running) throw new Error('redis-server is still running.');
    await this.launch();
  }

  /** Kills it at once (SIGKILL), as a crash would, and waits for its end. */
  async kill(): Promise<void> {
    await this.child?.stop('SIGKILL');
  }

  /** Stops it (SIGTERM, then SIGKILL) and removes its folder. */
  async stop(): Promise<void> {
    await this.child?.stop('SIGTERM', STOP_KILL_AFTER_MS);
    rmSync(this.dir, { recursive: true, force: true });
  }

  private async launch(): Promise<void> {
    const child = WatchedChild.spawn(
      'redis-server',
      findRedisServer(),
      [
        '--port',
        String(this.port),
        '--bind',
        '127.0.0.1',
        '--save',
        '',
        '--appendonly',
        'no',
        '--daemonize',
        'no',
        '--dir',
        this.dir,
        '--loglevel',
        'notice',
      ],
      { cwd: this.dir, stderrLines: true },
    );
    this.child = child;
    await child.waitForLine(READY);
  }
}

/** The redis-server of a spec file, and a client to look into it. */
export interface SharedRedis {
  readonly server: RedisServer;
  /** An ioredis client of the test's own, for what the apps left in Redis. */
  readonly inspect: Redis;
}

/**
 * Starts one redis-server for the spec file that calls it (in `beforeAll`),
 * with an `inspect` client, and stops both in `afterAll`.
 */
export function useRedisServer(): SharedRedis {
  let server: RedisServer | undefined;
  let inspect: Redis | undefined;
  beforeAll(async () => {
    server = await RedisServer.start();
    inspect = new Redis(server.url, { retryStrategy: () => 100 });
    inspect.on('error', () => undefined);
  }, 20_000);
  afterAll(async () => {
    inspect?.disconnect();
    await server?.stop();
  });
  const started = <T>(value: T | undefined): T => {
    if (value === undefined) throw new Error('redis-server is not started.');
    return value;
  };
  return {
    get server() {
      return started(server);
    },
    get inspect() {
      return started(inspect);
    },
  };
}
