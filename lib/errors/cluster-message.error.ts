/**
 * A message, a presence entry, a stored ban or held counts read from Redis
 * are not what this version writes: not JSON, of an unknown kind, with a
 * field missing, unknown, of the wrong type, out of range or too long. It is
 * dropped whole (and counted in `earwax_cluster_messages_rejected_total`);
 * nothing of it is applied, and nothing else is affected.
 *
 * @publicApi
 */
export class ClusterMessageError extends Error {
  override readonly name = 'ClusterMessageError';
}
