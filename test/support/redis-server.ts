import { afterAll, beforeAll } from '@jest/globals';
import { Redis } from 'ioredis';
import { type ChildProcess, spawn } from 'node:child_process';
import { accessSync, constants, mkdtempSync, rmSync } from 'node:fs';
import { type AddressInfo, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';

/** Where Debian's redis-server package puts the binary, and elsewhere. */
const REDIS_DIRS = ['/usr/bin', '/usr/local/bin', '/usr/sbin', '/bin'];
const BIND_ATTEMPTS = 3;
const START_TIMEOUT_MS = 5000;
const STOP_TIMEOUT_MS = 3000;
const OUTPUT_LIMIT = 4000;
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
  /** The last few KiB of what redis-server wrote. */
  output = '';
  private child: ChildProcess | undefined;
  private exited: Promise<void> = Promise.resolve();
  private exit: string | undefined;

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
    return this.child !== undefined && this.exit === undefined;
  }

  /**
   * Starts redis-server on a free port and waits until it accepts
   * connections. A start that loses its port to another process is retried
   * on a new one. Throws if redis-server is not installed.
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

  /** Kills it at once (SIGKILL), as a crash would, and waits for the exit. */
  async kill(): Promise<void> {
    if (!this.running) return;
    this.child?.kill('SIGKILL');
    await this.waitExit('SIGKILL');
  }

  /** Stops it (SIGTERM, then SIGKILL) and removes its folder. */
  async stop(): Promise<void> {
    if (this.running) {
      this.child?.kill('SIGTERM');
      if (!(await this.waitExit('SIGTERM', false))) await this.kill();
    }
    rmSync(this.dir, { recursive: true, force: true });
  }

  private async launch(): Promise<void> {
    const child = spawn(
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
      { cwd: this.dir, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    this.child = child;
    this.exit = undefined;
    this.output = '';
    this.exited = new Promise((resolve) => {
      child.once('exit', (code, signal) => {
        this.exit = signal ? `signal ${signal}` : `code ${code}`;
        resolve();
      });
      child.once('error', (err) => {
        this.exit = `error ${err.message}`;
        resolve();
      });
    });
    const ready = new Promise<void>((resolve, reject) => {
      const keep = (chunk: Buffer) => {
        this.output = (this.output + chunk.toString()).slice(-OUTPUT_LIMIT);
        if (READY.test(this.output)) resolve();
      };
      child.stdout?.on('data', keep);
      child.stderr?.on('data', keep);
      void this.exited.then(() =>
        reject(
          new Error(
            `redis-server exited (${this.exit}) while starting; its output: ${this.output}`,
          ),
        ),
      );
    });
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        ready,
        new Promise<never>((_, reject) => {
          timer = setTimeout(
            () =>
              reject(
                new Error(
                  `redis-server did not accept connections on 127.0.0.1:${this.port} within ${START_TIMEOUT_MS} ms; its output: ${this.output}`,
                ),
              ),
            START_TIMEOUT_MS,
          );
        }),
      ]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** Waits for the exit; `false` (or a throw, if `must`) after the bound. */
  private async waitExit(signal: string, must = true): Promise<boolean> {
    let timer: NodeJS.Timeout | undefined;
    const exited = await Promise.race([
      this.exited.then(() => true),
      new Promise<false>(
        (resolve) =>
          (timer = setTimeout(() => resolve(false), STOP_TIMEOUT_MS)),
      ),
    ]);
    clearTimeout(timer);
    if (!exited && must) {
      throw new Error(
        `redis-server (pid ${this.child?.pid}) did not exit after ${signal}.`,
      );
    }
    return exited;
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
