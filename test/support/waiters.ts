import { pendingWait } from './pending-waits.js';

/**
 * Waits on state that changes as events arrive, for test clients and child
 * processes: `until` resolves once a condition holds, and rejects at once
 * when the owner has ended (its socket closed, its process exited) without
 * the condition holding, with what was awaited and what was seen. No wait
 * has a time limit of its own: a slow machine only makes it longer, and
 * Jest's timeout of the test bounds one that never ends (the pending wait
 * is then named in the failure: see pending-waits.ts). The owner calls
 * `wake()` whenever its state may have changed, and `end()` once it cannot
 * change any more.
 */
export class Waiters {
  private waiters: Array<() => void> = [];
  private ending: string | undefined;

  /** @param seen Describes the owner's state for a failure message. */
  constructor(private readonly seen: () => string) {}

  /** Why the owner ended, once it has. */
  get ended(): string | undefined {
    return this.ending;
  }

  /**
   * Resolves once `condition()` holds; rejects if the owner ends first (or
   * has ended) without it holding.
   */
  until(condition: () => boolean, what: string): Promise<void> {
    if (condition()) return Promise.resolve();
    if (this.ending !== undefined) return Promise.reject(this.failure(what));
    const waiting = new Promise<void>((resolve, reject) => {
      const check = () => {
        if (condition()) resolve();
        else if (this.ending !== undefined) reject(this.failure(what));
        else return;
        this.waiters = this.waiters.filter((w) => w !== check);
      };
      this.waiters.push(check);
    });
    return pendingWait(waiting, () => `${what}; ${this.seen()}`);
  }

  /** Re-checks every pending condition. */
  wake(): void {
    for (const waiter of [...this.waiters]) waiter();
  }

  /**
   * The owner's state can no longer change (`reason`, e.g. "the connection
   * closed"): every pending wait whose condition does not hold now fails.
   */
  end(reason: string): void {
    this.ending ??= reason;
    this.wake();
  }

  private failure(what: string): Error {
    return new Error(`Waited for ${what}, but ${this.ending}; ${this.seen()}`);
  }
}
