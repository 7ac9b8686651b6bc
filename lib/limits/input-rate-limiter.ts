/**
 * The resolved form of `InputRateOptions`, shared by every connection of a
 * transport.
 *
 * @internal
 */
export interface InputRate {
  readonly linesPerMs: number;
  readonly lineBurst: number;
  readonly bytesPerMs: number;
  readonly byteBurst: number;
  readonly dropsBeforeDisconnect: number;
}

/**
 * What {@link InputRateLimiter.take} decided about one line.
 *
 * - `pass`: deliver it.
 * - `warn`: drop it; the first drop of an episode (tell the client).
 * - `drop`: drop it quietly.
 * - `flood`: drop it and disconnect the client.
 *
 * @internal
 */
export type RateVerdict = 'pass' | 'warn' | 'drop' | 'flood';

/**
 * Two token buckets (lines and bytes) for one connection.
 *
 * Written here rather than taken from `rate-limiter-flexible` (which the
 * transport uses for connection rates): this check runs for every line on
 * the hot path and must be synchronous and allocation-free, while that
 * library's `consume()` returns a promise per call and keys its counters in
 * a shared store. A bucket that lives and dies with its connection needs
 * neither.
 *
 * The clock is read once per socket chunk ({@link refill}), not per line.
 *
 * @internal
 */
export class InputRateLimiter {
  private lines: number;
  private bytes: number;
  private last: number;
  private dropped = 0;

  constructor(
    private readonly rate: InputRate,
    now: number,
  ) {
    this.lines = rate.lineBurst;
    this.bytes = rate.byteBurst;
    this.last = now;
  }

  /** Adds the tokens earned since the last refill. */
  refill(now: number): void {
    const elapsed = now - this.last;
    if (elapsed <= 0) return;
    this.last = now;
    const rate = this.rate;
    this.lines = Math.min(
      rate.lineBurst,
      this.lines + elapsed * rate.linesPerMs,
    );
    this.bytes = Math.min(
      rate.byteBurst,
      this.bytes + elapsed * rate.bytesPerMs,
    );
    // A full line bucket means the client has been calm for a while: a later
    // burst starts a new episode (warned again, counted from zero).
    if (this.lines === rate.lineBurst) this.dropped = 0;
  }

  /**
   * Takes one line of `size` bytes.
   *
   * @param size The line's length in bytes.
   */
  take(size: number): RateVerdict {
    if (this.lines >= 1 && this.bytes >= size) {
      this.lines -= 1;
      this.bytes -= size;
      return 'pass';
    }
    this.dropped++;
    if (this.dropped > this.rate.dropsBeforeDisconnect) return 'flood';
    return this.dropped === 1 ? 'warn' : 'drop';
  }
}
