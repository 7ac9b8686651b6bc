import { isIP } from 'node:net';
import type { EarwaxTransportOptions } from '../../../lib/index.js';

/** What the server says to everyone when it stops (SIGTERM, Ctrl-C). */
export const DEFAULT_SHUTDOWN_MESSAGE =
  'The chat server is shutting down. Bye!';

/**
 * How the chat server listens and what it tolerates, from the environment:
 *
 * | variable                 | default          | meaning                                          |
 * | ------------------------ | ---------------- | ------------------------------------------------ |
 * | `HOST`, `PORT`           | `127.0.0.1:4000` | where it listens                                 |
 * | `MAX_CONNECTIONS`        | `1000`           | connections at once                              |
 * | `MAX_CONNECTIONS_PER_IP` | `10`             | connections from one address at once             |
 * | `IDLE_TIMEOUT_MS`        | `1800000`        | silence before a player is dropped; 0: never     |
 * | `FIRST_INPUT_TIMEOUT_MS` | `600000`         | time a newcomer has to type a name; 0: no limit  |
 * | `INPUT_LINES_PER_SECOND` | `5`              | lines one player may send per second             |
 * | `SHUTDOWN_MESSAGE`       | see above        | the goodbye line; empty: none                    |
 * | `BLOCKED`                | none             | addresses or CIDR ranges, comma-separated        |
 *
 * @throws Error naming the variable when a value is not valid.
 */
export function chatTransportOptions(
  env: NodeJS.ProcessEnv = process.env,
): EarwaxTransportOptions {
  const idleTimeout = integer(env, 'IDLE_TIMEOUT_MS', 30 * 60_000, 0);
  // Ten minutes, not the library's one: a newcomer with a screen reader
  // hears the welcome out and may take a while to type a name.
  const firstInputTimeout = integer(
    env,
    'FIRST_INPUT_TIMEOUT_MS',
    10 * 60_000,
    0,
  );
  const linesPerSecond = integer(env, 'INPUT_LINES_PER_SECOND', 5, 1);
  const shutdown = env.SHUTDOWN_MESSAGE ?? DEFAULT_SHUTDOWN_MESSAGE;
  return {
    host: env.HOST || '127.0.0.1',
    port: integer(env, 'PORT', 4000, 0, 65535),
    encoding: 'utf8',
    maxLineLength: 4096,
    maxConnections: integer(env, 'MAX_CONNECTIONS', 1000, 1),
    maxConnectionsPerIp: integer(env, 'MAX_CONNECTIONS_PER_IP', 10, 1),
    idleTimeout: idleTimeout === 0 ? false : idleTimeout,
    firstInputTimeout: firstInputTimeout === 0 ? false : firstInputTimeout,
    // A burst of a few seconds' worth: a pasted paragraph gets through.
    inputRate: { linesPerSecond, lineBurst: linesPerSecond * 4 },
    blockList: addresses(env, 'BLOCKED'),
    messages: { shutdown: shutdown === '' ? false : shutdown },
  };
}

/**
 * The port of the HTTP health check (`GET /health`), from `HEALTH_PORT`
 * (`0`: any free port); `undefined`, and no HTTP at all, when it is unset
 * or empty. It listens on `HOST`, as the game does.
 *
 * @throws Error naming the variable when the value is not a port.
 */
export function chatHealthPort(
  env: NodeJS.ProcessEnv = process.env,
): number | undefined {
  if (!env.HEALTH_PORT?.trim()) return undefined;
  return integer(env, 'HEALTH_PORT', 0, 0, 65535);
}

/**
 * The password of `/admin`, from `ADMIN_PASSWORD`; `undefined` (admin
 * commands disabled) when it is unset or empty.
 */
export function chatAdminPassword(
  env: NodeJS.ProcessEnv = process.env,
): string | undefined {
  return env.ADMIN_PASSWORD || undefined;
}

/** A whole number from `env[name]` in `[min, max]`; `fallback` when unset. */
function integer(
  env: NodeJS.ProcessEnv,
  name: string,
  fallback: number,
  min: number,
  max = Number.MAX_SAFE_INTEGER,
): number {
  const text = env[name]?.trim();
  if (text === undefined || text === '') return fallback;
  const value = Number(text);
  if (!/^\d+$/.test(text) || value < min || value > max) {
    const range =
      max === Number.MAX_SAFE_INTEGER ? `at least ${min}` : `${min} to ${max}`;
    throw new Error(
      `${name} must be a whole number, ${range}; got ${JSON.stringify(env[name])}.`,
    );
  }
  return value;
}

/** Comma-separated IP addresses or CIDR ranges from `env[name]`. */
function addresses(env: NodeJS.ProcessEnv, name: string): string[] {
  const targets = (env[name] ?? '')
    .split(',')
    .map((target) => target.trim())
    .filter(Boolean);
  for (const target of targets) {
    const [ip, prefix, extra] = target.split('/');
    const bits = isIP(ip) === 6 ? 128 : 32;
    const valid =
      isIP(ip) !== 0 &&
      extra === undefined &&
      (prefix === undefined ||
        (/^\d{1,3}$/.test(prefix) && Number(prefix) <= bits));
    if (!valid) {
      throw new Error(
        `${name} must list IP addresses or CIDR ranges (10.0.0.0/8), comma-separated; got ${JSON.stringify(target)}.`,
      );
    }
  }
  return targets;
}
