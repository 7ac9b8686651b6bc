import 'reflect-metadata';
import { describe, expect, it } from '@jest/globals';
import { ReplaySubject } from 'rxjs';
import type { AnyConnectionContext } from '../../lib/connection/connection-context.js';
import {
  type BlockReason,
  type DisconnectReason,
  EarwaxMetrics,
  type EarwaxMetricsSnapshot,
} from '../../lib/index.js';

const BLOCK_REASONS: BlockReason[] = [
  'server_full',
  'blocked',
  'too_many_connections',
  'rate_limited',
  'refused',
  'guard_error',
];
const DISCONNECT_REASONS: DisconnectReason[] = [
  'client_closed',
  'reset',
  'quit',
  'kicked',
  'idle',
  'flood',
  'protocol',
  'line_too_long',
  'slow_consumer',
  'server_shutdown',
  'error',
];

/** A connection whose socket's byte counters the test sets. */
function fakeConnection(bytesRead = 0, bytesWritten = 0) {
  const socket = { bytesRead, bytesWritten };
  return { socket, ctx: { socket } as unknown as AnyConnectionContext };
}

interface Family {
  type: string;
  help: string;
  samples: Array<{ labels: Record<string, string>; value: number }>;
}

/**
 * A strict reader of the text exposition format 0.0.4, so the test checks
 * the text as Prometheus would read it. Hand-written: no maintained parser
 * of the format is installed, and the grammar is a few lines.
 */
function parseExposition(text: string): Map<string, Family> {
  const name = '[a-zA-Z_:][a-zA-Z0-9_:]*';
  const families = new Map<string, Family>();
  expect(text.endsWith('\n')).toBe(true);
  let current: { name: string; family: Partial<Family> } | undefined;
  for (const line of text.slice(0, -1).split('\n')) {
    const help = new RegExp(`^# HELP (${name}) (.*)$`).exec(line);
    const type = new RegExp(`^# TYPE (${name}) (counter|gauge)$`).exec(line);
    const sample = new RegExp(`^(${name})(?:\\{(.*)\\})? (\\S+)$`).exec(line);
    if (help) {
      if (families.has(help[1])) throw new Error(`${help[1]} appears twice`);
      current = { name: help[1], family: { help: help[2], samples: [] } };
    } else if (type) {
      if (current?.name !== type[1] || current.family.type !== undefined) {
        throw new Error(`TYPE without its HELP: ${line}`);
      }
      current.family.type = type[2];
      families.set(type[1], current.family as Family);
    } else if (sample) {
      if (current?.name !== sample[1] || current.family.type === undefined) {
        throw new Error(`sample outside its family: ${line}`);
      }
      const labels: Record<string, string> = {};
      for (const pair of (sample[2] ?? '').split(',').filter(Boolean)) {
        const label = /^([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"$/.exec(
          pair,
        );
        if (!label) throw new Error(`bad label ${pair} in ${line}`);
        labels[label[1]] = label[2];
      }
      const value = Number(sample[3]);
      if (!Number.isFinite(value)) throw new Error(`bad value in ${line}`);
      current.family.samples?.push({ labels, value });
    } else {
      throw new Error(`unexpected line: ${JSON.stringify(line)}`);
    }
  }
  return families;
}

/**
 * Every number of the snapshot and of the exposition is finite and at
 * least 0, and the exposition has no reason outside the known ones.
 */
function expectFinite(metrics: EarwaxMetrics): void {
  const s = metrics.snapshot();
  const numbers = [
    ...Object.values(s.connectionsRefused),
    ...Object.values(s.disconnections),
    ...Object.values(s).filter((v) => typeof v !== 'object'),
  ];
  expect(numbers.every((n) => Number.isFinite(n) && n >= 0)).toBe(true);
  // parseExposition throws on a value that is not finite.
  const families = parseExposition(metrics.toPrometheus());
  for (const [name, family] of families) {
    for (const { labels, value } of family.samples) {
      expect(value).toBeGreaterThanOrEqual(0);
      if (name === 'earwax_disconnections_total') {
        expect(DISCONNECT_REASONS).toContain(labels.reason);
      }
      if (name === 'earwax_connections_refused_total') {
        expect(BLOCK_REASONS).toContain(labels.reason);
      }
    }
  }
  expect(families.get('earwax_disconnections_total')?.samples).toHaveLength(
    DISCONNECT_REASONS.length,
  );
}

/** The metrics with a distinct value in every counter. */
function busyMetrics(): EarwaxMetrics {
  const metrics = new EarwaxMetrics();
  for (let i = 0; i < 9; i++) {
    const { ctx, socket } = fakeConnection(i, 10 * i);
    metrics.opened(ctx, socket);
  }
  metrics.admitted = 7;
  BLOCK_REASONS.forEach((reason, i) => (metrics.refused[reason] = i + 1));
  DISCONNECT_REASONS.forEach((reason, i) => {
    metrics.disconnected[reason] = i === 0 ? 2 : 0;
  });
  metrics.linesReceived = 1234;
  metrics.inputDropped = 56;
  metrics.handlerErrors = 3;
  metrics.handlerTimeouts = 2;
  metrics.clusterMessagesRejected = 11;
  return metrics;
}

describe('EarwaxMetrics', () => {
  it('starts at zero, with every refusal and disconnection reason present', () => {
    const s = new EarwaxMetrics().snapshot();
    expect(Object.keys(s.connectionsRefused).sort()).toEqual(
      [...BLOCK_REASONS].sort(),
    );
    expect(Object.keys(s.disconnections).sort()).toEqual(
      [...DISCONNECT_REASONS].sort(),
    );
    const numbers = [
      ...Object.values(s.connectionsRefused),
      ...Object.values(s.disconnections),
      ...Object.values(s).filter((v) => typeof v === 'number'),
    ];
    expect(numbers.length).toBeGreaterThan(BLOCK_REASONS.length + 10);
    expect(numbers.every((n) => n === 0)).toBe(true);
  });

  it('derives the open connections from admissions and disconnections', () => {
    const metrics = new EarwaxMetrics();
    metrics.admitted = 5;
    metrics.disconnected.quit = 1;
    metrics.disconnected.reset = 2;
    expect(metrics.snapshot().openConnections).toBe(2);
    metrics.disconnected.kicked++;
    metrics.disconnected.client_closed++;
    expect(metrics.snapshot().openConnections).toBe(0);
  });

  it('reads live sockets at snapshot time and moves their bytes to the totals once', () => {
    const metrics = new EarwaxMetrics();
    const a = fakeConnection(10, 100);
    const b = fakeConnection(1, 2);
    metrics.opened(a.ctx, a.socket);
    metrics.opened(b.ctx, b.socket);
    let s = metrics.snapshot();
    expect([s.connectionsAccepted, s.heldSockets]).toEqual([2, 2]);
    expect([s.bytesReceived, s.bytesSent]).toEqual([11, 102]);

    a.socket.bytesRead = 15;
    a.socket.bytesWritten = 180;
    s = metrics.snapshot();
    expect([s.bytesReceived, s.bytesSent]).toEqual([16, 182]);

    metrics.closed(a.ctx);
    // Released: what the socket reports later is no longer read.
    a.socket.bytesRead = 999;
    a.socket.bytesWritten = 999;
    metrics.closed(a.ctx);
    s = metrics.snapshot();
    expect([s.bytesReceived, s.bytesSent, s.heldSockets]).toEqual([16, 182, 1]);

    // A connection the metrics never saw opened is not counted.
    metrics.closed(fakeConnection(50, 50).ctx);
    s = metrics.snapshot();
    expect([s.bytesReceived, s.bytesSent, s.connectionsAccepted]).toEqual([
      16, 182, 2,
    ]);
  });

  it('keeps reading the TCP socket a connection was accepted on', () => {
    const metrics = new EarwaxMetrics();
    const tcp = { bytesRead: 300, bytesWritten: 400 };
    const ctx = { socket: tcp } as { socket: object };
    metrics.opened(ctx as unknown as AnyConnectionContext, tcp);
    // As after a TLS handshake: ctx.socket is now the TLS socket, whose
    // counters are the decrypted bytes.
    ctx.socket = { bytesRead: 5, bytesWritten: 6 };
    expect(metrics.snapshot().bytesReceived).toBe(300);
    tcp.bytesRead = 320;
    metrics.closed(ctx as unknown as AnyConnectionContext);
    const s = metrics.snapshot();
    expect([s.bytesReceived, s.bytesSent, s.heldSockets]).toEqual([
      320, 400, 0,
    ]);
  });

  it('returns a copy: a snapshot does not change afterwards', () => {
    const metrics = new EarwaxMetrics();
    metrics.refused.blocked = 1;
    const before = metrics.snapshot();
    metrics.refused.blocked = 2;
    metrics.linesReceived = 9;
    expect(before.connectionsRefused.blocked).toBe(1);
    expect(before.linesReceived).toBe(0);
    (before.connectionsRefused as Record<BlockReason, number>).blocked = 40;
    expect(metrics.snapshot().connectionsRefused.blocked).toBe(2);
  });

  it('counts the attached transports and those listening, from their status streams', () => {
    const metrics = new EarwaxMetrics();
    const first = new ReplaySubject<string>(1);
    const second = new ReplaySubject<string>(1);
    const a = { status: first.asObservable() };
    const b = { status: second.asObservable() };
    expect(metrics.attach(a)).toBe(metrics);
    metrics.attach(b);
    const gauges = () => {
      const s = metrics.snapshot();
      return [s.transports, s.listeningTransports];
    };
    // Never started: no status yet.
    expect(gauges()).toEqual([2, 0]);
    first.next('listening');
    second.next('listening');
    expect(gauges()).toEqual([2, 2]);
    first.next('closing');
    expect(gauges()).toEqual([2, 1]);
    first.next('closed');
    metrics.detach(b);
    expect(gauges()).toEqual([1, 0]);
  });

  describe('against values from outside', () => {
    const FOREIGN = [
      'constructor',
      '__proto__',
      'toString',
      'hasOwnProperty',
      'banana',
      '',
    ];

    it('counts a disconnection or refusal of an unknown reason without NaN or a new key', () => {
      const metrics = new EarwaxMetrics();
      metrics.admitted = 10;
      for (const reason of FOREIGN) {
        metrics.countDisconnection(reason as DisconnectReason);
        metrics.countRefusal(reason as BlockReason);
      }
      metrics.countDisconnection('quit');
      metrics.countRefusal('blocked');
      const s = metrics.snapshot();
      // Counted as what disconnect() and a refusal mean without a reason.
      expect(s.disconnections.kicked).toBe(FOREIGN.length);
      expect(s.disconnections.quit).toBe(1);
      expect(s.connectionsRefused.refused).toBe(FOREIGN.length);
      expect(s.connectionsRefused.blocked).toBe(1);
      expect(s.openConnections).toBe(10 - FOREIGN.length - 1);
      expect(Object.keys(s.disconnections)).toEqual(DISCONNECT_REASONS);
      expect(Object.keys(s.connectionsRefused)).toEqual(BLOCK_REASONS);
      for (const reason of FOREIGN) {
        expect(Object.hasOwn(metrics.disconnected, reason)).toBe(false);
        expect(Object.hasOwn(metrics.refused, reason)).toBe(false);
      }
      expectFinite(metrics);
    });

    it('has counters by reason that inherit nothing and take no new key', () => {
      const metrics = new EarwaxMetrics();
      const byReason = metrics.disconnected as Record<string, unknown>;
      expect(byReason.constructor).toBeUndefined();
      expect(byReason.toString).toBeUndefined();
      const key: string = 'constructor';
      expect(() => {
        byReason[key] = 1;
      }).toThrow(TypeError);
      expect(() => {
        (metrics.refused as Record<string, unknown>).banana = 1;
      }).toThrow(TypeError);
      expect(Object.keys(metrics.snapshot().disconnections)).toEqual(
        DISCONNECT_REASONS,
      );
    });

    it('never publishes a negative gauge, or a counter that is not a finite number', () => {
      const metrics = new EarwaxMetrics();
      metrics.admitted = 1;
      metrics.countDisconnection('quit');
      metrics.countDisconnection('reset');
      expect(metrics.snapshot().openConnections).toBe(0);
      metrics.linesReceived = Number.NaN;
      metrics.inputDropped = Number.POSITIVE_INFINITY;
      metrics.handlerErrors = -3;
      metrics.disconnected.idle = Number.NaN;
      const s = metrics.snapshot();
      expect([
        s.linesReceived,
        s.inputDropped,
        s.handlerErrors,
        s.disconnections.idle,
        s.openConnections,
      ]).toEqual([0, 0, 0, 0, 0]);
      expectFinite(metrics);
    });
  });

  describe('toPrometheus()', () => {
    it('writes every metric in the text format, and it reads back as the snapshot', () => {
      const metrics = busyMetrics();
      const listening = new ReplaySubject<string>(1);
      listening.next('listening');
      metrics.attach({ status: listening });
      const s: EarwaxMetricsSnapshot = metrics.snapshot();
      const families = parseExposition(metrics.toPrometheus());

      for (const [name, family] of families) {
        expect(name.startsWith('earwax_')).toBe(true);
        expect(family.help.length).toBeGreaterThan(0);
        expect(name.endsWith('_total')).toBe(family.type === 'counter');
      }
      const scalar = (name: string) => {
        const family = families.get(name);
        expect(family?.samples).toHaveLength(1);
        expect(family?.samples[0].labels).toEqual({});
        return family?.samples[0].value;
      };
      const byReason = (name: string) => {
        const out: Record<string, number> = {};
        for (const { labels, value } of families.get(name)?.samples ?? []) {
          expect(Object.keys(labels)).toEqual(['reason']);
          out[labels.reason] = value;
        }
        return out;
      };
      expect({
        accepted: scalar('earwax_connections_accepted_total'),
        admitted: scalar('earwax_connections_admitted_total'),
        refused: byReason('earwax_connections_refused_total'),
        disconnections: byReason('earwax_disconnections_total'),
        received: scalar('earwax_received_bytes_total'),
        sent: scalar('earwax_sent_bytes_total'),
        lines: scalar('earwax_lines_received_total'),
        dropped: scalar('earwax_input_dropped_total'),
        errors: scalar('earwax_handler_errors_total'),
        timeouts: scalar('earwax_handler_timeouts_total'),
        rejected: scalar('earwax_cluster_messages_rejected_total'),
        open: scalar('earwax_open_connections'),
        held: scalar('earwax_held_sockets'),
        transports: scalar('earwax_transports'),
        listening: scalar('earwax_listening_transports'),
      }).toEqual({
        accepted: s.connectionsAccepted,
        admitted: s.connectionsAdmitted,
        refused: s.connectionsRefused,
        disconnections: s.disconnections,
        received: s.bytesReceived,
        sent: s.bytesSent,
        lines: s.linesReceived,
        dropped: s.inputDropped,
        errors: s.handlerErrors,
        timeouts: s.handlerTimeouts,
        rejected: s.clusterMessagesRejected,
        open: s.openConnections,
        held: s.heldSockets,
        transports: s.transports,
        listening: s.listeningTransports,
      });
      // Nothing else: every family is one of the above.
      expect(families.size).toBe(15);
      // The values are not all alike, so a mixed-up name would show.
      expect(
        new Set([s.bytesReceived, s.bytesSent, s.linesReceived]).size,
      ).toBe(3);
    });

    it('is read again at each call', () => {
      const metrics = new EarwaxMetrics();
      const before = parseExposition(metrics.toPrometheus());
      metrics.handlerErrors = 4;
      const after = parseExposition(metrics.toPrometheus());
      expect(before.get('earwax_handler_errors_total')?.samples[0].value).toBe(
        0,
      );
      expect(after.get('earwax_handler_errors_total')?.samples[0].value).toBe(
        4,
      );
    });
  });
});
