import { Cluster, Redis, type RedisOptions } from 'ioredis';
import type {
  RedisAdapterOptions,
  RedisClusterConnection,
} from './redis-adapter-options.interface.js';

/**
 * A client of a single Redis (standalone or through Sentinel) or of a Redis
 * Cluster.
 *
 * @internal
 */
export type RedisClient = Redis | Cluster;

/**
 * What the adapter's connections always use, whatever the user passes:
 * nothing waits in memory while Redis is down (`enableOfflineQueue: false`:
 * a command fails at once; `maxRetriesPerRequest: 0`: a command caught by a
 * disconnect fails instead of being replayed later), and commands issued in
 * the same tick go out in one write (`enableAutoPipelining`), so a burst of
 * connections costs one round trip.
 */
const BOUNDED = {
  enableOfflineQueue: false,
  maxRetriesPerRequest: 0,
  enableAutoPipelining: true,
  lazyConnect: false,
} as const;

/**
 * Opens the adapter's two connections: one for commands and publishing, one
 * for its subscriptions (a subscribed connection can do nothing else).
 * Subscriptions are renewed by the adapter itself on every reconnection, so
 * `autoResubscribe` is off.
 *
 * @internal
 */
export function createClients(
  spec: RedisAdapterOptions['redis'],
  name: string,
): { client: RedisClient; subscriber: RedisClient } {
  if (isCluster(spec)) {
    const options = spec.options ?? {};
    const client = new Cluster(spec.cluster, {
      ...options,
      enableOfflineQueue: false,
      enableAutoPipelining: true,
      lazyConnect: false,
      redisOptions: {
        ...options.redisOptions,
        maxRetriesPerRequest: 0,
        connectionName: name,
      },
    });
    const subscriber = client.duplicate(undefined, {
      enableAutoPipelining: false,
      redisOptions: {
        ...options.redisOptions,
        maxRetriesPerRequest: 0,
        connectionName: `${name}:sub`,
        autoResubscribe: false,
      },
    });
    return { client, subscriber };
  }
  const options: RedisOptions = {
    ...(typeof spec === 'object' ? spec : {}),
    ...BOUNDED,
    connectionName: name,
  };
  const client =
    typeof spec === 'string'
      ? new Redis(spec, options)
      : new Redis(spec === undefined ? { ...options } : options);
  const subscriber = client.duplicate({
    enableAutoPipelining: false,
    autoResubscribe: false,
    connectionName: `${name}:sub`,
  });
  return { client, subscriber };
}

/**
 * Every key matching a `SCAN` pattern, on every master of a cluster.
 *
 * @internal
 */
export async function scanKeys(
  client: RedisClient,
  pattern: string,
): Promise<string[]> {
  const nodes = client instanceof Cluster ? client.nodes('master') : [client];
  const found: string[] = [];
  for (const node of nodes) {
    for await (const keys of node.scanStream({ match: pattern, count: 500 })) {
      found.push(...(keys as string[]));
    }
  }
  return found;
}

function isCluster(
  spec: RedisAdapterOptions['redis'],
): spec is RedisClusterConnection {
  return (
    typeof spec === 'object' &&
    Array.isArray((spec as Partial<RedisClusterConnection>).cluster)
  );
}
