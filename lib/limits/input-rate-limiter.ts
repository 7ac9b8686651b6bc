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
 * What {@link InputRateLimiter.take} or {@link InputRateLimiter.takeChunk}
 * decided about one input event or one chunk.
 *
 * - `pass`: go on.
 * - `warn`: drop it; the first drop of an episode (tell the client).
 * - `drop`: drop it quietly.
 * - `flood`: drop it and disconnect the client.
 *
 * @internal
 */
export type RateVerdict = 'pass' | 'warn' | 'drop' | 'flood';

/**
 * Two token buckets for one connection: bytes, taken by every chunk read
 * from the socket, and events, taken by every line (in raw framing, chunk),
 * telnet command, negotiation and subnegotiation.
 *
 * Every byte read counts, whatever becomes of it: data, telnet protocol the
 * parser consumes, a line that is then dropped. The byte bucket is taken per
 * chunk ({@link takeChunk}) and may go into debt; a chunk that leaves it in
 * debt is dropped as a whole (one drop), every event in it with it. Events
 * then only take an event token ({@link take}), so the per-line path is one
 * comparison and one subtraction.
 *
 * Written here rather than taken from `rate-limiter-flexible` (which the
 * transport takes for a connection rate given as a limiter): this check
 * runs for every line on the hot path and must be synchronous and
 * allocation-free, while that library's `consume()` returns a promise per
 * call and keys its counters in a shared store. A bucket that lives and
 * dies with its connection needs neither.
 *
 * The clock is read once per socket chunk, not per event.
 *
 * @internal
 */
export class InputRateLimiter {
  private lines: number;
  private bytes: number;
  private last: number;
  private dropped = 0;
  /** The chunk being read left the byte bucket in debt: its events drop. */
  private over = false;

  constructor(
    private readonly rate: InputRate,
    now: number,
  ) {
    this.lines = rate.lineBurst;
    this.bytes = rate.byteBurst;
    this.last = now;
  }

  /**
   * Adds the tokens earned since the last chunk, then takes one chunk's
   * bytes. A chunk that leaves the byte bucket in debt is over the rate: it
   * counts as one drop, and every {@link take} until the next chunk drops
   * quietly (without counting again).
   *
   * @param size The chunk's length in bytes.
   * @param now The clock, in milliseconds.
   */
  takeChunk(size: number, now: number): RateVerdict {
    const rate = this.rate;
    const elapsed = now - this.last;
    if (elapsed > 0) {
      this.last = now;
      this.lines = Math.min(
        rate.lineBurst,
        this.lines + elapsed * rate.linesPerMs,
      );
      this.bytes = Math.min(
        rate.byteBurst,
        this.bytes + elapsed * rate.bytesPerMs,
      );
      // Both buckets full means the client has been calm for a while: a
      // later burst starts a new episode (warned again, counted from zero).
      if (this.lines === rate.lineBurst && this.bytes === rate.byteBurst) {
        this.dropped = 0;
      }
    }
    // In debt, the bucket refills from below zero: every byte read is paid.
    this.bytes -= size;
    this.over = this.bytes < 0;
    return this.over ? this.drop() : 'pass';
  }

  /** Takes one input event (a line, a raw chunk, a telnet command...). */
  take(): RateVerdict {
    if (this.over) return 'drop';
    if (this.lines >= 1) {
      this.lines -= 1;
      return 'pass';
    }
    return this.drop();
  }

  private drop(): RateVerdict {
    const dropped = ++this.dropped;
    if (dropped > this.rate.dropsBeforeDisconnect) return 'flood';
    return dropped === 1 ? 'warn' : 'drop';
  }
}
