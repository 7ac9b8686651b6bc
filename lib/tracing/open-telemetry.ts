import type { Logger } from '@nestjs/common';
import type { Meter, Tracer } from '@opentelemetry/api';
import type { EarwaxMetrics } from '../metrics/earwax-metrics.js';
import type { EventTracer } from '../pipeline/handler-chains.js';
import { describeError } from '../utils/describe-error.js';
import { OpenTelemetryEventTracer } from './event-tracer.js';
import { loadOpenTelemetryApi, type OpenTelemetryApi } from './load-api.js';
import { observeMetrics } from './metric-instruments.js';
import type { EarwaxOpenTelemetry } from './open-telemetry-options.interface.js';

/** The instrumentation scope of Earwax's spans and instruments. */
const SCOPE = 'nestjs-earwax';

/**
 * What a transport runs while OpenTelemetry is on.
 *
 * @internal
 */
export interface OpenTelemetryRun {
  /** Spans for the handlers' events, when spans are on. */
  readonly tracer: EventTracer | undefined;
  /** Stops offering the metrics (at `close()`). */
  stop(): void;
}

/**
 * Starts what the `openTelemetry` option asks for, when the transport
 * starts listening. `false` loads nothing. Left out, spans are on when a
 * global tracer provider is registered and metrics when a global meter
 * provider is: an application that set up the SDK gets both; one that did
 * not (or only has `@opentelemetry/api` because another package depends on
 * it) pays nothing, not even no-op spans. `true` or an object turns them on
 * whatever is registered (the global providers are proxies: an SDK
 * registered later still gets the spans).
 *
 * @returns `undefined` when nothing is on (the API is missing, or nothing
 *   is wanted).
 * @internal
 */
export async function startOpenTelemetry(
  option: EarwaxOpenTelemetry | undefined,
  metrics: EarwaxMetrics,
  logger: Pick<Logger, 'warn' | 'debug'>,
): Promise<OpenTelemetryRun | undefined> {
  if (option === false) return undefined;
  let api: OpenTelemetryApi | undefined;
  try {
    api = await loadOpenTelemetryApi();
  } catch (err) {
    logger.warn(
      `Cannot load @opentelemetry/api (${describeError(err)}): no spans or OpenTelemetry metrics.`,
    );
    return undefined;
  }
  if (api === undefined) {
    if (option !== undefined) {
      logger.warn(
        'The openTelemetry option is on but @opentelemetry/api is not installed: no spans or OpenTelemetry metrics.',
      );
    }
    return undefined;
  }
  const auto = option === undefined;
  const options = typeof option === 'object' ? option : {};
  const spans = options.spans !== false && (!auto || tracerRegistered(api));
  const metered = options.metrics !== false && (!auto || meterRegistered(api));
  if (!spans && !metered) return undefined;
  let tracer: EventTracer | undefined;
  if (spans) {
    const provider = options.tracerProvider ?? api.trace.getTracerProvider();
    tracer = new OpenTelemetryEventTracer(
      api,
      provider.getTracer(SCOPE) as Tracer,
    );
  }
  let stop = (): void => undefined;
  if (metered) {
    const provider = options.meterProvider ?? api.metrics.getMeterProvider();
    stop = observeMetrics(provider, provider.getMeter(SCOPE) as Meter, metrics);
  }
  logger.debug(
    `OpenTelemetry: spans ${spans ? 'on' : 'off'}, metrics ${metered ? 'on' : 'off'}.`,
  );
  return { tracer, stop };
}

/** Whether an SDK registered a global tracer provider. */
function tracerRegistered(api: OpenTelemetryApi): boolean {
  const provider = api.trace.getTracerProvider();
  return (
    !(provider instanceof api.ProxyTracerProvider) ||
    provider.getDelegateTracer(SCOPE) !== undefined
  );
}

/** Whether an SDK registered a global meter provider. */
function meterRegistered(api: OpenTelemetryApi): boolean {
  const meter = api.metrics.getMeterProvider().getMeter(SCOPE);
  return meter.constructor !== api.createNoopMeter().constructor;
}
