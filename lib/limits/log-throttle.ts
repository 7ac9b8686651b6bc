/**
 * Keeps a storm of alike warnings (thousands of refused connections a
 * second from one address) from becoming a storm of log lines: Nest's
 * console logger writes synchronously, so logging each would cost the
 * server more than refusing it. The first of each kind in a window is
 * logged as usual; the rest are counted, and one line sums them up when the
 * window ends.
 *
 * Written here rather than taken from a logging library: the transport logs
 * through Nest's `Logger`, whichever logger the application set, and this
 * only decides whether a line is written.
 *
 * @internal
 */
export class LogThrottle {
  private readonly windows = new Map<string, Window>();
  private timer: NodeJS.Timeout | undefined;

  /**
   * @param windowMs How long one window lasts.
   * @param summarise Called at a window's end with its key and how many were
   *   held back.
   * @param maxKeys How many keys are followed one by one; further ones share
   *   the key `'*'`, so many addresses cannot grow the map without bound.
   */
  constructor(
    private readonly windowMs: number,
    private readonly summarise: (key: string, held: number) => void,
    private readonly maxKeys = 1000,
  ) {}

  /**
   * Whether to log an event of kind `key` now.
   *
   * @returns `false` when it has been counted instead.
   */
  allow(key: string, now = Date.now()): boolean {
    if (!this.windows.has(key) && this.windows.size >= this.maxKeys) {
      key = '*';
    }
    const window = this.windows.get(key);
    if (window === undefined || now >= window.until) {
      if (window !== undefined && window.held > 0) {
        this.summarise(key, window.held);
      }
      this.windows.set(key, { until: now + this.windowMs, held: 0 });
      this.timer ??= setInterval(() => this.sweep(), this.windowMs).unref();
      return true;
    }
    window.held++;
    return false;
  }

  /** Sums up every open window now, and stops. */
  flush(): void {
    for (const [key, window] of this.windows) {
      if (window.held > 0) this.summarise(key, window.held);
    }
    this.windows.clear();
    this.stop();
  }

  /** Ends the windows that are over. */
  private sweep(now = Date.now()): void {
    for (const [key, window] of this.windows) {
      if (now < window.until) continue;
      if (window.held > 0) this.summarise(key, window.held);
      this.windows.delete(key);
    }
    if (this.windows.size === 0) this.stop();
  }

  private stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }
}

interface Window {
  until: number;
  held: number;
}
