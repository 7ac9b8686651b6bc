/**
 * Waits for state kept in Redis by other processes to settle: tries `read`
 * until `accept` takes its value, every `intervalMs`, and fails after
 * `timeoutMs` with the last value seen. Cluster state (presence written by
 * another process, a key expiring in Redis) announces nothing this process
 * can await, so a bounded retry is the honest wait.
 */
export async function eventually<T>(
  read: () => Promise<T>,
  accept: (value: T) => boolean,
  what: string,
  timeoutMs = 5000,
  intervalMs = 50,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await read();
    if (accept(value)) return value;
    if (Date.now() >= deadline) {
      throw new Error(
        `Timed out after ${timeoutMs} ms waiting for ${what}; last seen: ${JSON.stringify(value)}`,
      );
    }
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}
