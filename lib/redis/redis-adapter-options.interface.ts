import type { ClusterNode, ClusterOptions, RedisOptions } from 'ioredis';

/**
 * Redis Cluster: its startup nodes and ioredis `ClusterOptions`.
 *
 * @publicApi
 */
export interface RedisClusterConnection {
  /** Some of the cluster's nodes (`[{ host, port }]` or `'redis://…'`). */
  readonly cluster: ClusterNode[];
  /** ioredis options of the cluster client. */
  readonly options?: ClusterOptions;
}

/**
 * Options of {@link RedisAdapter}.
 *
 * @publicApi
 */
export interface RedisAdapterOptions {
  /**
   * Where Redis is: a URL (`'redis://:secret@10.0.0.7:6379/0'`), ioredis
   * `RedisOptions` (Sentinel: `{ sentinels: [...], name: 'mymaster' }`; TLS:
   * `{ tls: {...} }`), or Redis Cluster nodes. The adapter opens two
   * connections (one for pub/sub) and always sets `enableOfflineQueue:
   * false` and `maxRetriesPerRequest: 0` on them: while Redis is down,
   * commands fail at once instead of piling up in memory.
   * @default 'redis://127.0.0.1:6379'
   */
  redis?: string | RedisOptions | RedisClusterConnection;
  /**
   * What every key and channel starts with, so several games (or a test
   * run) share one Redis. Keys are `{prefix}:…`: the braces make the prefix
   * a Redis Cluster hash tag, so all keys of a game live in one slot.
   * @default 'earwax'
   */
  prefix?: string;
  /**
   * This process's id in the cluster (`ConnectionPresence.node`).
   * @default '<host name>/<pid>/<random>'
   */
  nodeId?: string;
  /**
   * How often this process renews its presence, in ms.
   * @default 5000
   */
  heartbeatInterval?: number;
  /**
   * How long a process's presence outlives its last heartbeat, in ms: a
   * process that crashed leaves the cluster's lists after this long. At
   * least twice `heartbeatInterval`.
   * @default 15000
   */
  presenceTtl?: number;
  /**
   * How long a command for a connection on another process
   * (`disconnectById`, ...) waits for that process to answer, in ms.
   * @default 5000
   */
  requestTimeout?: number;
  /**
   * How long application start-up waits for Redis, in ms. If Redis is not
   * reachable by then, the application starts anyway, serving its own
   * players, and joins the cluster once Redis answers.
   * @default 5000
   */
  connectTimeout?: number;
}
