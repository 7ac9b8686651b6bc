/**
 * A block list target is not an IP address or CIDR range. The offending value
 * is on {@link BlockListError.target}.
 *
 * Thrown by {@link BlockListService.ban} and {@link BlockListService.unban}.
 *
 * @publicApi
 */
export class BlockListError extends Error {
  override readonly name = 'BlockListError';

  /**
   * @param target The offending target, as given (it may not be a string).
   * @param message What is wrong with it.
   */
  constructor(
    readonly target: unknown,
    message: string,
  ) {
    super(message);
  }
}
