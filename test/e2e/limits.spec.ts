import 'reflect-metadata';
import { afterEach, describe, expect, it } from '@jest/globals';
import { Controller, Inject } from '@nestjs/common';
import { Ctx, Payload } from '@nestjs/microservices';
import { setTimeout as delay } from 'node:timers/promises';
import {
  ConnectionContext,
  EARWAX_DEFAULTS,
  EVENT_HANDLED,
  EVENT_UNHANDLED,
  EarwaxEvent,
  EarwaxModule,
  EarwaxTransport,
  type EarwaxTransportOptions,
} from '../../lib/index.js';
import { bootEarwax, type Booted } from '../support/boot.js';
import { Journal } from '../support/journal.js';
import { LineClient } from '../support/line-client.js';

const PROBE = 'LIMITS_PROBE';
const M = EARWAX_DEFAULTS.messages;

/** How many lines each connection's flood (`#<n>` lines) delivered. */
interface FloodTally {
  count: number;
  inOrder: boolean;
}

/** What the handlers record, and how the on_block handler behaves. */
class Probe {
  readonly journal = new Journal();
  /** When set, on_block sends its own line and returns EVENT_HANDLED. */
  handleBlock = false;
  readonly floods = new Map<string, FloodTally>();
}

const names = new WeakMap<LineClient, string>();

/**
 * `<address>:<port>` of a connection, as its client sees its own end; read
 * once, as the socket forgets it when closed.
 */
function whoAmI(client: LineClient): string {
  let name = names.get(client);
  if (name === undefined) {
    name = `${client.socket.localAddress}:${client.socket.localPort}`;
    names.set(client, name);
  }
  return name;
}

function whoIs(ctx: ConnectionContext): string {
  return `${ctx.hostname}:${ctx.port}`;
}

/**
 * Records every event as `<event>:<address>:<port>[:<payload>]`; echoes
 * lines as `echo <line>`. Flood lines (`#<n>`) are only counted, cheaply.
 */
@Controller()
class LimitsController {
  constructor(@Inject(PROBE) private readonly probe: Probe) {}

  @EarwaxEvent('on_connect')
  connected(@Ctx() ctx: ConnectionContext) {
    this.probe.journal.record(`connect:${whoIs(ctx)}`);
  }

  @EarwaxEvent('on_block')
  blocked(@Payload() reason: string, @Ctx() ctx: ConnectionContext) {
    this.probe.journal.record(`block:${whoIs(ctx)}:${reason}`);
    if (!this.probe.handleBlock) return EVENT_UNHANDLED;
    ctx.sendString(`Custom refusal (${reason}).`);
    return EVENT_HANDLED;
  }

  @EarwaxEvent('on_data')
  data(@Payload() line: string, @Ctx() ctx: ConnectionContext) {
    if (line.startsWith('#')) {
      const who = whoIs(ctx);
      let tally = this.probe.floods.get(who);
      if (!tally)
        this.probe.floods.set(who, (tally = { count: 0, inOrder: true }));
      if (Number(line.slice(1)) !== tally.count) tally.inOrder = false;
      tally.count++;
      if (tally.count % 10_000 === 0) {
        this.probe.journal.record(`flood:${who}:${tally.count}`);
      }
      return;
    }
    this.probe.journal.record(`data:${whoIs(ctx)}:${line}`);
    ctx.sendString(`echo ${line}`);
  }

  @EarwaxEvent('on_disconnect')
  disconnected(@Payload() reason: string, @Ctx() ctx: ConnectionContext) {
    this.probe.journal.record(`disconnect:${whoIs(ctx)}:${reason}`);
  }
}

/** Every limit off; each test turns on what it tests. */
const NO_LIMITS: EarwaxTransportOptions = {
  encoding: 'utf8',
  maxConnections: false,
  maxConnectionsPerIp: false,
  connectionRate: false,
  idleTimeout: false,
  firstInputTimeout: false,
  inputRate: false,
};

/** `count` lines `#0` ... `#<count - 1>` in one buffer. */
function floodBuffer(count: number): Buffer {
  const lines: string[] = [];
  for (let i = 0; i < count; i++) lines.push(`#${i}\r\n`);
  return Buffer.from(lines.join(''));
}

describe('admission and per-connection limits', () => {
  let booted: Booted | undefined;
  let probe: Probe;
  let journal: Journal;
  const clients: LineClient[] = [];
  const timers: NodeJS.Timeout[] = [];

  afterEach(async () => {
    for (const timer of timers.splice(0)) clearInterval(timer);
    for (const client of clients.splice(0)) client.socket.destroy();
    await booted?.app.close();
    booted = undefined;
  });

  async function boot(options: EarwaxTransportOptions): Promise<Booted> {
    probe = new Probe();
    journal = probe.journal;
    booted = await bootEarwax(
      {
        imports: [EarwaxModule.forRoot()],
        controllers: [LimitsController],
        providers: [{ provide: PROBE, useValue: probe }],
      },
      { ...NO_LIMITS, ...options },
    );
    return booted;
  }

  /** Connects (tracked for clean-up) without waiting for admission. */
  async function open(from = '127.0.0.1'): Promise<LineClient> {
    const client = await LineClient.connect((booted as Booted).port, from);
    clients.push(client);
    whoAmI(client);
    return client;
  }

  /** Connects and waits for on_connect. */
  async function admitted(from = '127.0.0.1'): Promise<LineClient> {
    const client = await open(from);
    await journal.waitForEntry(`connect:${whoAmI(client)}`);
    return client;
  }

  /**
   * Connects, expects on_block with `reason`, and waits until the server
   * has closed the socket.
   */
  async function refused(
    reason: string,
    from = '127.0.0.1',
  ): Promise<LineClient> {
    const client = await open(from);
    const who = whoAmI(client);
    await journal.waitForEntry(`block:${who}:${reason}`);
    await client.expectClosedByServer();
    await client.closed;
    expect(journal.entries).not.toContain(`connect:${who}`);
    return client;
  }

  /** Every journal entry of one client, without its `:<address>:<port>`. */
  function eventsOf(client: LineClient): string[] {
    const who = whoAmI(client);
    return journal.entries
      .filter((e) => e.split(':').slice(1, 3).join(':') === who)
      .map((e) => {
        const [event, , , ...rest] = e.split(':');
        return [event, ...rest].join(':');
      });
  }

  /** Sends `text` and waits for its echo. */
  async function roundTrip(client: LineClient, text: string): Promise<void> {
    client.send(text);
    await client.expectLine(`echo ${text}`);
  }

  describe('maxConnections', () => {
    it('admits up to the limit, refuses one more with server_full, and admits again once one leaves', async () => {
      const { transport, logs } = await boot({ maxConnections: 3 });
      const a = await admitted();
      await admitted('127.0.0.2');
      await admitted('127.0.0.3');
      expect(transport.connections.size).toBe(3);

      const fourth = await refused('server_full', '127.0.0.4');
      expect(fourth.lines).toEqual([M.serverFull]);
      expect(eventsOf(fourth)).toEqual(['block:server_full']);
      expect(logs.find('(server_full)', 'warn')).toHaveLength(1);
      expect(transport.connections.size).toBe(3);

      // One leaves: its on_disconnect has run and its socket is closed.
      await a.end();
      await journal.waitForEntry(`disconnect:${whoAmI(a)}:client_closed`);
      const again = await admitted('127.0.0.4');
      expect(eventsOf(again)).toEqual(['connect']);
      expect(again.lines).toEqual([]);
      await roundTrip(again, 'hello');
      expect(transport.connections.size).toBe(3);
    });

    it('lets an on_block handler that returns EVENT_HANDLED replace the built-in message', async () => {
      const { transport } = await boot({ maxConnections: 1 });
      probe.handleBlock = true;
      await admitted();
      const extra = await refused('server_full');
      expect(extra.lines).toEqual(['Custom refusal (server_full).']);
      expect(transport.connections.size).toBe(1);
    });

    it('sends nothing before closing when messages.serverFull is false', async () => {
      await boot({ maxConnections: 1, messages: { serverFull: false } });
      await admitted();
      const extra = await refused('server_full');
      expect(extra.received.length).toBe(0);
      expect(extra.ended).toBe(true);
    });
  });

  describe('maxConnectionsPerIp', () => {
    it('refuses a third connection from one address with too_many_connections while another address gets in', async () => {
      const { transport, logs } = await boot({ maxConnectionsPerIp: 2 });
      const a1 = await admitted('127.0.0.1');
      await admitted('127.0.0.1');
      const b1 = await admitted('127.0.0.2');

      const a3 = await refused('too_many_connections', '127.0.0.1');
      expect(a3.lines).toEqual([M.tooManyConnections]);
      expect(eventsOf(a3)).toEqual(['block:too_many_connections']);
      expect(
        logs.find('(too_many_connections): 2 held from 127.0.0.1', 'warn'),
      ).toHaveLength(1);

      const b2 = await admitted('127.0.0.2');
      await roundTrip(b2, 'still in');
      expect(transport.connections.size).toBe(4);

      // A slot freed by a leaving connection (on_disconnect has run, the
      // socket is closed) is given out again.
      await a1.end();
      await journal.waitForEntry(`disconnect:${whoAmI(a1)}:client_closed`);
      const a4 = await admitted('127.0.0.1');
      expect(eventsOf(a4)).toEqual(['connect']);
      await roundTrip(b1, 'b1 still in');
    });
  });

  describe('connectionRate', () => {
    it('logs a storm of refusals once per address and window, then one line with the count', async () => {
      const { logs, transport } = await boot({
        connectionRate: { limit: 1, windowMs: 60_000 },
        refusalLogInterval: 400,
      });
      await admitted('127.0.0.4');
      await admitted('127.0.0.5');
      const storm = 12;
      for (let i = 0; i < storm; i++)
        await refused('rate_limited', '127.0.0.4');
      await refused('rate_limited', '127.0.0.5');

      // One line each as it happened, for either address.
      expect(logs.find('(rate_limited): 127.0.0.4', 'warn')).toHaveLength(1);
      expect(logs.find('(rate_limited): 127.0.0.5', 'warn')).toHaveLength(1);
      // The rest, summed up when the window ends.
      const summary = `Connection refused (rate_limited) from 127.0.0.4: ${storm - 1} more in the last 0.4 s`;
      await logs.waitFor(summary, 'warn');
      expect(logs.find('from 127.0.0.5:', 'warn')).toHaveLength(0);
      // Nothing is lost: every refusal ran on_block and is counted.
      expect(transport.metrics.snapshot().connectionsRefused.rate_limited).toBe(
        storm + 1,
      );
    });

    it('refuses connections past the rate with rate_limited, per address, until the window has passed', async () => {
      const windowMs = 1500;
      const { transport, logs } = await boot({
        connectionRate: { limit: 3, windowMs },
      });
      for (let i = 0; i < 3; i++) await admitted('127.0.0.1');

      const fourth = await refused('rate_limited', '127.0.0.1');
      expect(fourth.lines).toEqual([M.rateLimited]);
      expect(eventsOf(fourth)).toEqual(['block:rate_limited']);
      expect(logs.find('(rate_limited): 127.0.0.1', 'warn')).toHaveLength(1);

      const other = await admitted('127.0.0.3');
      await roundTrip(other, 'unaffected');
      expect(transport.connections.size).toBe(4);

      // Once the window has passed, 127.0.0.1 gets in again: retry, one
      // connection at a time, each after the refused one has closed.
      const deadline = Date.now() + 4 * windowMs;
      let refusals = 0;
      for (;;) {
        const client = await open('127.0.0.1');
        const who = whoAmI(client);
        await journal.waitFor(
          (es) =>
            es.includes(`connect:${who}`) ||
            es.includes(`block:${who}:rate_limited`),
          `on_connect or on_block of ${who}`,
        );
        if (journal.entries.includes(`connect:${who}`)) {
          await roundTrip(client, 'back again');
          break;
        }
        refusals++;
        await client.closed;
        expect(client.lines).toEqual([M.rateLimited]);
        if (Date.now() > deadline) {
          throw new Error(
            `127.0.0.1 still rate limited ${4 * windowMs} ms after a ${windowMs} ms window (${refusals} refusals)`,
          );
        }
        await delay(50);
      }
      expect(transport.connections.size).toBe(5);
    }, 15_000);
  });

  describe('idleTimeout and firstInputTimeout', () => {
    it('drops a quiet client with idle while an active one stays, output to the quiet one not counting as activity', async () => {
      const idleTimeout = 300;
      const { transport } = await boot({ idleTimeout });
      const active = await admitted('127.0.0.1');
      const quiet = await admitted('127.0.0.2');
      timers.push(
        setInterval(() => transport.connections.broadcast('tick'), 50),
      );

      let rounds = 0;
      let stop = false;
      const activity = (async () => {
        // Each line is sent once the previous one's echo came back.
        while (!stop) {
          await roundTrip(active, `ping ${rounds}`);
          rounds++;
          await delay(50);
        }
      })();
      try {
        const spokeAt = Date.now();
        await roundTrip(quiet, 'only line');
        await journal.waitForEntry(`disconnect:${whoAmI(quiet)}:idle`);
        expect(Date.now() - spokeAt).toBeGreaterThanOrEqual(idleTimeout - 5);
        await quiet.expectClosedByServer();
        const quietLines = quiet.lines.filter((l) => l !== 'tick');
        expect(quietLines).toEqual(['echo only line', M.idle]);
        expect(quiet.lines[quiet.lines.length - 1]).toBe(M.idle);
        // It was sent output all along; that did not keep it alive.
        expect(
          quiet.lines.filter((l) => l === 'tick').length,
        ).toBeGreaterThanOrEqual(3);

        // The active client outlives the quiet one by more than a timeout.
        const roundsAtDrop = rounds;
        await active.until(
          () => rounds >= roundsAtDrop + 8,
          '8 more rounds of the active client',
        );
      } finally {
        stop = true;
        await activity.catch(() => undefined);
      }
      expect(transport.connections.size).toBe(1);
      expect([...transport.connections][0].port).toBe(active.socket.localPort);
      expect(
        eventsOf(active).filter((e) => e.startsWith('disconnect')),
      ).toEqual([]);
      expect(active.ended).toBe(false);
      expect(active.lines).toContain('tick');
    }, 15_000);

    it('drops a client that sends no whole line within firstInputTimeout (silent or trickling bytes), not one that sent a line', async () => {
      const firstInputTimeout = 200;
      const { transport } = await boot({ firstInputTimeout });
      const talker = await admitted('127.0.0.1');
      talker.send('x');
      await talker.expectLine('echo x');
      const connectingAt = Date.now();
      const silent = await admitted('127.0.0.2');
      const trickler = await admitted('127.0.0.3');
      // Bytes that never end a line are not input (slowloris).
      trickler.write('l');

      await journal.waitForEntry(`disconnect:${whoAmI(silent)}:idle`);
      await journal.waitForEntry(`disconnect:${whoAmI(trickler)}:idle`);
      expect(Date.now() - connectingAt).toBeGreaterThanOrEqual(
        firstInputTimeout - 5,
      );
      await silent.expectClosedByServer();
      await trickler.expectClosedByServer();
      expect(silent.lines).toEqual([M.idle]);
      expect(trickler.lines).toEqual([M.idle]);
      // A dropped trickler's partial line is never delivered.
      expect(eventsOf(trickler)).toEqual(['connect', 'disconnect:idle']);

      // The talker connected first: its deadline has passed as well.
      const talkerCtx = [...transport.connections].find(
        (c) => c.port === talker.socket.localPort,
      );
      expect(talkerCtx?.isOpen).toBe(true);
      expect(transport.connections.size).toBe(1);
      expect(talker.ended).toBe(false);
      expect(eventsOf(talker)).toEqual(['connect', 'data:x']);
    }, 10_000);
  });

  describe('inputRate', () => {
    it('drops lines past the burst with one warning, keeps the connection, and passes lines again once refilled', async () => {
      const { transport, logs } = await boot({
        inputRate: {
          linesPerSecond: 10,
          lineBurst: 5,
          dropsBeforeDisconnect: 1000,
        },
      });
      const client = await admitted();
      const who = whoAmI(client);
      const burst = Array.from({ length: 20 }, (_, i) => `burst ${i + 1}`);
      client.write(burst.map((l) => l + '\r\n').join(''));

      await client.expectLine(M.floodWarning);
      await logs.waitFor('Input over its rate limit', 'warn');
      await journal.waitForEntry(`data:${who}:burst 5`);

      // Tokens come back at 10 a second: send a line every 150 ms until one
      // passes (the ones before it may be dropped too). A slow machine only
      // lets more time pass, so more tokens come back.
      const passedLine = () =>
        journal.entries.find((e) => e.startsWith(`data:${who}:again `));
      const passing = journal.waitFor(
        () => passedLine() !== undefined,
        'a line to pass',
      );
      for (let i = 0; i < 40 && passedLine() === undefined; i++) {
        client.send(`again ${i}`);
        await Promise.race([passing, delay(150)]);
      }
      const passed = passedLine();
      if (passed === undefined) throw new Error('No line passed in 40 tries');
      await client.expectLine(`echo ${passed.slice(`data:${who}:`.length)}`);

      const data = eventsOf(client).filter((e) => e.startsWith('data:'));
      expect(data.slice(0, 5)).toEqual(
        burst.slice(0, 5).map((l) => `data:${l}`),
      );
      expect(data.slice(5).every((e) => e.startsWith('data:again '))).toBe(
        true,
      );
      expect(client.lines.filter((l) => l === M.floodWarning)).toHaveLength(1);
      expect(logs.find('Input over its rate limit', 'warn')).toHaveLength(1);
      expect(client.ended).toBe(false);
      expect(transport.connections.size).toBe(1);
      expect(eventsOf(client).some((e) => e.startsWith('disconnect'))).toBe(
        false,
      );
    }, 10_000);

    it('disconnects a flood of 100,000 lines with flood under the default rate, while another client is served', async () => {
      const { lineBurst } = EARWAX_DEFAULTS.inputRate;
      // inputRate undefined: the default applies.
      const { transport, logs } = await boot({ inputRate: undefined });
      const good = await admitted('127.0.0.2');
      const flooder = await admitted('127.0.0.1');
      const who = whoAmI(flooder);

      flooder.write(floodBuffer(100_000));
      await roundTrip(good, 'during');

      await journal.waitForEntry(`disconnect:${who}:flood`);
      await flooder.expectClosedByServer();
      const told = flooder.lines.filter(
        (l) => l === M.floodWarning || l === M.flood,
      );
      expect(told).toEqual([M.floodWarning, M.flood]);
      expect(flooder.lines[flooder.lines.length - 1]).toBe(M.flood);
      await logs.waitFor('disconnecting (flood)', 'warn');

      const tally = probe.floods.get(who);
      expect(tally?.inOrder).toBe(true);
      expect(tally?.count).toBeGreaterThanOrEqual(1);
      expect(tally?.count).toBeLessThanOrEqual(lineBurst + 50);

      await roundTrip(good, 'after');
      expect(transport.connections.size).toBe(1);
      expect(eventsOf(good)).toEqual(['connect', 'data:during', 'data:after']);
    }, 15_000);

    it('delivers all 100,000 lines in order with inputRate false, while another client is served', async () => {
      const { transport } = await boot({ inputRate: false });
      const good = await admitted('127.0.0.2');
      const flooder = await admitted('127.0.0.1');
      const who = whoAmI(flooder);

      flooder.write(floodBuffer(100_000));
      // Served while the flood is being handled, not only after it: the
      // flood's lines are handled a socket chunk at a time, and the other
      // connection's line is read between chunks. No deadline on how soon.
      good.send('during');
      await good.expectLine('echo during');
      expect(probe.floods.get(who)?.count ?? 0).toBeLessThan(100_000);

      await journal.waitForEntry(`flood:${who}:100000`);
      const tally = probe.floods.get(who);
      expect(tally).toEqual({ count: 100_000, inOrder: true });
      expect(flooder.lines).toEqual([]);
      expect(flooder.ended).toBe(false);
      await roundTrip(good, 'after');
      await roundTrip(flooder, 'done');
      expect(transport.connections.size).toBe(2);
    }, 30_000);
  });

  describe('option validation', () => {
    it.each([
      ['maxConnections: 0', { maxConnections: 0 }, /maxConnections/],
      ['idleTimeout: -1', { idleTimeout: -1 }, /idleTimeout/],
      [
        'inputRate.byteBurst below maxLineLength',
        { inputRate: { byteBurst: 10 } },
        /inputRate\.byteBurst/,
      ],
      [
        'telnet.mssp.interval: 0',
        { telnet: { mssp: { name: 'x', interval: 0 } } },
        /telnet\.mssp\.interval/,
      ],
    ] as Array<[string, EarwaxTransportOptions, RegExp]>)(
      'throws RangeError at construction for %s',
      (_name, options, message) => {
        expect(() => new EarwaxTransport(options)).toThrow(RangeError);
        expect(() => new EarwaxTransport(options)).toThrow(message);
      },
    );

    it('accepts the smallest valid values', () => {
      expect(
        () =>
          new EarwaxTransport({
            maxConnections: 1,
            idleTimeout: 1,
            maxLineLength: 8,
            inputRate: { byteBurst: 10 },
            telnet: { mssp: { name: 'x', interval: 1 } },
          }),
      ).not.toThrow();
    });
  });
});
