/**
 * An append-only record that tests await instead of sleeping: handlers and
 * loggers write to it, tests wait for an entry to appear.
 */
export class Journal<T = string> {
  readonly entries: T[] = [];
  private waiters: Array<() => void> = [];

  record(entry: T): void {
    this.entries.push(entry);
    for (const waiter of [...this.waiters]) waiter();
  }

  /** How many entries satisfy `predicate`. */
  count(predicate: (entry: T) => boolean): number {
    return this.entries.filter(predicate).length;
  }

  /** Waits until `predicate` holds for the entries, bounded by `timeoutMs`. */
  waitFor(
    predicate: (entries: readonly T[]) => boolean,
    what = 'a journal entry',
    timeoutMs = 3000,
  ): Promise<void> {
    if (predicate(this.entries)) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== check);
        reject(
          new Error(
            `Timed out after ${timeoutMs} ms waiting for ${what}; entries: ${JSON.stringify(this.entries)}`,
          ),
        );
      }, timeoutMs);
      const check = () => {
        if (!predicate(this.entries)) return;
        clearTimeout(timer);
        this.waiters = this.waiters.filter((w) => w !== check);
        resolve();
      };
      this.waiters.push(check);
    });
  }

  /**
   * Waits for an entry equal to `entry` (or satisfying it). Each new entry is
   * tested once, so waiting over a long journal stays linear.
   */
  waitForEntry(
    entry: T | ((e: T) => boolean),
    timeoutMs = 3000,
  ): Promise<void> {
    const match =
      typeof entry === 'function'
        ? (entry as (e: T) => boolean)
        : (e: T) => e === entry || JSON.stringify(e) === JSON.stringify(entry);
    let checked = 0;
    return this.waitFor(
      (es) => {
        for (; checked < es.length; checked++)
          if (match(es[checked])) return true;
        return false;
      },
      `entry ${String(entry)}`,
      timeoutMs,
    );
  }
}
