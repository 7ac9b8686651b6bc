import {
  BLOCK_REASONS,
  DISCONNECT_REASONS,
} from '../interfaces/connection.interface.js';
import type { EarwaxMetricsSnapshot } from '../interfaces/earwax-metrics.interface.js';

/**
 * The `Content-Type` of Prometheus's text exposition format, version 0.0.4:
 * what a `/metrics` endpoint serving `EarwaxMetrics.toPrometheus()` sends.
 *
 * @publicApi
 */
export const PROMETHEUS_CONTENT_TYPE =
  'text/plain; version=0.0.4; charset=utf-8';

/**
 * A snapshot in Prometheus's text exposition format (0.0.4): `# HELP` and
 * `# TYPE` before each metric family, every reason of a labelled family
 * present (a series that appears only once it is non-zero breaks `rate()`),
 * and only those: the labels come from `BLOCK_REASONS` and
 * `DISCONNECT_REASONS`, never from the snapshot's keys. A value that is not
 * a finite number at least 0 is written as 0.
 * Written by hand: the format is a few lines of text, and `prom-client`
 * would make every user carry it.
 *
 * @param s The snapshot.
 * @returns The exposition, ending with a newline.
 * @internal
 */
export function formatPrometheus(s: EarwaxMetricsSnapshot): string {
  const out: string[] = [];
  const family = (
    name: string,
    type: 'counter' | 'gauge',
    help: string,
  ): void => {
    out.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
  };
  const counter = (name: string, help: string, value: number): void => {
    family(name, 'counter', help);
    out.push(`${name} ${sample(value)}`);
  };
  const gauge = (name: string, help: string, value: number): void => {
    family(name, 'gauge', help);
    out.push(`${name} ${sample(value)}`);
  };
  const byReason = <R extends string>(
    name: string,
    help: string,
    reasons: readonly R[],
    counts: Readonly<Record<R, number>>,
  ): void => {
    family(name, 'counter', help);
    // Reasons are fixed identifiers ([a-z_]): nothing to escape.
    for (const reason of reasons) {
      out.push(`${name}{reason="${reason}"} ${sample(counts[reason])}`);
    }
  };

  counter(
    'earwax_connections_accepted_total',
    'Sockets taken in by an Earwax transport.',
    s.connectionsAccepted,
  );
  counter(
    'earwax_connections_admitted_total',
    'Connections admitted (on_connect).',
    s.connectionsAdmitted,
  );
  byReason(
    'earwax_connections_refused_total',
    'Connections refused (on_block), by reason.',
    BLOCK_REASONS,
    s.connectionsRefused,
  );
  byReason(
    'earwax_disconnections_total',
    'Admitted connections that ended (on_disconnect), by reason.',
    DISCONNECT_REASONS,
    s.disconnections,
  );
  counter(
    'earwax_received_bytes_total',
    'Bytes read from client sockets.',
    s.bytesReceived,
  );
  counter(
    'earwax_sent_bytes_total',
    'Bytes written to client sockets.',
    s.bytesSent,
  );
  counter(
    'earwax_lines_received_total',
    'Lines (on_data events) read from clients.',
    s.linesReceived,
  );
  counter(
    'earwax_input_dropped_total',
    'Input events dropped by the input-rate limiter.',
    s.inputDropped,
  );
  counter(
    'earwax_handler_errors_total',
    'Event handler invocations that failed.',
    s.handlerErrors,
  );
  counter(
    'earwax_handler_timeouts_total',
    'Event handlers still running handlerTimeout after they started.',
    s.handlerTimeouts,
  );
  counter(
    'earwax_cluster_messages_rejected_total',
    'Malformed messages and records from other cluster processes, dropped.',
    s.clusterMessagesRejected,
  );
  gauge(
    'earwax_open_connections',
    'Connections admitted and not yet disconnecting.',
    s.openConnections,
  );
  gauge(
    'earwax_held_sockets',
    'Sockets held: waiting for admission, open, or closing.',
    s.heldSockets,
  );
  gauge('earwax_transports', 'Earwax transports counted.', s.transports);
  gauge(
    'earwax_listening_transports',
    'Earwax transports listening for connections.',
    s.listeningTransports,
  );
  out.push('');
  return out.join('\n');
}

/** A sample's value: a finite number at least 0, else 0. */
function sample(value: number | undefined): number {
  return value !== undefined && Number.isFinite(value) && value > 0 ? value : 0;
}
