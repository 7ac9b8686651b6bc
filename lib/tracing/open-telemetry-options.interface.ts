/**
 * An OpenTelemetry `TracerProvider`, as far as Earwax uses one: what
 * `@opentelemetry/api`'s `TracerProvider` (and the SDK's `BasicTracerProvider`
 * or `NodeTracerProvider`) is. Declared here so that the options type-check
 * without `@opentelemetry/api` installed.
 *
 * @publicApi
 */
export interface EarwaxTracerProvider {
  /** Returns the tracer of an instrumentation scope. */
  getTracer(name: string, version?: string, options?: object): unknown;
}

/**
 * An OpenTelemetry `MeterProvider`, as far as Earwax uses one: what
 * `@opentelemetry/api`'s `MeterProvider` (and the SDK's `MeterProvider`) is.
 *
 * @publicApi
 */
export interface EarwaxMeterProvider {
  /** Returns the meter of an instrumentation scope. */
  getMeter(name: string, version?: string, options?: object): unknown;
}

/**
 * What the `openTelemetry` option of an `EarwaxTransport` turns on, and
 * where it reports.
 *
 * @publicApi
 */
export interface EarwaxOpenTelemetryOptions {
  /**
   * Where the spans go.
   * @default the global tracer provider (`trace.getTracerProvider()`, set by
   *   the OpenTelemetry SDK's `register()` or `NodeSDK.start()`)
   */
  tracerProvider?: EarwaxTracerProvider;
  /**
   * Where the metrics go.
   * @default the global meter provider (`metrics.getMeterProvider()`)
   */
  meterProvider?: EarwaxMeterProvider;
  /**
   * A span for each event that has handlers.
   * @default true
   */
  spans?: boolean;
  /**
   * The transport's `EarwaxMetrics` as observable instruments of a meter,
   * read at each collection.
   * @default true
   */
  metrics?: boolean;
}

/**
 * The `openTelemetry` option: `true` or an options object turns tracing and
 * metrics on, `false` off, and leaving it out turns each on when
 * `@opentelemetry/api` is installed and a global provider for it is
 * registered when the transport starts listening.
 *
 * @publicApi
 */
export type EarwaxOpenTelemetry = boolean | EarwaxOpenTelemetryOptions;
