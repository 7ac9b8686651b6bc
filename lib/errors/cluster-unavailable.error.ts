/**
 * The other processes of the cluster cannot be reached (the adapter's store,
 * Redis, is down or was never reached): a cluster-wide query or command
 * could not be answered. Local connections are still served; the operation
 * can be retried once the cluster is back.
 *
 * @publicApi
 */
export class ClusterUnavailableError extends Error {
  override readonly name = 'ClusterUnavailableError';

  /**
   * @param operation What could not be done (`'fetchConnections'`).
   * @param cause Why, if known (the store's error).
   */
  constructor(
    readonly operation: string,
    cause?: unknown,
  ) {
    super(
      `${operation}: the other processes cannot be reached` +
        (cause instanceof Error ? ` (${cause.message})` : '') +
        '; only this process is served until the cluster is back.',
      cause === undefined ? undefined : { cause },
    );
  }
}
