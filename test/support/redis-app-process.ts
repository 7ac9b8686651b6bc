import { join } from 'node:path';
import {
  type ChildEnd,
  spawnTypeScript,
  type WatchedChild,
} from './child-process.js';
import type { Journal } from './journal.js';

const SUPPORT = join(process.cwd(), 'test', 'support');

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
 * One app process of a clustered game (test/support/redis-app-child.ts): its
 * port, and every line it reported, to await.
 */
export class AppProcess {
  port = 0;

  private constructor(
    readonly nodeId: string,
    private readonly child: WatchedChild,
  ) {}

  /**
   * Starts the app and waits until it listens (its `port:<n>` line): however
   * long that takes on a busy machine, and failing at once, with its stderr,
   * if it exits first.
   */
  static async start(options: AppProcessOptions): Promise<AppProcess> {
    const child = spawnTypeScript(
      options.nodeId,
      join(SUPPORT, 'redis-app-child.ts'),
      {
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
      },
    );
    const app = new AppProcess(options.nodeId, child);
    try {
      const line = await child.waitForLine(/^port:\d+$/);
      app.port = Number(line.slice('port:'.length));
      return app;
    } catch (err) {
      await app.kill();
      throw err;
    }
  }

  /** The lines the child wrote on stdout, in order. */
  get reports(): Journal {
    return this.child.lines;
  }

  /** What it wrote on stderr. */
  get stderr(): string {
    return this.child.stderr;
  }

  /** Whether the process is still running. */
  get running(): boolean {
    return this.child.running;
  }

  /** How many lines it has reported: a mark for `waitFor(…, from)`. */
  mark(): number {
    return this.reports.entries.length;
  }

  /**
   * Waits for a reported line matching `pattern`, among the lines from
   * index `from` on, and returns it; fails at once, with its stderr, if the
   * process ends without reporting one.
   */
  waitFor(pattern: RegExp, from = 0): Promise<string> {
    return this.child.waitForLine(pattern, from);
  }

  /**
   * Stops it with SIGTERM (Nest's shutdown hooks run) and waits until it has
   * ended and everything it wrote has been read; how it ended.
   */
  stop(): Promise<ChildEnd> {
    return this.child.stop('SIGTERM');
  }

  /** Kills it at once (SIGKILL), as a crash would, and waits for its end. */
  async kill(): Promise<void> {
    await this.child.stop('SIGKILL');
  }
}
