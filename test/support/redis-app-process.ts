import { type ChildProcess, spawn } from 'node:child_process';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Journal } from './journal.js';

const SUPPORT = join(process.cwd(), 'test', 'support');
/** Loading TypeScript and transpiling lib/ takes seconds on a busy machine. */
const START_TIMEOUT_MS = 30_000;
const STOP_TIMEOUT_MS = 8000;

/** How to start one app process of the cluster. */
export interface AppProcessOptions {
  readonly redisUrl: string;
  readonly prefix: string;
  readonly nodeId: string;
  readonly heartbeatMs?: number;
  readonly presenceTtlMs?: number;
  readonly requestTimeoutMs?: number;
}

/**
 * `node --import <loader hooks> <script>`: runs a TypeScript program of this
 * repository without a build (see shutdown-child-hooks.mjs). `cluster.fork()`
 * in such a program gives its workers the same flags.
 */
export function spawnTypeScript(
  script: string,
  env: NodeJS.ProcessEnv,
): ChildProcess {
  const hooks = pathToFileURL(join(SUPPORT, 'shutdown-child-hooks.mjs'));
  const register = `import { register } from 'node:module'; register(${JSON.stringify(hooks.href)});`;
  return spawn(
    process.execPath,
    [
      '--import',
      `data:text/javascript,${encodeURIComponent(register)}`,
      script,
    ],
    {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, NODE_NO_WARNINGS: '1', ...env },
    },
  );
}

/**
 * One app process of a clustered game (test/support/redis-app-child.ts): its
 * port, and every line it reported, to await.
 */
export class AppProcess {
  /** The lines the child wrote on stdout, in order. */
  readonly reports = new Journal();
  /** What it wrote on stderr. */
  stderr = '';
  port = 0;
  private readonly exited: Promise<void>;
  private exit: string | undefined;

  private constructor(
    readonly nodeId: string,
    private readonly child: ChildProcess,
  ) {
    let pending = '';
    child.stdout?.on('data', (chunk: Buffer) => {
      const parts = (pending + chunk.toString('utf8')).split('\n');
      pending = parts.pop() ?? '';
      for (const part of parts) this.reports.record(part);
    });
    child.stderr?.on('data', (chunk: Buffer) => {
      this.stderr = (this.stderr + chunk.toString()).slice(-8000);
    });
    this.exited = new Promise((resolve) => {
      child.once('exit', (code, signal) => {
        this.exit = signal ? `signal ${signal}` : `code ${code}`;
        this.reports.record(`exit:${this.exit}`);
        resolve();
      });
    });
  }

  /** Starts the app and waits until it listens. */
  static async start(options: AppProcessOptions): Promise<AppProcess> {
    const child = spawnTypeScript(join(SUPPORT, 'redis-app-child.ts'), {
      REDIS_URL: options.redisUrl,
      REDIS_PREFIX: options.prefix,
      NODE_ID: options.nodeId,
      ...(options.heartbeatMs !== undefined && {
        HEARTBEAT_MS: String(options.heartbeatMs),
      }),
      ...(options.presenceTtlMs !== undefined && {
        PRESENCE_TTL_MS: String(options.presenceTtlMs),
      }),
      ...(options.requestTimeoutMs !== undefined && {
        REQUEST_TIMEOUT_MS: String(options.requestTimeoutMs),
      }),
    });
    const app = new AppProcess(options.nodeId, child);
    try {
      const line = await app.waitFor(/^port:\d+$/, START_TIMEOUT_MS);
      app.port = Number(line.slice('port:'.length));
      return app;
    } catch (err) {
      await app.kill();
      throw err;
    }
  }

  /** Whether the process is still running. */
  get running(): boolean {
    return this.exit === undefined;
  }

  /** How many lines it has reported: a mark for `waitFor(…, from)`. */
  mark(): number {
    return this.reports.entries.length;
  }

  /**
   * Waits for a reported line matching `pattern`, among the lines from
   * index `from` on, and returns it.
   */
  async waitFor(pattern: RegExp, timeoutMs = 5000, from = 0): Promise<string> {
    const match = () =>
      this.reports.entries.slice(from).find((line) => pattern.test(line));
    await this.reports
      .waitFor(
        () => match() !== undefined,
        `${this.nodeId} to report ${String(pattern)}`,
        timeoutMs,
      )
      .catch((err: Error) => {
        throw new Error(
          `${err.message}; ${this.nodeId} ${this.exit ? `exited (${this.exit})` : 'is running'}; stderr: ${this.stderr}`,
        );
      });
    return match() as string;
  }

  /** Stops it with SIGTERM (Nest's shutdown hooks run) and waits. */
  async stop(): Promise<void> {
    if (!this.running) return;
    this.child.kill('SIGTERM');
    if (!(await this.waitExit(STOP_TIMEOUT_MS))) await this.kill();
  }

  /** Kills it at once (SIGKILL), as a crash would, and waits. */
  async kill(): Promise<void> {
    if (!this.running) return;
    this.child.kill('SIGKILL');
    if (!(await this.waitExit(STOP_TIMEOUT_MS))) {
      throw new Error(`${this.nodeId} did not exit after SIGKILL.`);
    }
  }

  private async waitExit(timeoutMs: number): Promise<boolean> {
    let timer: NodeJS.Timeout | undefined;
    const exited = await Promise.race([
      this.exited.then(() => true),
      new Promise<false>(
        (resolve) => (timer = setTimeout(() => resolve(false), timeoutMs)),
      ),
    ]);
    clearTimeout(timer);
    return exited;
  }
}
