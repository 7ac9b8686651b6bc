/**
 * Bounded waits on state that changes as events arrive, for test clients:
 * `until` resolves once a condition holds and rejects after `timeoutMs`
 * with what was awaited and what was seen, so no test hangs or sleeps. The
 * owner calls `wake()` whenever its state may have changed.
 */
export class Waiters {
  private waiters: Array<() => void> = [];

  /** @param seen Describes the owner's state for a timeout message. */
  constructor(private readonly seen: () => string) {}

  /** Resolves once `condition()` holds; rejects after `timeoutMs`. */
  until(
    condition: () => boolean,
    what: string,
    timeoutMs = 3000,
  ): Promise<void> {
    if (condition()) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== check);
        reject(
          new Error(
            `Timed out after ${timeoutMs} ms waiting for ${what}; ${this.seen()}`,
          ),
        );
      }, timeoutMs);
      const check = () => {
        if (!condition()) return;
        clearTimeout(timer);
        this.waiters = this.waiters.filter((w) => w !== check);
        resolve();
      };
      this.waiters.push(check);
    });
  }

  /** Re-checks every pending condition. */
  wake(): void {
    for (const waiter of [...this.waiters]) waiter();
  }
}
