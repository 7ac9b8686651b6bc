import type * as Api from '@opentelemetry/api';

/**
 * `@opentelemetry/api`, loaded.
 *
 * @internal
 */
export type OpenTelemetryApi = typeof Api;

/**
 * Loads `@opentelemetry/api`, an optional peer: with `import()`, so that
 * nothing loads it (or needs it installed) unless a transport starts with
 * OpenTelemetry wanted. `import()` stays `import()` in CommonJS output too.
 *
 * @returns The API, or `undefined` when it is not installed.
 * @throws What loading an installed but broken API throws.
 * @internal
 */
export async function loadOpenTelemetryApi(): Promise<
  OpenTelemetryApi | undefined
> {
  try {
    return await import('@opentelemetry/api');
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
