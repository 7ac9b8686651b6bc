/**
 * The names of the keys and channels of one game, all under `{prefix}:` (a
 * Redis Cluster hash tag: one slot, so multi-key transactions work there
 * too).
 *
 * - `{prefix}:nodes`: sorted set of live processes, scored by when their
 *   presence expires.
 * - `{prefix}:presence:<node>`: hash of one process's connections (id to
 *   JSON), expiring with its heartbeat.
 * - `{prefix}:held:<node>`: hash of one process's held sockets per IP
 *   address (for a cluster-wide `maxConnectionsPerIp`), expiring with its
 *   heartbeat; deleted when it holds none.
 * - `{prefix}:ban:<target>`: one ban (JSON); a temporary ban expires in
 *   Redis at its own expiry.
 * - `{prefix}:rate:<address>`: a shared connection-rate counter, expiring
 *   with its window.
 * - channel `{prefix}:all`: broadcasts, server-side events, ban changes,
 *   held counts.
 * - channel `{prefix}:node:<node>`: commands for one process, and replies.
 *
 * @internal
 */
export class RedisKeys {
  readonly nodes: string;
  readonly all: string;
  /** A `SCAN MATCH` pattern for every ban key. */
  readonly banPattern: string;
  /** The prefix of the connection-rate counters. */
  readonly rate: string;
  private readonly base: string;

  constructor(prefix: string) {
    if (typeof prefix !== 'string' || prefix.length === 0) {
      throw new TypeError('RedisAdapter: "prefix" must be a non-empty string.');
    }
    if (/[{}*?[\]\\]/.test(prefix)) {
      throw new TypeError(
        `RedisAdapter: "prefix" ${JSON.stringify(prefix)} may not contain { } * ? [ ] or \\ (it is used as a hash tag and in SCAN patterns).`,
      );
    }
    this.base = `{${prefix}}`;
    this.nodes = `${this.base}:nodes`;
    this.all = `${this.base}:all`;
    this.banPattern = `${this.base}:ban:*`;
    this.rate = `${this.base}:rate`;
  }

  /** The hash of a process's connections. */
  presence(node: string): string {
    return `${this.base}:presence:${node}`;
  }

  /** The hash of a process's held sockets per address. */
  held(node: string): string {
    return `${this.base}:held:${node}`;
  }

  /** The key of a ban of a (normalised) target. */
  ban(target: string): string {
    return `${this.base}:ban:${target}`;
  }

  /** The channel of one process. */
  node(node: string): string {
    return `${this.base}:node:${node}`;
  }
}
