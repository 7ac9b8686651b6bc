import type { Logger } from '@nestjs/common';
import type { RateLimiterAbstract } from 'rate-limiter-flexible';
import type { ConnectionRateOptions } from '../interfaces/earwax-options.interface.js';
import { ConnectionRate } from './connection-rate.js';

/**
 * What the limits ask of the rest of the cluster: the application's
 * `ConnectionRegistry`, which asks its adapter.
 *
 * @internal
 */
export interface ClusterHeldCounts {
  /** Sockets of `ip` the other processes hold, as last heard (no waiting). */
  heldElsewhere(ip: string): number;
  /** This process holds one more (1) or one fewer (-1) socket of `ip`. */
  heldChanged(ip: string, delta: 1 | -1): void;
}

/**
 * Per-address admission limits of one transport: how many sockets each IP
 * holds, and how fast each IP opens new ones.
 *
 * With a cluster adapter, `maxConnectionsPerIp` counts the address's sockets
 * on every process: this transport's own count plus what the adapter last
 * heard of the others, read from memory, so the accept path never waits.
 * A burst from one address spread over several processes can exceed the
 * limit until their counts have reached each other (see `RedisAdapter`).
 *
 * @internal
 */
export class ConnectionLimits {
  private readonly held = new Map<string, number>();
  /** `connectionRate` given as options: counted here, synchronously. */
  private readonly rate: ConnectionRate | null;
  /** `connectionRate` given as a limiter (Redis...): asked, asynchronously. */
  private readonly limiter: RateLimiterAbstract | null;

  /**
   * @param maxPerIp `maxConnectionsPerIp`.
   * @param rate `connectionRate`: options, a limiter, or none.
   * @param logger Where a failing limiter is reported.
   * @param cluster The counts of the other processes (the registry, read on
   *   each call, as the transport may be bound to another one). Without it,
   *   this transport counts alone.
   */
  constructor(
    private readonly maxPerIp: number | false,
    rate: ConnectionRateOptions | RateLimiterAbstract | false,
    private readonly logger: Logger,
    private readonly cluster?: () => ClusterHeldCounts,
  ) {
    this.rate =
      rate === false || isLimiter(rate)
        ? null
        : new ConnectionRate(rate.limit, rate.windowMs);
    this.limiter = rate !== false && isLimiter(rate) ? rate : null;
  }

  /**
   * Counts a socket from `ip` until {@link release}.
   *
   * @returns Whether `ip` was within `maxConnectionsPerIp` before this one,
   *   counting the other processes' sockets as last heard.
   */
  hold(ip: string): boolean {
    const count = (this.held.get(ip) ?? 0) + 1;
    this.held.set(ip, count);
    if (this.maxPerIp === false) return true;
    // Only a limited transport shares its counts: nobody reads them else.
    const cluster = this.cluster?.();
    if (cluster === undefined) return count <= this.maxPerIp;
    cluster.heldChanged(ip, 1);
    return count + cluster.heldElsewhere(ip) <= this.maxPerIp;
  }

  /** Stops counting a socket of `ip`. */
  release(ip: string): void {
    const count = (this.held.get(ip) ?? 0) - 1;
    if (count > 0) this.held.set(ip, count);
    else this.held.delete(ip);
    if (this.maxPerIp !== false) this.cluster?.().heldChanged(ip, -1);
  }

  /**
   * How many sockets `ip` holds: here, plus on the other processes as last
   * heard.
   */
  heldBy(ip: string): number {
    const here = this.held.get(ip) ?? 0;
    return this.maxPerIp === false || this.cluster === undefined
      ? here
      : here + this.cluster().heldElsewhere(ip);
  }

  /**
   * Spends one new-connection point of `ip`.
   *
   * @returns Whether it is within the rate (`true` without a limit); a
   *   promise of it when the rate is a limiter, which answers
   *   asynchronously. Never rejects: a limiter whose store fails admits the
   *   connection (a rate limit must not lock every player out when Redis is
   *   down) and logs a warning.
   */
  consume(ip: string): boolean | Promise<boolean> {
    if (this.rate !== null) return this.rate.consume(ip);
    const limiter = this.limiter;
    if (limiter === null) return true;
    return limiter.consume(ip).then(
      () => true,
      (rejection: unknown) => {
        if (rejection instanceof Error) {
          this.logger.warn(
            `Connection rate limiter failed; admitting ${ip}: ${rejection.message}`,
          );
          return true;
        }
        return false;
      },
    );
  }
}

function isLimiter(
  value: ConnectionRateOptions | RateLimiterAbstract,
): value is RateLimiterAbstract {
  return typeof (value as RateLimiterAbstract).consume === 'function';
}
