import { availableParallelism } from 'node:os';

/** The settings of the cluster sample. */
export interface ClusterSettings {
  /** Where every worker listens: one port, shared through the primary. */
  readonly host: string;
  readonly port: number;
  /** How many worker processes serve players. */
  readonly workers: number;
  /** The Redis that joins the workers (and other hosts running the sample). */
  readonly redisUrl: string;
  /** Keys and channels of this game in Redis. */
  readonly redisPrefix: string;
}

/**
 * The settings, from the environment:
 *
 * | variable       | default                         | meaning                                    |
 * | -------------- | ------------------------------- | ------------------------------------------ |
 * | `HOST`, `PORT` | `127.0.0.1`, `4000`             | where the workers listen (`0`: any port)   |
 * | `WORKERS`      | the number of CPUs, at least 2  | worker processes                           |
 * | `REDIS_URL`    | `redis://127.0.0.1:6379`        | the Redis the workers (and hosts) share    |
 * | `REDIS_PREFIX` | `cluster-chat`                  | the game's keys and channels in Redis      |
 *
 * @throws Error naming the variable when a value is not valid.
 */
export function clusterSettings(
  env: NodeJS.ProcessEnv = process.env,
): ClusterSettings {
  const redisUrl = env.REDIS_URL || 'redis://127.0.0.1:6379';
  if (!/^rediss?:\/\//.test(redisUrl)) {
    throw new Error(
      `REDIS_URL must be a redis:// or rediss:// URL; got ${JSON.stringify(redisUrl)}.`,
    );
  }
  return {
    host: env.HOST || '127.0.0.1',
    port: integer(env, 'PORT', 4000, 0, 65535),
    workers: integer(
      env,
      'WORKERS',
      Math.max(2, availableParallelism()),
      1,
      64,
    ),
    redisUrl,
    redisPrefix: env.REDIS_PREFIX || 'cluster-chat',
  };
}

/** A whole number from `env[name]` in `[min, max]`; `fallback` when unset. */
function integer(
  env: NodeJS.ProcessEnv,
  name: string,
  fallback: number,
  min: number,
  max: number,
): number {
  const text = env[name]?.trim();
  if (text === undefined || text === '') return fallback;
  const value = Number(text);
  if (!/^\d+$/.test(text) || value < min || value > max) {
    throw new Error(
      `${name} must be a whole number from ${min} to ${max}; got ${JSON.stringify(env[name])}.`,
    );
  }
  return value;
}
