/**
 * Thrown (as a rejection) by the waits of the testing kit
 * (`expectLine()`, `readLines()`, `expectClose()`, `logs.waitFor()`, ...)
 * when what was expected did not happen in time, or can no longer happen
 * because the connection closed. The message says everything needed to see
 * why: the client, what was expected, the timeout, the lines received (most
 * recent last) with any unterminated line, and whether the connection is
 * still open or who closed it.
 *
 * @publicApi
 */
export class EarwaxExpectationError extends Error {
  override readonly name = 'EarwaxExpectationError';

  /**
   * @param message The whole explanation.
   * @param origin An error created where the wait was called, whose stack
   *   replaces this one's, so a failure points at the test line that waited
   *   rather than at a timer.
   */
  constructor(message: string, origin?: Error) {
    super(message);
    const frames = origin?.stack?.split('\n').slice(1).join('\n');
    if (frames) this.stack = `${this.name}: ${message}\n${frames}`;
  }
}
