import { Injectable } from '@nestjs/common';
import type { Observable } from 'rxjs';
import {
  BLOCK_REASONS,
  type BlockReason,
  DISCONNECT_REASONS,
  type DisconnectReason,
} from '../interfaces/connection.interface.js';
import type { EarwaxMetricsSnapshot } from '../interfaces/earwax-metrics.interface.js';
import { formatPrometheus } from './prometheus.js';

// Re-exported: it was declared here, and is still importable from here.
export type { EarwaxMetricsSnapshot };

/**
 * What a transport shows the metrics it feeds.
 *
 * @internal
 */
export interface MetricsSource {
  /** The transport's status stream (replays the latest status). */
  readonly status: Observable<string>;
}

/** `EarwaxStatus.LISTENING`, without importing the transport (a cycle). */
const LISTENING = 'listening';

/**
 * The byte counts of one connection's medium, on the wire.
 *
 * @internal
 */
export interface WireCounts {
  readonly bytesRead: number;
  readonly bytesWritten?: number;
}

/**
 * Counters and gauges of Earwax transports, for Prometheus, OpenTelemetry or
 * anything else that can read a plain object: `EarwaxModule` provides one
 * for the application, fed by every `EarwaxTransport` it runs; a transport
 * without the module keeps its own (`transport.metrics`). Neither
 * `prom-client` nor OpenTelemetry is a dependency: read
 * {@link EarwaxMetrics.snapshot} from their collect callbacks, or serve
 * {@link EarwaxMetrics.toPrometheus} as it is.
 *
 * Counting costs the transport one integer increment per line and nothing
 * per write: bytes are read from the sockets' own counters when a connection
 * closes, and from the live ones at snapshot time.
 *
 * Every value is a finite number, at least 0: the counters by reason have
 * exactly the reasons of `BLOCK_REASONS` and `DISCONNECT_REASONS` (a reason
 * from elsewhere cannot add one, or make one `NaN`), and the open
 * connections gauge does not go below 0.
 *
 * @example
 * With `prom-client`, one collect callback per metric:
 * ```ts
 * new Counter({
 *   name: 'earwax_lines_received_total',
 *   help: 'Lines (on_data events) read.',
 *   collect() {
 *     this.reset();
 *     this.inc(metrics.snapshot().linesReceived);
 *   },
 * });
 * ```
 *
 * @example
 * With OpenTelemetry, observable instruments read one snapshot per
 * collection:
 * ```ts
 * const lines = meter.createObservableCounter('earwax.lines.received');
 * const open = meter.createObservableGauge('earwax.connections.open');
 * meter.addBatchObservableCallback((result) => {
 *   const s = metrics.snapshot();
 *   result.observe(lines, s.linesReceived);
 *   result.observe(open, s.openConnections);
 * }, [lines, open]);
 * ```
 *
 * @publicApi
 */
@Injectable()
export class EarwaxMetrics {
  // Written by the transport directly: an increment is all the hot path
  // (a line) pays, with no call and no lookup. The counters by reason, once
  // per refusal or disconnection, go through a method that checks the key.
  /** @internal */ accepted = 0;
  /** @internal */ admitted = 0;
  /**
   * @internal Write through {@link EarwaxMetrics.countRefusal}: a fixed set
   * of keys (sealed, without a prototype).
   */
  readonly refused: Record<BlockReason, number> = reasonCounts(BLOCK_REASONS);
  /**
   * @internal Write through {@link EarwaxMetrics.countDisconnection}: a
   * fixed set of keys (sealed, without a prototype).
   */
  readonly disconnected: Record<DisconnectReason, number> =
    reasonCounts(DISCONNECT_REASONS);
  /** @internal */ linesReceived = 0;
  /** @internal */ inputDropped = 0;
  /** @internal */ handlerErrors = 0;
  /** @internal */ handlerTimeouts = 0;
  /** @internal */ clusterMessagesRejected = 0;

  /** Bytes of sockets already released. */
  private releasedBytesReceived = 0;
  private releasedBytesSent = 0;
  /**
   * Connections accepted and not yet released, with the TCP socket each was
   * accepted on: their bytes are read live. Kept because a TLS connection's
   * `ctx.socket` becomes the TLS socket, which counts decrypted bytes.
   */
  private readonly sockets = new Map<object, WireCounts>();
  private readonly sources = new Set<MetricsSource>();

  /**
   * Every counter and gauge now. Cheap enough to call on every scrape: it
   * reads two numbers per held socket and copies the rest.
   */
  snapshot(): EarwaxMetricsSnapshot {
    let bytesReceived = this.releasedBytesReceived;
    let bytesSent = this.releasedBytesSent;
    for (const socket of this.sockets.values()) {
      bytesReceived += socket.bytesRead;
      bytesSent += socket.bytesWritten ?? 0;
    }
    let disconnections = 0;
    for (const reason of DISCONNECT_REASONS) {
      disconnections += count(this.disconnected[reason]);
    }
    let listening = 0;
    for (const source of this.sources) {
      if (latestStatus(source) === LISTENING) listening++;
    }
    const admitted = count(this.admitted);
    return {
      connectionsAccepted: count(this.accepted),
      connectionsAdmitted: admitted,
      connectionsRefused: copyCounts(BLOCK_REASONS, this.refused),
      disconnections: copyCounts(DISCONNECT_REASONS, this.disconnected),
      bytesReceived,
      bytesSent,
      linesReceived: count(this.linesReceived),
      inputDropped: count(this.inputDropped),
      handlerErrors: count(this.handlerErrors),
      handlerTimeouts: count(this.handlerTimeouts),
      clusterMessagesRejected: count(this.clusterMessagesRejected),
      // Every admitted connection ends exactly once (on_disconnect's
      // guarantee), so the difference is what is open now.
      openConnections: Math.max(0, admitted - disconnections),
      heldSockets: this.sockets.size,
      transports: this.sources.size,
      listeningTransports: listening,
    };
  }

  /**
   * Every metric in Prometheus's text exposition format (0.0.4): serve it
   * from a `/metrics` endpoint with the content type
   * `PROMETHEUS_CONTENT_TYPE`, or append it to `prom-client`'s
   * `register.metrics()`. Names start with `earwax_`; counters end in
   * `_total`; refusal and disconnection reasons are a `reason` label.
   */
  toPrometheus(): string {
    return formatPrometheus(this.snapshot());
  }

  /**
   * A transport starts counting here.
   *
   * @internal
   */
  attach(source: MetricsSource): this {
    this.sources.add(source);
    return this;
  }

  /**
   * A transport stops counting here (it was handed the application's).
   *
   * @internal
   */
  detach(source: MetricsSource): void {
    this.sources.delete(source);
  }

  /**
   * Counts a refused connection under its reason. A value outside
   * `BLOCK_REASONS` (from JavaScript that bypassed the types) counts as
   * `refused`: it adds no key, and no counter becomes `NaN`.
   *
   * @internal
   */
  countRefusal(reason: BlockReason): void {
    this.refused[Object.hasOwn(this.refused, reason) ? reason : 'refused']++;
  }

  /**
   * Counts an admitted connection that ended, under its reason. A value
   * outside `DISCONNECT_REASONS` (a `ctx.disconnect()` from JavaScript that
   * bypassed the types) counts as `kicked`, what `disconnect()` means
   * without a reason: it adds no key, no counter becomes `NaN`, and the
   * open connections gauge still goes down.
   *
   * @internal
   */
  countDisconnection(reason: DisconnectReason): void {
    this.disconnected[
      Object.hasOwn(this.disconnected, reason) ? reason : 'kicked'
    ]++;
  }

  /**
   * A transport took in a connection.
   *
   * @param connection The connection, as a key.
   * @param wire Its byte counts on the wire (the TCP socket's, under TLS).
   * @internal
   */
  opened(connection: object, wire: WireCounts): void {
    this.accepted++;
    this.sockets.set(connection, wire);
  }

  /**
   * A connection's resources were released: its socket's bytes move to the
   * running totals, once.
   *
   * @internal
   */
  closed(connection: object): void {
    const socket = this.sockets.get(connection);
    if (socket === undefined) return;
    this.sockets.delete(connection);
    this.releasedBytesReceived += socket.bytesRead;
    this.releasedBytesSent += socket.bytesWritten ?? 0;
  }
}

/**
 * A counter per reason, every one at 0: without a prototype (a reason such
 * as `constructor` finds nothing inherited) and sealed (no key can be
 * added).
 */
function reasonCounts<R extends string>(
  reasons: readonly R[],
): Record<R, number> {
  const counts = Object.create(null) as Record<R, number>;
  for (const reason of reasons) counts[reason] = 0;
  return Object.seal(counts);
}

/** A plain copy of the counters of `reasons`, in their order. */
function copyCounts<R extends string>(
  reasons: readonly R[],
  counts: Readonly<Record<R, number>>,
): Record<R, number> {
  const copy = {} as Record<R, number>;
  for (const reason of reasons) copy[reason] = count(counts[reason]);
  return copy;
}

/** A counter's value as published: a finite number, at least 0. */
function count(value: number): number {
  return Number.isFinite(value) && value > 0 ? value : 0;
}

/**
 * The latest status of a transport: its status stream replays it to a new
 * subscriber at once. `undefined` before it ever listened.
 */
function latestStatus(source: MetricsSource): string | undefined {
  let status: string | undefined;
  source.status.subscribe((value) => (status = value)).unsubscribe();
  return status;
}
