import type {
  BatchObservableCallback,
  Meter,
  Observable,
} from '@opentelemetry/api';
import {
  BLOCK_REASONS,
  DISCONNECT_REASONS,
} from '../interfaces/connection.interface.js';
import type { EarwaxMetricsSnapshot } from '../interfaces/earwax-metrics.interface.js';
import type { EarwaxMetrics } from '../metrics/earwax-metrics.js';

type Reading = (s: EarwaxMetricsSnapshot) => number;

/**
 * The figures of `EarwaxMetrics.toPrometheus()`, under OpenTelemetry's
 * naming (dots, a unit, no `_total`): counters are observable counters,
 * gauges observable up-down counters (they count things open now, as
 * `http.server.active_requests` does). Refusals and disconnections carry
 * their reason as the `reason` attribute, as the Prometheus label.
 */
const COUNTERS: readonly (readonly [string, string, string, Reading])[] = [
  [
    'earwax.connections.accepted',
    '{connection}',
    'Sockets taken in by an Earwax transport.',
    (s) => s.connectionsAccepted,
  ],
  [
    'earwax.connections.admitted',
    '{connection}',
    'Connections admitted (on_connect).',
    (s) => s.connectionsAdmitted,
  ],
  [
    'earwax.bytes.received',
    'By',
    'Bytes read from client sockets.',
    (s) => s.bytesReceived,
  ],
  [
    'earwax.bytes.sent',
    'By',
    'Bytes written to client sockets.',
    (s) => s.bytesSent,
  ],
  [
    'earwax.lines.received',
    '{line}',
    'Lines (on_data events) read from clients.',
    (s) => s.linesReceived,
  ],
  [
    'earwax.input.dropped',
    '{event}',
    'Input events dropped by the input-rate limiter.',
    (s) => s.inputDropped,
  ],
  [
    'earwax.handler.errors',
    '{error}',
    'Event handler invocations that failed.',
    (s) => s.handlerErrors,
  ],
  [
    'earwax.handler.timeouts',
    '{timeout}',
    'Event handlers still running handlerTimeout after they started.',
    (s) => s.handlerTimeouts,
  ],
  [
    'earwax.cluster.messages.rejected',
    '{message}',
    'Malformed messages and records from other cluster processes, dropped.',
    (s) => s.clusterMessagesRejected,
  ],
];

const GAUGES: readonly (readonly [string, string, string, Reading])[] = [
  [
    'earwax.connections.open',
    '{connection}',
    'Connections admitted and not yet disconnecting.',
    (s) => s.openConnections,
  ],
  [
    'earwax.sockets.held',
    '{socket}',
    'Sockets held: waiting for admission, open, or closing.',
    (s) => s.heldSockets,
  ],
  [
    'earwax.transports',
    '{transport}',
    'Earwax transports counted.',
    (s) => s.transports,
  ],
  [
    'earwax.transports.listening',
    '{transport}',
    'Earwax transports listening for connections.',
    (s) => s.listeningTransports,
  ],
];

/**
 * The instruments of one meter provider, and the metrics they read: those
 * of every transport observed through it, each with its number of
 * transports.
 */
interface Registration {
  readonly metrics: Map<EarwaxMetrics, number>;
  readonly remove: () => void;
}

const registrations = new WeakMap<object, Registration>();

/**
 * Offers `metrics` through `meter`: observable instruments read at each
 * collection, so the transport's hot path pays nothing more than the
 * counting it already does. A provider gets one set of instruments
 * whatever number of transports report through it: they read the sum of
 * their metrics, each counted once (the transports of one `EarwaxModule`
 * share theirs), as the figures of one `EarwaxMetrics` sum its transports.
 *
 * @param provider The meter's provider, the key of the sharing.
 * @returns Stops observing `metrics` for this transport; the last one
 *   removes the instruments' callback.
 * @internal
 */
export function observeMetrics(
  provider: object,
  meter: Meter,
  metrics: EarwaxMetrics,
): () => void {
  let registration = registrations.get(provider);
  if (registration === undefined) {
    const observed = new Map<EarwaxMetrics, number>();
    registration = { metrics: observed, remove: register(meter, observed) };
    registrations.set(provider, registration);
  }
  const { metrics: observed, remove } = registration;
  observed.set(metrics, (observed.get(metrics) ?? 0) + 1);
  let stopped = false;
  return () => {
    if (stopped) return;
    stopped = true;
    const users = (observed.get(metrics) ?? 1) - 1;
    if (users > 0) {
      observed.set(metrics, users);
      return;
    }
    observed.delete(metrics);
    if (observed.size > 0) return;
    remove();
    registrations.delete(provider);
  };
}

/** Creates the instruments and their one callback. */
function register(
  meter: Meter,
  observedMetrics: ReadonlyMap<EarwaxMetrics, number>,
): () => void {
  const observed: [Observable, Reading][] = [];
  for (const [name, unit, description, read] of COUNTERS) {
    observed.push([
      meter.createObservableCounter(name, { unit, description }),
      read,
    ]);
  }
  for (const [name, unit, description, read] of GAUGES) {
    observed.push([
      meter.createObservableUpDownCounter(name, { unit, description }),
      read,
    ]);
  }
  const refused = meter.createObservableCounter('earwax.connections.refused', {
    unit: '{connection}',
    description: 'Connections refused (on_block), by reason.',
  });
  const disconnections = meter.createObservableCounter(
    'earwax.disconnections',
    {
      unit: '{connection}',
      description:
        'Admitted connections that ended (on_disconnect), by reason.',
    },
  );
  const callback: BatchObservableCallback = (result) => {
    const snapshots = [...observedMetrics.keys()].map((m) => m.snapshot());
    const sum = (read: Reading): number =>
      snapshots.reduce((total, s) => total + read(s), 0);
    for (const [instrument, read] of observed) {
      result.observe(instrument, sum(read));
    }
    // Every reason, 0 included: a series that appears late breaks rates.
    for (const reason of BLOCK_REASONS) {
      result.observe(
        refused,
        sum((s) => s.connectionsRefused[reason]),
        { reason },
      );
    }
    for (const reason of DISCONNECT_REASONS) {
      result.observe(
        disconnections,
        sum((s) => s.disconnections[reason]),
        { reason },
      );
    }
  };
  const all = [
    ...observed.map(([instrument]) => instrument),
    refused,
    disconnections,
  ];
  meter.addBatchObservableCallback(callback, all);
  return () => meter.removeBatchObservableCallback(callback, all);
}
