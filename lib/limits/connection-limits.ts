import type { Logger } from '@nestjs/common';
import {
  RateLimiterMemory,
  type RateLimiterAbstract,
} from 'rate-limiter-flexible';
import type { ConnectionRateOptions } from '../interfaces/earwax-options.interface.js';

/**
 * Per-address admission limits of one transport: how many sockets each IP
 * holds, and how fast each IP opens new ones.
 *
 * @internal
 */
export class ConnectionLimits {
  private readonly held = new Map<string, number>();
  private readonly limiter: RateLimiterAbstract | null;

  constructor(
    private readonly maxPerIp: number | false,
    rate: ConnectionRateOptions | RateLimiterAbstract | false,
    private readonly logger: Logger,
  ) {
    if (rate === false) {
      this.limiter = null;
    } else if (isLimiter(rate)) {
      this.limiter = rate;
    } else {
      // rate-limiter-flexible counts in whole points per `duration` seconds;
      // fractional durations are honoured by its memory store.
      this.limiter = new RateLimiterMemory({
        points: rate.limit,
        duration: rate.windowMs / 1000,
      });
    }
  }

  /**
   * Counts a socket from `ip` until {@link release}.
   *
   * @returns Whether `ip` was within `maxConnectionsPerIp` before this one.
   */
  hold(ip: string): boolean {
    const count = (this.held.get(ip) ?? 0) + 1;
    this.held.set(ip, count);
    return this.maxPerIp === false || count <= this.maxPerIp;
  }

  /** Stops counting a socket of `ip`. */
  release(ip: string): void {
    const count = (this.held.get(ip) ?? 0) - 1;
    if (count > 0) this.held.set(ip, count);
    else this.held.delete(ip);
  }

  /** How many sockets `ip` holds. */
  heldBy(ip: string): number {
    return this.held.get(ip) ?? 0;
  }

  /**
   * Spends one new-connection point of `ip`.
   *
   * @returns `true` when within the rate (or there is no limit); a promise of
   *   it when the limiter answers asynchronously. Never rejects: a limiter
   *   whose store fails admits the connection (a rate limit must not lock
   *   every player out when Redis is down) and logs a warning.
   */
  consume(ip: string): true | Promise<boolean> {
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
