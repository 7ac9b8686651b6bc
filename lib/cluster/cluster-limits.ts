/**
 * The bounds of what one process of a cluster may send the others, in one
 * place: a message past them is dropped whole by the processes that receive
 * it (and counted in `earwax_cluster_messages_rejected_total`). They are far
 * above what a game sends, so only a forged or corrupted message meets them.
 *
 * @internal
 */
export const CLUSTER_LIMITS = {
  /** A whole message, in characters of its JSON text. */
  messageLength: 8 * 1024 * 1024,
  /** An id (of a connection, a request, a process), a room or event name. */
  nameLength: 1024,
  /** An IP address or CIDR range. */
  addressLength: 64,
  /** A ban's reason. */
  reasonLength: 4096,
  /** The entries of a list or map (rooms, exceptions, held counts). */
  entries: 100_000,
  /** How deep JSON data (server-side events, shared state) may nest. */
  jsonDepth: 64,
} as const;

/**
 * An object key that is never taken from another process: where such a key
 * meets an object, it reaches the prototype rather than a property of its
 * own.
 *
 * @internal
 */
export const FORBIDDEN_KEY = '__proto__';
