/** One address's window: connections counted since it started. */
interface RateWindow {
  count: number;
  endsAt: number;
}

/**
 * New connections per address in fixed windows, as `rate-limiter-flexible`'s
 * `RateLimiterMemory` counts them (`points: limit`, `duration: windowMs`): an
 * address's window starts with its first connection after the previous one
 * ended, and every connection in it counts, refused ones too. It answers at
 * once, where that library's `consume()` returns a promise: this runs for
 * every accepted socket, and a promise would put the rest of admission a
 * microtask later.
 *
 * Ended windows are forgotten by one timer for every address, not one each.
 *
 * @internal
 */
export class ConnectionRate {
  private readonly windows = new Map<string, RateWindow>();
  private sweeper: NodeJS.Timeout | undefined;

  /**
   * @param limit Connections allowed per window.
   * @param windowMs The window, in milliseconds.
   */
  constructor(
    private readonly limit: number,
    private readonly windowMs: number,
  ) {}

  /**
   * Counts a new connection of `ip`.
   *
   * @returns Whether it is within the limit of its window.
   */
  consume(ip: string, now = Date.now()): boolean {
    let window = this.windows.get(ip);
    if (window === undefined || window.endsAt <= now) {
      window = { count: 0, endsAt: now + this.windowMs };
      this.windows.set(ip, window);
      this.sweeper ??= this.sweepLater();
    }
    return ++window.count <= this.limit;
  }

  private sweepLater(): NodeJS.Timeout {
    const timer = setTimeout(() => this.sweep(), this.windowMs);
    timer.unref();
    return timer;
  }

  private sweep(): void {
    const now = Date.now();
    for (const [ip, window] of this.windows) {
      if (window.endsAt <= now) this.windows.delete(ip);
    }
    this.sweeper = this.windows.size > 0 ? this.sweepLater() : undefined;
  }
}
