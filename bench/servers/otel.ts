/**
 * OpenTelemetry for the earwax server, from `EARWAX_OTEL` (set by
 * `run.mjs --otel`): what the `openTelemetry` option costs when it is on.
 *
 * - unset: the option left out, with no provider registered: tracing is
 *   off, and every event runs as with `@opentelemetry/api` absent (the
 *   handler chain's tracer is unset either way).
 * - `noop`: `openTelemetry: true` with no SDK: the API's no-op spans, and
 *   instruments on the no-op meter.
 * - `sdk`: an SDK tracer provider, every span sampled, through a
 *   `BatchSpanProcessor` to an exporter that drops them (what an exporter
 *   does with them is not the transport's cost), and an SDK meter provider.
 */
import type { EarwaxApi } from './earwax-package.js';

/** The `openTelemetry` option for `EARWAX_OTEL`, or `undefined` (left out). */
export async function openTelemetryOption(): Promise<
  EarwaxApi.EarwaxOpenTelemetry | undefined
> {
  const kind = process.env.EARWAX_OTEL;
  if (kind === undefined || kind === '') return undefined;
  if (kind === 'noop') return true;
  if (kind !== 'sdk') throw new Error(`EARWAX_OTEL: unknown value ${kind}`);
  const { BasicTracerProvider, BatchSpanProcessor } =
    await import('@opentelemetry/sdk-trace-base');
  const { MeterProvider } = await import('@opentelemetry/sdk-metrics');
  const dropped = {
    export(_spans: unknown[], done: (result: { code: 0 }) => void): void {
      done({ code: 0 });
    },
    shutdown: () => Promise.resolve(),
  };
  return {
    tracerProvider: new BasicTracerProvider({
      spanProcessors: [new BatchSpanProcessor(dropped)],
    }),
    meterProvider: new MeterProvider(),
  };
}
