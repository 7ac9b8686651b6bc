import type { BlockReason, DisconnectReason } from './connection.interface.js';

/**
 * What {@link EarwaxMetrics.snapshot} returns: every counter and gauge at one
 * moment, as plain numbers. Counters only grow for the life of the
 * application; gauges go up and down.
 *
 * @publicApi
 */
export interface EarwaxMetricsSnapshot {
  /**
   * Counter: sockets taken in by a transport (on a TLS listener, after the
   * handshake), whatever became of them.
   */
  readonly connectionsAccepted: number;
  /** Counter: connections admitted (each gets `on_connect`). */
  readonly connectionsAdmitted: number;
  /**
   * Counter: connections refused, by reason (each gets `on_block`). Every
   * reason is present, at 0 until it happens.
   */
  readonly connectionsRefused: Readonly<Record<BlockReason, number>>;
  /**
   * Counter: admitted connections that ended, by reason (each got
   * `on_disconnect`). Every reason is present, at 0 until it happens.
   */
  readonly disconnections: Readonly<Record<DisconnectReason, number>>;
  /**
   * Counter: bytes read from client sockets, as on the wire: PROXY headers,
   * telnet negotiation, TLS handshakes and records included.
   */
  readonly bytesReceived: number;
  /**
   * Counter: bytes written to client sockets, as on the wire (after MCCP2
   * compression and TLS encryption). Output still queued in memory counts.
   */
  readonly bytesSent: number;
  /**
   * Counter: `on_data` events read (lines, or chunks with `framing: 'raw'`),
   * including those the input-rate limiter then dropped.
   */
  readonly linesReceived: number;
  /**
   * Counter: input events (lines, raw chunks, telnet events) dropped by the
   * `inputRate` limiter.
   */
  readonly inputDropped: number;
  /** Counter: handler invocations that threw (or whose stream errored). */
  readonly handlerErrors: number;
  /**
   * Counter: handlers still running `handlerTimeout` after they started
   * (each counted once, whether or not it finishes later).
   */
  readonly handlerTimeouts: number;
  /**
   * Counter: messages from the other processes of a cluster (and records
   * of theirs read back from the adapter's store) dropped because they are
   * malformed: not JSON, an unknown kind, a field of the wrong type, out of
   * range or too long. Each is dropped whole; nothing of it is applied.
   * Always 0 without a cluster adapter.
   */
  readonly clusterMessagesRejected: number;
  /**
   * Gauge: connections admitted and not yet disconnecting. Never negative.
   */
  readonly openConnections: number;
  /**
   * Gauge: sockets held (waiting for admission, open, or still closing):
   * what `maxConnections` limits.
   */
  readonly heldSockets: number;
  /** Gauge: transports counted here. */
  readonly transports: number;
  /** Gauge: transports among them that are listening. */
  readonly listeningTransports: number;
}
