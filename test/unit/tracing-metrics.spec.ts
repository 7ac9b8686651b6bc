/**
 * EarwaxMetrics through an OpenTelemetry meter (lib/tracing/
 * metric-instruments.ts), read by the SDK's MeterProvider and its
 * in-memory exporter: one set of instruments per provider, the sum of the
 * metrics of every transport that reports through it, each counted once,
 * and nothing read once the last transport stops.
 */
import { afterEach, beforeEach, describe, expect, it } from '@jest/globals';
import {
  AggregationTemporality,
  type DataPoint,
  InMemoryMetricExporter,
  MeterProvider,
  PeriodicExportingMetricReader,
} from '@opentelemetry/sdk-metrics';
import { EarwaxMetrics } from '../../lib/metrics/earwax-metrics.js';
import { observeMetrics } from '../../lib/tracing/metric-instruments.js';

let exporter: InMemoryMetricExporter;
let reader: PeriodicExportingMetricReader;
let provider: MeterProvider;

beforeEach(() => {
  exporter = new InMemoryMetricExporter(AggregationTemporality.CUMULATIVE);
  // Exports when flushed; the interval is far beyond any test.
  reader = new PeriodicExportingMetricReader({
    exporter,
    exportIntervalMillis: 3_600_000,
  });
  provider = new MeterProvider({ readers: [reader] });
});

afterEach(async () => {
  await provider.shutdown();
});

/** The data points of one collection, by instrument name. */
async function collect(): Promise<Map<string, DataPoint<number>[]>> {
  exporter.reset();
  await reader.forceFlush();
  const points = new Map<string, DataPoint<number>[]>();
  for (const resource of exporter.getMetrics()) {
    for (const scope of resource.scopeMetrics) {
      for (const metric of scope.metrics) {
        points.set(
          metric.descriptor.name,
          metric.dataPoints as DataPoint<number>[],
        );
      }
    }
  }
  return points;
}

/** Metrics that count how often they are read. */
function countedMetrics(): { metrics: EarwaxMetrics; reads: () => number } {
  const metrics = new EarwaxMetrics();
  let reads = 0;
  const snapshot = metrics.snapshot.bind(metrics);
  metrics.snapshot = () => {
    reads++;
    return snapshot();
  };
  return { metrics, reads: () => reads };
}

function lines(points: Map<string, DataPoint<number>[]>): number | undefined {
  return points.get('earwax.lines.received')?.[0]?.value;
}

describe('observeMetrics', () => {
  it('reads metrics shared by two transports once per collection', async () => {
    const { metrics, reads } = countedMetrics();
    const meter = provider.getMeter('nestjs-earwax');
    observeMetrics(provider, meter, metrics);
    observeMetrics(provider, meter, metrics);
    metrics.linesReceived = 7;
    metrics.countRefusal('blocked');

    const points = await collect();
    expect(reads()).toBe(1);
    expect(lines(points)).toBe(7);
    const refused = points.get('earwax.connections.refused') ?? [];
    expect(
      Object.fromEntries(
        refused.map((point) => [point.attributes.reason, point.value]),
      ),
    ).toEqual(metrics.snapshot().connectionsRefused);
  });

  it('sums the metrics of transports that keep their own', async () => {
    const meter = provider.getMeter('nestjs-earwax');
    const a = new EarwaxMetrics();
    const b = new EarwaxMetrics();
    observeMetrics(provider, meter, a);
    observeMetrics(provider, meter, b);
    a.linesReceived = 3;
    b.linesReceived = 4;
    a.countDisconnection('quit');
    b.countDisconnection('quit');

    const points = await collect();
    expect(lines(points)).toBe(7);
    expect(
      points
        .get('earwax.disconnections')
        ?.find((point) => point.attributes.reason === 'quit')?.value,
    ).toBe(2);
  });

  it('stops reading once the last transport stops, each stop counted once', async () => {
    const { metrics, reads } = countedMetrics();
    const meter = provider.getMeter('nestjs-earwax');
    const stopFirst = observeMetrics(provider, meter, metrics);
    const stopSecond = observeMetrics(provider, meter, metrics);

    stopFirst();
    stopFirst();
    await collect();
    expect(reads()).toBe(1);

    stopSecond();
    await collect();
    expect(reads()).toBe(1);

    // Observed again from scratch: a new callback on the provider.
    observeMetrics(provider, meter, metrics);
    metrics.linesReceived = 2;
    expect(lines(await collect())).toBe(2);
    expect(reads()).toBe(2);
  });
});
