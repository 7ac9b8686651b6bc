import { Waiters } from './waiters.js';

/**
 * An append-only record that tests await instead of sleeping: handlers and
 * loggers write to it, tests wait for an entry to appear. A wait has no
 * time limit of its own (see waiters.ts): Jest's timeout of the test bounds
 * one whose entry never comes, and names it.
 */
export class Journal<T = string> {
  readonly entries: T[] = [];
  private readonly waits = new Waiters(
    () => `entries: ${JSON.stringify(this.entries)}`,
  );

  record(entry: T): void {
    this.entries.push(entry);
    this.waits.wake();
  }

  /** How many entries satisfy `predicate`. */
  count(predicate: (entry: T) => boolean): number {
    return this.entries.filter(predicate).length;
  }

  /** Waits until `predicate` holds for the entries. */
  waitFor(
    predicate: (entries: readonly T[]) => boolean,
    what = 'a journal entry',
  ): Promise<void> {
    return this.waits.until(() => predicate(this.entries), what);
  }

  /**
   * Waits for an entry equal to `entry` (or satisfying it). Each new entry is
   * tested once, so waiting over a long journal stays linear.
   */
  waitForEntry(entry: T | ((e: T) => boolean)): Promise<void> {
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
    );
  }

  /**
   * Nothing more will be recorded (`reason`, e.g. "the child exited"): a
   * pending or later wait that the entries do not satisfy fails at once.
   */
  end(reason: string): void {
    this.waits.end(reason);
  }
}
