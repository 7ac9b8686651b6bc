import 'reflect-metadata';
import { afterEach, describe, expect, it } from '@jest/globals';
import { Controller, Inject } from '@nestjs/common';
import { Ctx, Payload } from '@nestjs/microservices';
import {
  ConnectionContext,
  ConnectionRegistry,
  EARWAX_DEFAULTS,
  EarwaxEvent,
  EarwaxModule,
  type EarwaxTransportOptions,
} from '../../lib/index.js';
import { LineFramer } from '../../lib/framing/line-framer.js';
import {
  connectionFloodAttack,
  formatHostileReport,
  formatHostileResult,
  halfOpenAttack,
  httpRequestAttack,
  longLineAttack,
  randomBytesAttack,
  resetStormAttack,
  runHostileClients,
  slowlorisAttack,
  splitTelnetAttack,
  tinyPacketsAttack,
  tlsHelloAttack,
  untrustedProxyAttack,
  type HostileProbe,
  type HostileResult,
  type HostileTarget,
} from '../../lib/testing/hostile.js';
import { seededChunks } from '../../lib/testing/hostile/seeded-random.js';
import { bootEarwax, type Booted } from '../support/boot.js';
import { ServerBufferGauge } from '../support/hostile-gauge.js';
import { Journal } from '../support/journal.js';

const RECORD = 'HOSTILE_RECORD';
const M = EARWAX_DEFAULTS.messages;
/**
 * The well-behaved client, from an address of its own: the attacks come
 * from the default one, as binding thousands of sockets to one chosen
 * address is slow (the kernel searches that address's ports for each).
 */
const PROBE_ADDRESS = '127.0.0.3';
const PROBE: HostileProbe = {
  line: 'ping',
  expect: 'pong',
  from: PROBE_ADDRESS,
};
/** Where the hostile connections come from, unless a test says otherwise. */
const ATTACKER = '127.0.0.1';
const GREETING = 'Welcome, traveller.';

/**
 * What the server may hold for one connection, whatever it is sent: a
 * partial line of at most `maxLineLength` (64 KiB by default) plus a paused
 * socket's read buffer and the chunk being read (64 KiB each); the queue
 * pauses at `maxQueuedEvents` (256) and may pass it by one read's worth of
 * lines (a 64 KiB read of empty lines); output is dropped past
 * `maxOutputBuffer` (1 MiB), give or take one write.
 */
const BOUNDS = {
  inputBytes: 64 * 1024 + 2 * 64 * 1024,
  queuedEvents: 256 + 64 * 1024,
  outputBytes: 1024 * 1024 + 64 * 1024,
};

/** One event a handler saw. */
interface Seen {
  event: string;
  host: string;
  port: number;
  payload?: unknown;
}

/** What the handlers record, and what they do. */
class Record {
  readonly journal = new Journal<Seen>();
  /** Lines received per client address. */
  readonly lines = new Map<string, number>();
  /** The most connections held at once. */
  peak = 0;
  /** Greet every admitted connection. */
  greet = false;
  gauge: ServerBufferGauge | undefined;
}

@Controller()
class HostileController {
  constructor(
    @Inject(RECORD) private readonly record: Record,
    private readonly registry: ConnectionRegistry,
  ) {}

  @EarwaxEvent('on_connect')
  connected(@Ctx() ctx: ConnectionContext) {
    this.record.gauge?.adopt(ctx);
    this.record.peak = Math.max(this.record.peak, this.registry.size);
    this.see('connect', ctx);
    if (this.record.greet) ctx.sendString(GREETING);
  }

  @EarwaxEvent('on_data')
  data(@Payload() line: string, @Ctx() ctx: ConnectionContext) {
    this.record.lines.set(
      ctx.hostname,
      (this.record.lines.get(ctx.hostname) ?? 0) + 1,
    );
    if (line === PROBE.line) return 'pong';
  }

  @EarwaxEvent('on_disconnect')
  disconnected(@Payload() reason: string, @Ctx() ctx: ConnectionContext) {
    this.see('disconnect', ctx, reason);
  }

  @EarwaxEvent('on_block')
  blocked(@Payload() reason: string, @Ctx() ctx: ConnectionContext) {
    this.see('block', ctx, reason);
  }

  @EarwaxEvent(['on_resize', 'on_gmcp'])
  telnet(@Payload() payload: unknown, @Ctx() ctx: ConnectionContext) {
    this.see('telnet', ctx, payload);
  }

  private see(event: string, ctx: ConnectionContext, payload?: unknown) {
    this.record.journal.record({
      event,
      host: ctx.hostname,
      port: ctx.port,
      payload,
    });
  }
}

/**
 * Each test points one attack of the hostile-client kit at a real
 * EarwaxTransport and checks three things: the probe (a player on an address
 * of its own) was served before, during and after; the bad connections
 * ended for the right reason, as the on_disconnect and on_block handlers
 * recorded it; and what the server held per connection stayed bounded and
 * was released (see ServerBufferGauge for why buffers are measured, not the
 * heap).
 */
describe('hostile clients against a real EarwaxTransport', () => {
  let booted: Booted | undefined;
  let record: Record;

  afterEach(async () => {
    record?.gauge?.stop();
    await booted?.app.close();
    booted = undefined;
  });

  async function boot(options: EarwaxTransportOptions = {}): Promise<Booted> {
    record = new Record();
    booted = await bootEarwax(
      {
        imports: [EarwaxModule.forRoot()],
        controllers: [HostileController],
        providers: [{ provide: RECORD, useValue: record }],
      },
      { encoding: 'utf8', ...options },
      (_app, transport) => (record.gauge = new ServerBufferGauge(transport)),
    );
    return booted;
  }

  function target(extra: Partial<HostileTarget> = {}): HostileTarget {
    return { port: (booted as Booted).port, probe: PROBE, ...extra };
  }

  /** The events of connections from `host`, as `event[:payload]`. */
  function eventsFrom(host: string): string[] {
    return record.journal.entries
      .filter((e) => e.host === host)
      .map((e) =>
        e.payload === undefined
          ? e.event
          : `${e.event}:${typeof e.payload === 'string' ? e.payload : JSON.stringify(e.payload)}`,
      );
  }

  function count(host: string, event: string, payload?: unknown): number {
    return record.journal.count(
      (e) =>
        e.host === host &&
        e.event === event &&
        (payload === undefined || e.payload === payload),
    );
  }

  /**
   * Waits until `n` connections from `host` have had their on_disconnect
   * (or on_block): the server closes a socket before its on_disconnect
   * handler has run.
   */
  async function ended(host: string, n = 1): Promise<void> {
    await record.journal.waitFor(
      () => count(host, 'disconnect') + count(host, 'block') >= n,
      `${n} connection(s) from ${host} to end`,
    );
  }

  /** The probe was served before, at every probe during, and after. */
  function expectServed(result: HostileResult): void {
    // The whole report is the clearest failure message.
    if (!result.served || result.error !== undefined) {
      throw new Error(
        `The probe was not served throughout:\n${formatHostileResult(result)}`,
      );
    }
    expect(result.error).toBeUndefined();
    expect(result.probe.failures).toEqual([]);
    expect(result.probe.during.attempts).toBeGreaterThan(0);
    expect(result).toMatchObject({
      served: true,
      probe: {
        before: true,
        after: true,
        afterNew: true,
        during: { served: result.probe.during.attempts },
      },
    });
  }

  /**
   * What the server held for the connections from `host` stayed within
   * BOUNDS, every one of their server sockets has closed, and none is left
   * in the registry.
   */
  async function expectBoundedAndReleased(host: string): Promise<void> {
    const { gauge } = record;
    if (!gauge) throw new Error('no gauge');
    expect(gauge.accepted.get(host)).toBeGreaterThan(0);
    const peak = gauge.peakOf(host);
    expect(peak.inputBytes).toBeLessThanOrEqual(BOUNDS.inputBytes);
    expect(peak.queuedEvents).toBeLessThanOrEqual(BOUNDS.queuedEvents);
    expect(peak.outputBytes).toBeLessThanOrEqual(BOUNDS.outputBytes);
    await gauge.allClosedFrom(host);
    const left = [...(booted as Booted).transport.connections].filter(
      (ctx) => ctx.hostname === host,
    );
    expect(left).toEqual([]);
  }

  /** Nothing was logged at error level: no handler or socket blew up. */
  function expectNoErrors(): void {
    const logs = (booted as Booted).logs;
    expect([...logs.find(/./, 'error'), ...logs.find(/./, 'fatal')]).toEqual(
      [],
    );
  }

  it('slowloris: a byte a second that never ends a line is dropped as idle', async () => {
    await boot({ idleTimeout: 1000, firstInputTimeout: 1000 });
    const result = await slowlorisAttack(target(), {
      intervalMs: 200,
      durationMs: 6000,
    });

    expectServed(result);
    expect(result.connection).toMatchObject({
      ending: 'closed_by_server',
      serverClosed: true,
      lastReceived: M.idle,
    });
    await ended(ATTACKER);
    expect(eventsFrom(ATTACKER)).toEqual(['connect', 'disconnect:idle']);
    await expectBoundedAndReleased(ATTACKER);
    expectNoErrors();
  }, 15_000);

  it('a 10 MiB line ends with line_too_long, never buffered past maxLineLength', async () => {
    await boot();
    const result = await longLineAttack(target());

    expectServed(result);
    expect(result.connection).toMatchObject({
      ending: 'closed_by_server',
      lastReceived: 'Line too long (at most 65536 bytes).',
    });
    await ended(ATTACKER);
    expect(eventsFrom(ATTACKER)).toEqual([
      'connect',
      'disconnect:line_too_long',
    ]);
    expect(record.lines.get(ATTACKER)).toBeUndefined();
    await expectBoundedAndReleased(ATTACKER);
    // It was stopped well before the line was through.
    expect(result.connection?.bytesSent).toBeLessThan(10 * 1024 * 1024);
    expectNoErrors();
  }, 15_000);

  // Flood, not "served in order with the limits off": the default input rate
  // is what a server meets the attack with, and half a million lines through
  // the pipeline would take much of this file's time for less.
  it('a million 1-byte packets are dropped as a flood (the default input rate)', async () => {
    await boot();
    const result = await tinyPacketsAttack(target());

    expectServed(result);
    expect(result.connection).toMatchObject({
      ending: 'closed_by_server',
      lastReceived: M.flood,
    });
    await ended(ATTACKER);
    expect(eventsFrom(ATTACKER)).toEqual(['connect', 'disconnect:flood']);
    // Some lines got through before the bucket ran dry; not a million.
    const delivered = record.lines.get(ATTACKER) ?? 0;
    expect(delivered).toBeGreaterThan(0);
    expect(delivered).toBeLessThan(10_000);
    await expectBoundedAndReleased(ATTACKER);
    expectNoErrors();
  }, 15_000);

  it('random bytes are framed exactly as a LineFramer frames them, and the client leaves cleanly', async () => {
    const maxLineLength = 64 * 1024;
    await boot({ inputRate: false, maxLineLength });
    const bytes = 512 * 1024;
    const seed = 7;
    const result = await randomBytesAttack(target(), { bytes, seed });

    expectServed(result);
    let expected = 0;
    let overflows = 0;
    const framer = new LineFramer(maxLineLength);
    const sink = {
      onLine: () => expected++,
      onOverflow: () => overflows++,
    };
    for (const chunk of seededChunks(seed, bytes, 4096))
      framer.push(chunk, sink);
    // The unterminated rest is delivered on a clean close.
    if (framer.flush()) expected++;
    expect(overflows).toBe(0);
    expect(result.connection).toMatchObject({
      ending: 'closed_by_client',
      serverClosed: true,
      bytesSent: bytes,
    });
    await ended(ATTACKER);
    expect(record.lines.get(ATTACKER)).toBe(expected);
    expect(eventsFrom(ATTACKER)).toEqual([
      'connect',
      'disconnect:client_closed',
    ]);
    await expectBoundedAndReleased(ATTACKER);
    expectNoErrors();
  }, 15_000);

  it('random bytes through telnet mode leave the server unharmed', async () => {
    await boot({ telnet: true, inputRate: false });
    const result = await randomBytesAttack(
      target({ probe: { ...PROBE, telnet: true } }),
      {
        bytes: 256 * 1024,
        seed: 11,
      },
    );

    expectServed(result);
    expect(result.connection).toMatchObject({
      ending: 'closed_by_client',
      serverClosed: true,
    });
    await ended(ATTACKER);
    expect(eventsFrom(ATTACKER)).toEqual(
      expect.arrayContaining(['connect', 'disconnect:client_closed']),
    );
    expect(count(ATTACKER, 'disconnect')).toBe(1);
    await expectBoundedAndReleased(ATTACKER);
    expectNoErrors();
  }, 15_000);

  it('telnet sequences split at every byte are understood, and the connection is still served', async () => {
    const { logs } = await boot({ telnet: true });
    const result = await splitTelnetAttack(
      target({ probe: { ...PROBE, telnet: true } }),
    );

    expectServed(result);
    // The probe's line, sent byte by byte after everything else, was
    // answered on the hostile connection itself.
    expect(result.connection).toMatchObject({
      answered: true,
      ending: 'closed_by_client',
      serverClosed: true,
    });
    // Logged once: at warning level, or at debug level after an earlier
    // broken sequence had its one warning.
    expect(logs.find(/GMCP longer than 8192 bytes: dropped/)).toHaveLength(1);
    await ended(ATTACKER);
    expect(eventsFrom(ATTACKER)).toEqual([
      'connect',
      'telnet:{"width":80,"height":24}',
      'telnet:{"width":255,"height":50}',
      'telnet:{"package":"Core.Hello","data":{"client":"hostile","version":"1"}}',
      'disconnect:client_closed',
    ]);
    await expectBoundedAndReleased(ATTACKER);
    expectNoErrors();
  }, 15_000);

  it('half-open clients that end their side and read on get their answer, then are closed', async () => {
    await boot();
    const result = await halfOpenAttack(target(), {
      mode: 'end-and-read',
      connections: 20,
    });

    expectServed(result);
    expect(result.connections).toMatchObject({
      attempted: 20,
      connected: 20,
      serverClosed: 20,
      answered: 20,
      lastReceived: { pong: 20 },
    });
    await ended(ATTACKER, 20);
    expect(count(ATTACKER, 'connect')).toBe(20);
    expect(count(ATTACKER, 'disconnect', 'client_closed')).toBe(20);
    await expectBoundedAndReleased(ATTACKER);
    expectNoErrors();
  }, 15_000);

  it('half-open clients that never read are closed by the server all the same', async () => {
    await boot();
    const result = await halfOpenAttack(target(), {
      mode: 'never-read',
      connections: 20,
      holdMs: 1000,
    });

    expectServed(result);
    expect(result.connections).toMatchObject({
      attempted: 20,
      connected: 20,
      lastReceived: { '': 20 },
    });
    await ended(ATTACKER, 20);
    expect(count(ATTACKER, 'connect')).toBe(20);
    expect(count(ATTACKER, 'disconnect', 'client_closed')).toBe(20);
    await expectBoundedAndReleased(ATTACKER);
    expectNoErrors();
  }, 15_000);

  it('a connect-and-reset storm: every admitted connection ends with reset, and none is left', async () => {
    await boot({ connectionRate: false });
    const result = await resetStormAttack(target(), {
      connections: 1000,
      concurrency: 100,
    });

    expectServed(result);
    expect(result.connections).toMatchObject({
      attempted: 1000,
      connected: 1000,
      endings: { closed_by_client: 1000 },
    });
    await expectBoundedAndReleased(ATTACKER);
    const connects = count(ATTACKER, 'connect');
    expect(connects).toBeGreaterThan(0);
    await ended(ATTACKER, connects);
    expect(count(ATTACKER, 'disconnect', 'reset')).toBe(connects);
    expect(count(ATTACKER, 'block')).toBe(0);
    expectNoErrors();
  }, 20_000);

  describe('5,000 connections at once', () => {
    it('from one address: the default maxConnectionsPerIp admits 50 and refuses the rest with too_many_connections', async () => {
      await boot({ connectionRate: false, backlog: 4096 });
      record.greet = true;
      const result = await connectionFloodAttack(target(), {
        connections: 5000,
        greeting: GREETING,
        holdMs: 250,
      });

      expectServed(result);
      expect(result.connections).toMatchObject({
        attempted: 5000,
        connected: 5000,
        greeted: 50,
        serverClosed: 5000,
      });
      expect(result.connections.lastReceived).toEqual({
        [GREETING]: 50,
        [M.tooManyConnections]: 4950,
      });
      expect(count(ATTACKER, 'connect')).toBe(50);
      expect(count(ATTACKER, 'block', 'too_many_connections')).toBe(4950);
      await expectBoundedAndReleased(ATTACKER);
      await ended(ATTACKER, 5000);
      expect(count(ATTACKER, 'disconnect', 'client_closed')).toBe(50);
      expectNoErrors();
    }, 30_000);

    it('from one address with the limit raised: all 5,000 are admitted and held at once', async () => {
      await boot({
        connectionRate: false,
        maxConnectionsPerIp: false,
        logConnections: false,
        backlog: 4096,
      });
      record.greet = true;
      const result = await connectionFloodAttack(target(), {
        connections: 5000,
        greeting: GREETING,
        holdMs: 250,
      });

      expectServed(result);
      expect(result.connections).toMatchObject({
        attempted: 5000,
        connected: 5000,
        greeted: 5000,
      });
      // Everyone was in at once, the probe too.
      expect(record.peak).toBe(5001);
      expect(count(ATTACKER, 'connect')).toBe(5000);
      await expectBoundedAndReleased(ATTACKER);
      await ended(ATTACKER, 5000);
      expect(count(ATTACKER, 'disconnect', 'client_closed')).toBe(5000);
      expectNoErrors();
    }, 30_000);

    it('from 200 addresses, 25 each: every limit at its default, all are admitted', async () => {
      await boot({ logConnections: false, backlog: 4096 });
      record.greet = true;
      const from = Array.from(
        { length: 200 },
        (_, i) => `127.0.${10 + Math.floor(i / 100)}.${(i % 100) + 1}`,
      );
      const result = await connectionFloodAttack(target({ from }), {
        connections: 5000,
        greeting: GREETING,
        holdMs: 250,
      });

      expectServed(result);
      expect(result.connections).toMatchObject({
        attempted: 5000,
        connected: 5000,
        greeted: 5000,
      });
      expect(record.peak).toBe(5001);
      const hosts = new Set(
        record.journal.entries
          .filter((e) => e.event === 'connect' && e.host !== PROBE_ADDRESS)
          .map((e) => e.host),
      );
      expect(hosts.size).toBe(200);
      expect(record.journal.count((e) => e.event === 'block')).toBe(0);
      for (const host of [from[0], from[199]]) {
        await expectBoundedAndReleased(host);
      }
      expectNoErrors();
    }, 30_000);
  });

  it('an HTTP request on the game port gets a plain-text answer and is closed with protocol', async () => {
    await boot();
    const result = await httpRequestAttack(target());

    expectServed(result);
    expect(result.connection).toMatchObject({
      ending: 'closed_by_server',
      lastReceived: M.http,
    });
    await ended(ATTACKER);
    expect(eventsFrom(ATTACKER)).toEqual(['connect', 'disconnect:protocol']);
    expect(record.lines.get(ATTACKER)).toBeUndefined();
    await expectBoundedAndReleased(ATTACKER);
    expectNoErrors();
  });

  it('a TLS ClientHello on the plain port is closed with protocol', async () => {
    const { logs } = await boot();
    const result = await tlsHelloAttack(target());

    expectServed(result);
    expect(result.connection?.serverClosed).toBe(true);
    expect(result.connection?.bytesSent).toBeGreaterThan(0);
    await ended(ATTACKER);
    expect(eventsFrom(ATTACKER)).toEqual(['connect', 'disconnect:protocol']);
    expect(logs.find('TLS handshake on a plain port', 'warn')).toHaveLength(1);
    await expectBoundedAndReleased(ATTACKER);
    expectNoErrors();
  });

  it('a PROXY header from an untrusted address is closed unread and never admitted', async () => {
    const untrusted = '127.0.0.9';
    const { port, logs } = await boot({
      proxyProtocol: { trustedProxies: [PROBE_ADDRESS] },
    });
    const probe: HostileProbe = {
      ...PROBE,
      preamble: `PROXY TCP4 198.51.100.20 127.0.0.1 50000 ${port}\r\n`,
    };
    const result = await untrustedProxyAttack(
      target({ from: untrusted, probe }),
    );

    expectServed(result);
    expect(result.connection?.serverClosed).toBe(true);
    expect(result.connection?.answered).toBe(false);
    // Neither the socket's address nor the one its header claimed got in.
    expect(eventsFrom(untrusted)).toEqual([]);
    expect(eventsFrom('203.0.113.7')).toEqual([]);
    // The probe did, under the address its trusted proxy named.
    expect(count('198.51.100.20', 'connect')).toBe(2);
    expect(logs.find('not a trusted proxy', 'warn')).toHaveLength(1);
    await expectBoundedAndReleased(untrusted);
    expectNoErrors();
  });

  it('runHostileClients runs the chosen attacks in order and prints a report', async () => {
    await boot();
    const printed: string[] = [];
    const results = await runHostileClients(target(), {
      attacks: ['http-request', 'tls-hello'],
      print: (line) => printed.push(line),
    });

    expect(results.map((r) => [r.attack, r.served, r.error])).toEqual([
      ['http-request', true, undefined],
      ['tls-hello', true, undefined],
    ]);
    const report = printed.join('\n');
    expect(report).toContain(
      `Hostile clients against 127.0.0.1:${(booted as Booted).port}`,
    );
    expect(report).toContain('[ok] http-request');
    expect(report).toContain('[ok] tls-hello');
    expect(report).toContain(
      '2 of 2 attacks left the server serving its probe throughout.',
    );
    expect(formatHostileReport(results)).toBe(report);
  });

  it('rejects bad input before attacking, and says what was wrong', async () => {
    await boot();
    await expect(slowlorisAttack({ port: 0, probe: PROBE })).rejects.toThrow(
      'target.port must be an integer from 1 to 65535, got 0',
    );
    await expect(longLineAttack(target(), { bytes: -1 })).rejects.toThrow(
      'long-line bytes must be a positive integer, got -1',
    );
    await expect(
      runHostileClients(target(), {
        attacks: ['http-request', 'smurf' as never],
        print: false,
      }),
    ).rejects.toThrow('unknown attack "smurf"');
    // A bad option of a later attack stops the run before the first starts.
    await expect(
      runHostileClients(target(), {
        attacks: ['http-request', 'slowloris'],
        options: { slowloris: { intervalMs: 0 } },
        print: false,
      }),
    ).rejects.toThrow('slowloris intervalMs must be a positive integer');
    expect(count(ATTACKER, 'connect')).toBe(0);
    expect(record.journal.entries).toEqual([]);

    // A probe the server does not answer: nothing is attacked.
    const result = await httpRequestAttack(
      target({ probe: { ...PROBE, expect: 'never', timeoutMs: 300 } }),
    );
    expect(result.served).toBe(false);
    expect(result.error).toMatch(/^The probe was not served before the attack/);
    expect(result.connections.attempted).toBe(0);
    expect(count(ATTACKER, 'connect')).toBe(0);

    // Attacks from an address this machine does not have (TEST-NET-1).
    const nowhere = await httpRequestAttack(target({ from: '192.0.2.1' }));
    expect(nowhere.error).toBe(
      'No hostile connection could be opened (EADDRNOTAVAIL); check target.from: each must be an address of this machine.',
    );
    expect(nowhere.connections).toMatchObject({
      attempted: 1,
      connected: 0,
      endings: { failed: 1 },
    });
  });
});
