import { pendingWait } from './pending-waits.js';

/**
 * Waits for state kept in Redis by other processes to settle: reads it with
 * `read` until `accept` takes its value, every `intervalMs`. Cluster state
 * (presence written by another process, a key expiring in Redis) announces
 * nothing this process can await, so reading again is the honest wait; it
 * has no time limit of its own (a busy machine makes it longer, not wrong):
 * Jest's timeout of the test bounds it and names it with the last value
 * seen (see pending-waits.ts).
 */
export function eventually<T>(
  read: () => Promise<T>,
  accept: (value: T) => boolean,
  what: string,
  intervalMs = 50,
): Promise<T> {
  let last = 'nothing yet';
  let abandoned = false;
  const settle = async (): Promise<T> => {
    for (;;) {
      const value = await read();
      if (accept(value)) return value;
      last = JSON.stringify(value);
      await new Promise((resolve) => setTimeout(resolve, intervalMs));
      // Its test is over (it failed): read no more, and never settle.
      if (abandoned) await new Promise<never>(() => undefined);
    }
  };
  return pendingWait(
    settle(),
    () => `${what}; last seen: ${last}`,
    () => (abandoned = true),
  );
}
