/**
 * Every wait of the test support ends on an event (the awaited state, or an
 * event that makes it impossible, such as a closed socket or an exited
 * child), never on a time budget of its own: a busy machine is slow, not
 * wrong. What bounds a wait that never ends is Jest's timeout of the test or
 * hook. So that such a failure still says what was awaited and what was
 * seen, each wait is listed here while it is pending; the test environment
 * (test/support/jest-environment.mjs) adds the list to the failure of a test
 * or hook that fails (a timeout included) while waits are pending.
 */

/** One pending wait: describes what it awaits and what it has seen. */
export interface PendingWait {
  describe(): string;
  /**
   * Called when the test or hook that started it is over, so that a wait
   * nobody awaits any more stops working (its promise then stays pending).
   */
  abandon?(): void;
}

/** Shared with the test environment through the test's global object. */
const REGISTRY = Symbol.for('nestjs-earwax.pending-waits');

function registry(): Set<PendingWait> {
  const scope = globalThis as { [REGISTRY]?: Set<PendingWait> };
  return (scope[REGISTRY] ??= new Set());
}

/**
 * Lists `promise` as a pending wait, described by `describe()` (called only
 * when a failure is reported), until it settles; returns it. `abandon()` is
 * called if it is still pending when its test is over.
 */
export function pendingWait<T>(
  promise: Promise<T>,
  describe: () => string,
  abandon?: () => void,
): Promise<T> {
  const wait: PendingWait = { describe, abandon };
  const waits = registry();
  waits.add(wait);
  const done = () => waits.delete(wait);
  promise.then(done, done);
  return promise;
}

/**
 * Awaits `promise`, an event with no time limit of its own (a process's
 * exit, `close()` resolving), listed as a pending wait named `what`.
 */
export function awaitEvent<T>(promise: Promise<T>, what: string): Promise<T> {
  return pendingWait(promise, () => what);
}
