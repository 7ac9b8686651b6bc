import { Logger } from '@nestjs/common';
import {
  RateLimiterMemory,
  RateLimiterRedis,
  RateLimiterRes,
} from 'rate-limiter-flexible';
import type { RedisClient } from './redis-connection.js';

/**
 * Options of `RedisAdapter.connectionRate()`.
 *
 * @publicApi
 */
export interface SharedConnectionRateOptions {
  /** New connections one IP address may open per window, cluster-wide. */
  readonly limit: number;
  /**
   * The window, in whole seconds' worth of ms (Redis counts in seconds).
   * @default 10000
   */
  readonly windowMs?: number;
}

/**
 * A connection-rate limiter (the transport's `connectionRate` option) whose
 * per-address counters are shared by every process through Redis, without
 * the accept path waiting for Redis: each process decides from its own
 * in-memory count at once, and counts the connection in Redis
 * (`rate-limiter-flexible`'s `RateLimiterRedis`, one key per address that
 * expires with its window) in the background. When that count shows the
 * address past the limit across the cluster, the address is refused on this
 * process too until the window ends.
 *
 * So an address gets at most `limit` connections a window on one process,
 * and, across N processes, `limit` plus at most one more on each other
 * process (the one that finds the cluster's count full). While Redis is
 * down, each process counts alone.
 *
 * Made by `RedisAdapter.connectionRate()`.
 *
 * @publicApi
 */
export class SharedConnectionRate extends RateLimiterMemory {
  private readonly logger = new Logger('SharedConnectionRate');
  private readonly limit: number;
  private readonly windowSeconds: number;
  private shared: RateLimiterRedis | undefined;
  private sharedClient: RedisClient | undefined;

  /**
   * @param options The limit and window.
   * @param redisClient The adapter's Redis connection, once it has one.
   * @param sharedPrefix What the counters' keys start with.
   * @internal
   */
  constructor(
    options: SharedConnectionRateOptions,
    private readonly redisClient: () => RedisClient | undefined,
    private readonly sharedPrefix: string,
  ) {
    const limit = options.limit;
    const windowMs = options.windowMs ?? 10_000;
    if (!Number.isInteger(limit) || limit < 1) {
      throw new TypeError(
        `connectionRate: "limit" must be a whole number of connections, at least 1; got ${String(limit)}.`,
      );
    }
    if (!Number.isInteger(windowMs) || windowMs < 1000 || windowMs % 1000) {
      throw new TypeError(
        `connectionRate: "windowMs" must be whole seconds (1000, 2000, ...), as Redis counts them; got ${String(windowMs)}.`,
      );
    }
    super({ points: limit, duration: windowMs / 1000 });
    this.limit = limit;
    this.windowSeconds = windowMs / 1000;
  }

  /**
   * Spends a connection of `key` (an IP address): decided from this
   * process's count, and counted in Redis in the background.
   */
  override consume(
    key: string | number,
    points = 1,
    options?: { [key: string]: unknown },
  ): Promise<RateLimiterRes> {
    const decided = super.consume(key, points, options);
    this.countShared(String(key), points);
    return decided;
  }

  private countShared(key: string, points: number): void {
    const shared = this.store();
    if (!shared) return;
    shared.consume(key, points).then(
      () => undefined,
      (rejection: unknown) => {
        // An Error means Redis is down: this process's count decides alone.
        if (!(rejection instanceof RateLimiterRes)) return;
        const seconds = Math.max(1, Math.ceil(rejection.msBeforeNext / 1000));
        void this.block(key, seconds).then(() =>
          this.logger.warn(
            `${key} opened more than ${this.limit} connection(s) in ${this.windowSeconds} s across the cluster: refused here for ${seconds} s.`,
          ),
        );
      },
    );
  }

  /** The Redis counter, made on the adapter's current connection. */
  private store(): RateLimiterRedis | undefined {
    const client = this.redisClient();
    if (client === undefined) return undefined;
    if (client !== this.sharedClient) {
      this.sharedClient = client;
      this.shared = new RateLimiterRedis({
        storeClient: client,
        keyPrefix: this.sharedPrefix,
        points: this.limit,
        duration: this.windowSeconds,
        // Fail at once while Redis is down, rather than wait.
        rejectIfRedisNotReady: true,
      });
    }
    return this.shared;
  }
}
