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

/** One registration per meter provider and metrics, shared by transports. */
interface Registration {
  users: number;
  readonly remove: () => void;
}

const registrations = new WeakMap<object, Map<EarwaxMetrics, Registration>>();

/**
 * Offers `metrics` through `meter`: observable instruments read from one
 * snapshot per collection, so the transport's hot path pays nothing more
 * than the counting it already does. Transports that share `metrics`
 * (those of one `EarwaxModule`) and a provider share one registration, so
 * no figure is observed twice.
 *
 * @param provider The meter's provider, the key of the sharing.
 * @returns Stops observing (for this transport; the last one removes the
 *   instruments' callback).
 * @internal
 */
export function observeMetrics(
  provider: object,
  meter: Meter,
  metrics: EarwaxMetrics,
): () => void {
  let byMetrics = registrations.get(provider);
  if (byMetrics === undefined) {
    byMetrics = new Map();
    registrations.set(provider, byMetrics);
  }
  const shared = byMetrics;
  let registration = shared.get(metrics);
  if (registration === undefined) {
    registration = { users: 0, remove: register(meter, metrics) };
    shared.set(metrics, registration);
  }
  const own = registration;
  own.users++;
  let stopped = false;
  return () => {
    if (stopped) return;
    stopped = true;
    if (--own.users > 0) return;
    own.remove();
    shared.delete(metrics);
  };
}

/** Creates the instruments and their one callback. */
function register(meter: Meter, metrics: EarwaxMetrics): () => void {
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
    const s = metrics.snapshot();
    for (const [instrument, read] of observed) {
      result.observe(instrument, read(s));
    }
    // Every reason, 0 included: a series that appears late breaks rates.
    for (const reason of BLOCK_REASONS) {
      result.observe(refused, s.connectionsRefused[reason], { reason });
    }
    for (const reason of DISCONNECT_REASONS) {
      result.observe(disconnections, s.disconnections[reason], { reason });
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
