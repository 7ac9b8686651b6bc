import type * as Api from '@opentelemetry/api';
import { loadModule } from '../utils/load-module.js';

/**
 * `@opentelemetry/api`, loaded.
 *
 * @internal
 */
export type OpenTelemetryApi = typeof Api;

/**
 * Loads `@opentelemetry/api`, an optional peer, only when a transport
 * starts with OpenTelemetry wanted, so nothing needs it installed:
 * `import()` in the ES build, `require()` in the CommonJS one (see
 * `loadModule`: Jest's CommonJS runtime has no `import()`).
 *
 * @returns The API, or `undefined` when it is not installed.
 * @throws What loading an installed but broken API throws.
 * @internal
 */
export async function loadOpenTelemetryApi(): Promise<
  OpenTelemetryApi | undefined
> {
  try {
    return (await loadModule('@opentelemetry/api')) as OpenTelemetryApi;
  } catch (err) {
    if (isNotFound(err)) return undefined;
    throw err;
  }
}

/** Whether `err` says the package itself is not installed. */
function isNotFound(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return (
    (code === 'ERR_MODULE_NOT_FOUND' || code === 'MODULE_NOT_FOUND') &&
    String((err as { message?: unknown }).message).includes(
      '@opentelemetry/api',
    )
  );
}
