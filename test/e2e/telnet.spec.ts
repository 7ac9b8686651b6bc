import 'reflect-metadata';
import { afterEach, describe, expect, it } from '@jest/globals';
import { Controller, Inject } from '@nestjs/common';
import { Ctx, Payload } from '@nestjs/microservices';
import {
  type AnyConnectionContext,
  ConnectionContext,
  ConnectionRegistry,
  EARWAX_DEFAULTS,
  EarwaxEvent,
  EarwaxModule,
  type EarwaxTransportOptions,
  type GmcpMessage,
  type TerminalInfo,
  type WindowSize,
} from '../../lib/index.js';
import {
  TelnetCommand,
  TelnetOption,
  TelnetSubCode,
} from '../../lib/telnet/index.js';
import { bootEarwax, type Booted } from '../support/boot.js';
import { Journal } from '../support/journal.js';
import { LineClient } from '../support/line-client.js';
import {
  bytes,
  TelnetClient,
  type TelnetClientOptions,
} from '../support/telnet-client.js';
import { setImmediate as nextTurn } from 'node:timers/promises';

const { IAC, SB, SE, WILL, WONT, DO, DONT, NOP, GA, EOR } = TelnetCommand;
const { ECHO, SGA, TTYPE, NAWS, CHARSET, MSSP, GMCP } = TelnetOption;
const CR = 0x0d;
const LF = 0x0a;
const CRLF = '\r\n';

/** What the server offers at admission, in order. */
const OFFERS = [
  'DO TTYPE',
  'DO NAWS',
  'WILL GMCP',
  'WILL CHARSET',
  'WILL EOR',
  'WILL MSSP',
];
const OFFER_BYTES = bytes(
  ...[
    [IAC, DO, TTYPE],
    [IAC, DO, NAWS],
    [IAC, WILL, GMCP],
    [IAC, WILL, TelnetOption.CHARSET],
    [IAC, WILL, TelnetOption.EOR],
    [IAC, WILL, MSSP],
  ].flat(),
);
const TTYPE_SEND = `SB TTYPE ${JSON.stringify('\x01')}`;

/** One event a handler saw, for one connection. */
interface Rec {
  id: string;
  event: string;
  data?: unknown;
}
/** How many bytes a connection's socket had read, after each chunk. */
interface Chunk {
  id: string;
  total: number;
}

class Records {
  readonly events = new Journal<Rec>();
  readonly chunks = new Journal<Chunk>();

  /** The events of one connection (not connect/disconnect): [event, data]. */
  of(id: string, all = false): Array<[string, unknown]> {
    return this.events.entries
      .filter(
        (r) =>
          r.id === id &&
          (all || (r.event !== 'connect' && r.event !== 'disconnect')),
      )
      .map((r) => [r.event, r.data]);
  }

  /** Waits until connection `id` has had `event` (matching `data`, if given). */
  waitFor(id: string, event: string, data?: unknown): Promise<void> {
    return this.events.waitForEntry(
      (r) =>
        r.id === id &&
        r.event === event &&
        (data === undefined || JSON.stringify(r.data) === JSON.stringify(data)),
    );
  }

  /** Waits until the server socket of `id` has read `total` bytes. */
  waitForBytes(id: string, total: number): Promise<void> {
    return this.chunks.waitForEntry((c) => c.id === id && c.total >= total);
  }
}

const RECORDS = 'RECORDS';

/**
 * Records every event; answers `pw`, `pwok`, `prompt`, `gmcp`, `enc`, `info`
 * and `ff`, and says back anything else.
 */
@Controller()
class TelnetController {
  constructor(
    @Inject(RECORDS) private readonly records: Records,
    private readonly registry: ConnectionRegistry,
  ) {}

  @EarwaxEvent('on_connect')
  connected(@Ctx() ctx: ConnectionContext) {
    this.records.events.record({
      id: ctx.id,
      event: 'connect',
      data: ctx.isTelnet,
    });
    // Added after the transport's own listener: it runs once the transport
    // has processed the chunk.
    let total = 0;
    ctx.socket.on('data', (chunk: Buffer) => {
      total += chunk.length;
      this.records.chunks.record({ id: ctx.id, total });
    });
    ctx.sendString(`welcome ${ctx.id}`);
  }

  @EarwaxEvent('on_data')
  data(@Payload() line: string, @Ctx() ctx: ConnectionContext): unknown {
    this.records.events.record({ id: ctx.id, event: 'data', data: line });
    switch (line) {
      case 'pw':
        return `echo:${ctx.echo(false)}`;
      case 'pwok':
        return `echo:${ctx.echo(true)}`;
      case 'prompt':
        ctx.sendPrompt('> ');
        return undefined;
      case 'gmcp':
        return `gmcp:${ctx.sendGmcp('Room.Info', { name: 'Hall', exits: ['n', 's'] })}`;
      case 'enc':
        return `enc:${ctx.encoding}`;
      case 'info':
        return `info:${JSON.stringify({
          telnet: ctx.isTelnet,
          size: ctx.windowSize ?? null,
          terminal: ctx.terminal ?? null,
        })}`;
      case 'ff':
        ctx.sendString('ÿ');
        ctx.sendBytes(Buffer.of(0x61, 0xff, 0x62));
        ctx.sendBytes('ÿ', 'latin1');
        ctx.sendRaw(Buffer.of(0xff, CR, LF));
        ctx.sendRaw('ÿ\r\n');
        this.registry.broadcast(Buffer.of(0xff, 0x21));
        this.registry.broadcast('ÿ?', { encoding: 'latin1' });
        // Text without an encoding: in each connection's own.
        this.registry.broadcast('ÿ+');
        return [Buffer.of(0x7e, 0xff), 'ff-done'];
      default:
        return `said:${line}`;
    }
  }

  @EarwaxEvent('on_resize')
  resized(@Payload() size: WindowSize, @Ctx() ctx: ConnectionContext) {
    this.records.events.record({ id: ctx.id, event: 'resize', data: size });
  }

  @EarwaxEvent('on_terminal')
  terminal(@Payload() info: TerminalInfo, @Ctx() ctx: ConnectionContext) {
    this.records.events.record({ id: ctx.id, event: 'terminal', data: info });
  }

  @EarwaxEvent('on_gmcp')
  gmcp(@Payload() message: GmcpMessage, @Ctx() ctx: ConnectionContext) {
    this.records.events.record({ id: ctx.id, event: 'gmcp', data: message });
  }

  @EarwaxEvent('on_disconnect')
  disconnected(@Payload() reason: string, @Ctx() ctx: ConnectionContext) {
    this.records.events.record({
      id: ctx.id,
      event: 'disconnect',
      data: reason,
    });
  }
}

/** MTTS capabilities with the given ones on. */
function caps(...on: string[]): Record<string, boolean> {
  const all = [
    'ansi',
    'vt100',
    'utf8',
    'colors256',
    'mouseTracking',
    'oscColorPalette',
    'screenReader',
    'proxy',
    'trueColor',
    'mnes',
    'mslp',
    'tls',
  ];
  return Object.fromEntries(all.map((c) => [c, on.includes(c)]));
}

/** The `info:` reply, parsed. */
function parseInfo(line: string): {
  telnet: boolean;
  size: WindowSize | null;
  terminal: TerminalInfo | null;
} {
  expect(line.startsWith('info:')).toBe(true);
  return JSON.parse(line.slice(5));
}

/** Small seeded PRNG (mulberry32), so a failing stream can be replayed. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Whole telnet sequences, for the random streams to splice in. */
const FRAGMENTS: Buffer[] = [
  bytes(IAC, WILL, TTYPE),
  bytes(IAC, WONT, TTYPE),
  bytes(IAC, DO, MSSP),
  bytes(IAC, DONT, MSSP),
  bytes(IAC, DO, ECHO),
  bytes(IAC, DO, GMCP),
  bytes(IAC, DO, CHARSET),
  bytes(IAC, WILL, NAWS),
  bytes(IAC, SB, NAWS, 0, 80, IAC, IAC, 24, IAC, SE),
  bytes(IAC, SB, TTYPE, 0, 'MTTS 137', IAC, SE),
  bytes(IAC, SB, TTYPE, 0, 'ZMUD', IAC, SE),
  bytes(IAC, SB, GMCP, 'Core.Hello {"a":[1,2', IAC, SE),
  bytes(IAC, SB, GMCP, 'Core.Ping', IAC, SE),
  bytes(IAC, SB, CHARSET, 2, 'ISO-8859-1', IAC, SE),
  bytes(IAC, SB, CHARSET, 2, 'UTF-8', IAC, SE),
  bytes(IAC, SB, GMCP),
  bytes('look', CR, LF),
  bytes(CR, 0),
];

/**
 * Random bytes rich in telnet: 0xFF at a density that varies by stream,
 * command and option bytes, CR/LF/NUL, and whole or cut sequences.
 */
function randomStream(random: () => number, length: number): Buffer {
  const options = [ECHO, SGA, TTYPE, NAWS, CHARSET, MSSP, GMCP, 25, 0, 255];
  const iacRate = [0.02, 0.1, 0.3, 0.6][Math.floor(random() * 4)];
  const parts: Buffer[] = [];
  let size = 0;
  while (size < length) {
    const r = random();
    let part: Buffer;
    if (r < iacRate) part = Buffer.of(IAC);
    else if (r < iacRate + 0.1) {
      const fragment = FRAGMENTS[Math.floor(random() * FRAGMENTS.length)];
      // Whole, or cut short.
      part =
        random() < 0.7
          ? fragment
          : fragment.subarray(0, Math.floor(random() * fragment.length));
    } else if (r < iacRate + 0.2)
      part = Buffer.of(240 + Math.floor(random() * 15));
    else if (r < iacRate + 0.3)
      part = Buffer.of(options[Math.floor(random() * options.length)]);
    else if (r < iacRate + 0.35)
      part = Buffer.of([CR, LF, 0][Math.floor(random() * 3)]);
    else part = Buffer.of(Math.floor(random() * 256));
    parts.push(part);
    size += part.length;
  }
  return Buffer.concat(parts).subarray(0, length);
}

/** MSSP payload: VAR name VAL value [VAL value...] ... */
function parseMssp(payload: Buffer): Record<string, string[]> {
  const result: Record<string, string[]> = {};
  let name = '';
  let i = 0;
  while (i < payload.length) {
    const marker = payload[i++];
    let end = i;
    while (
      end < payload.length &&
      payload[end] !== TelnetSubCode.MSSP_VAR &&
      payload[end] !== TelnetSubCode.MSSP_VAL
    )
      end++;
    const text = payload.toString('utf8', i, end);
    if (marker === TelnetSubCode.MSSP_VAR) {
      name = text;
      result[name] = [];
    } else {
      result[name].push(text);
    }
    i = end;
  }
  return result;
}

/** The stream every split position is tried on. */
const GMCP_HELLO = 'Core.Hello {"client":"Mudlet","version":"4.17"}';
const SPLIT_STREAM = bytes(
  ...['ab', IAC, IAC, 'c', CR, 0, 'd', CR, LF],
  ...[IAC, WILL, TTYPE],
  // Agreed before its sizes come: NAWS sent unagreed may be ignored.
  ...[IAC, WILL, NAWS],
  ...[IAC, SB, TTYPE, TelnetSubCode.IS, 'MUDLET', IAC, SE],
  ...[IAC, DO, GMCP],
  ...['e', IAC, NOP, 'f', CR, LF],
  // 0x0AFF x 0xFF0D: 2815 x 65293, each 0xFF doubled.
  ...[IAC, SB, NAWS, 0x0a, IAC, IAC, IAC, IAC, 0x0d, IAC, SE],
  ...[IAC, SB, TTYPE, TelnetSubCode.IS, 'XTERM', IAC, SE],
  // 0x0D00 x 0x000A: CR NUL inside a subnegotiation stays as it is.
  ...[IAC, SB, NAWS, 0x0d, 0x00, 0x00, 0x0a, IAC, SE],
  ...[IAC, SB, GMCP, GMCP_HELLO, IAC, SE],
  ...['g', IAC, GA, 'h', CR, LF],
  ...[IAC, SB, TTYPE, TelnetSubCode.IS, 'MTTS 141', IAC, SE],
  ...['end', CR, LF],
);
const SPLIT_EVENTS: Array<[string, unknown]> = [
  ['data', 'ab\uFFFDc'],
  ['data', 'd'],
  ['data', 'ef'],
  ['resize', { width: 2815, height: 65293 }],
  ['resize', { width: 3328, height: 10 }],
  [
    'gmcp',
    { package: 'Core.Hello', data: { client: 'Mudlet', version: '4.17' } },
  ],
  ['data', 'gh'],
  [
    'terminal',
    {
      client: 'MUDLET',
      terminal: 'XTERM',
      mtts: 141,
      capabilities: caps('ansi', 'utf8', 'colors256', 'proxy'),
    },
  ],
  ['data', 'end'],
];
const SPLIT_LINES = [
  'said:ab\uFFFDc',
  'said:d',
  'said:ef',
  'said:gh',
  'said:end',
];
const SPLIT_COMMANDS = [...OFFERS, TTYPE_SEND, TTYPE_SEND, TTYPE_SEND];

/** What `ff` sends, as data (after telnet parsing) and on the wire. */
function ffOutput(latin1: boolean): { clean: Buffer; raw: Buffer } {
  const yUtf8 = [0xc3, 0xbf];
  const y = latin1 ? [0xff] : yUtf8;
  const lines = [
    y, // sendString('ÿ')
    [0x61, 0xff, 0x62], // sendBytes(bytes)
    [0xff], // sendBytes('ÿ', 'latin1')
    [0xff], // sendRaw(bytes + CR LF)
    y, // sendRaw('ÿ\r\n')
    [0xff, 0x21], // broadcast(bytes)
    [0xff, 0x3f], // broadcast('ÿ?', latin1)
    [...y, 0x2b], // broadcast('ÿ+'), in the connection's encoding
    [0x7e, 0xff], // reply bytes
    [...Buffer.from('ff-done')],
  ];
  const clean = Buffer.from(lines.flatMap((l) => [...l, CR, LF]));
  const raw = Buffer.from(
    lines.flatMap((l) => [
      ...l.flatMap((b) => (b === 0xff ? [b, b] : [b])),
      CR,
      LF,
    ]),
  );
  return { clean, raw };
}

describe('telnet mode', () => {
  let booted: Booted | undefined;
  let records: Records;
  const clients: Array<TelnetClient | LineClient> = [];

  afterEach(async () => {
    for (const client of clients.splice(0)) client.socket.destroy();
    await booted?.app.close();
    booted = undefined;
  });

  async function boot(options: EarwaxTransportOptions = {}): Promise<Booted> {
    records = new Records();
    booted = await bootEarwax(
      {
        imports: [EarwaxModule.forRoot()],
        controllers: [TelnetController],
        providers: [{ provide: RECORDS, useValue: records }],
      },
      {
        telnet: true,
        encoding: 'utf8',
        connectionRate: false,
        inputRate: false,
        maxConnectionsPerIp: false,
        logConnections: false,
        ...options,
      },
    );
    return booted;
  }

  async function client(
    options: TelnetClientOptions = {},
    onConnect?: (client: TelnetClient) => void,
  ): Promise<TelnetClient> {
    const c = await TelnetClient.connect(
      (booted as Booted).port,
      options,
      onConnect,
    );
    clients.push(c);
    return c;
  }

  /** Sends a line and waits for the server's `said:` answer. */
  async function roundTrip(c: TelnetClient, text: string): Promise<void> {
    c.send(text);
    await c.expectLine(`said:${text}`);
  }

  it('gives the same events, lines and answers for every 2-split of a stream of every sequence', async () => {
    const { port } = await boot();
    const n = SPLIT_STREAM.length;
    expect(n).toBeGreaterThan(100);

    async function run(cuts: number[]): Promise<void> {
      const c = await TelnetClient.connect(port);
      clients.push(c);
      const id = await c.welcome();
      let from = 0;
      for (const cut of [...cuts, n]) {
        c.write(SPLIT_STREAM.subarray(from, cut));
        // The server has processed [0, cut) before the rest is sent, so its
        // socket reads a chunk boundary exactly at `cut`.
        await records.waitForBytes(id, cut);
        from = cut;
      }
      await c.until(
        () => c.lines.length >= 1 + SPLIT_LINES.length,
        'every answer',
      );
      const where = `cuts ${JSON.stringify(cuts)}`;
      expect([where, records.of(id)]).toEqual([where, SPLIT_EVENTS]);
      expect([where, c.lines.slice(1)]).toEqual([where, SPLIT_LINES]);
      expect([where, c.commands]).toEqual([where, SPLIT_COMMANDS]);
      const totals = records.chunks.entries
        .filter((e) => e.id === id)
        .map((e) => e.total);
      const missing = cuts.filter((cut) => !totals.includes(cut));
      expect([where, missing]).toEqual([where, []]);
      await c.end();
      clients.splice(clients.indexOf(c), 1);
    }

    await run([]);
    for (let k = 1; k < n; k++) await run([k]);
    // And one byte at a time: every position split at once.
    await run(Array.from({ length: n - 1 }, (_, i) => i + 1));
  }, 30_000);

  it('skips an overlong 20 KiB subnegotiation with one warning, none of its tail as data, and carries on after IAC SE; other clients unaffected', async () => {
    const { logs } = await boot();
    const a = await client();
    const idA = await a.welcome();
    const b = await client();
    await b.welcome();
    const where = `127.0.0.1:${a.socket.localPort}`;

    // Mid-subnegotiation, under the limit: the other client is served.
    a.write(bytes(IAC, SB, GMCP, 'x'.repeat(6000)));
    await records.waitForBytes(idA, 6003);
    await roundTrip(b, 'ping1');
    expect(logs.find('Subnegotiation')).toEqual([]);

    // Past the 8192-byte limit: warned once, and the 12,288-byte tail, lines
    // and an escaped 0xFF included, is skipped rather than taken as input.
    const inside = bytes(CR, LF, 'quit', CR, LF, IAC, IAC, SE);
    const tail = Buffer.concat([
      bytes('x'.repeat(4000)),
      inside,
      bytes('x'.repeat(20 * 1024 - 6000 - 4000 - inside.length)),
    ]);
    a.write(tail);
    await records.waitForBytes(idA, 3 + 20 * 1024);
    await logs.waitFor(/Subnegotiation of GMCP longer than 8192 bytes/, 'warn');
    await roundTrip(b, 'ping2');

    // Still skipping across writes: a line sent now is part of it too.
    a.write(bytes(CR, LF, 'more', CR, LF, IAC));
    await records.waitForBytes(idA, 3 + 20 * 1024 + 9);
    await roundTrip(b, 'ping3');
    expect(records.of(idA)).toEqual([]);

    // IAC SE (its IAC in the previous write) ends it: lines flow again.
    a.write(bytes(SE, 'after', CR, LF));
    await records.waitFor(idA, 'data', 'after');
    await a.expectLine('said:after');
    await roundTrip(b, 'ping4');

    // One report for the whole subnegotiation, at any log level.
    const reports = logs.find('Subnegotiation');
    expect(reports).toHaveLength(1);
    expect(reports[0].level).toBe('warn');
    expect(reports[0].context).toBe(where);
    // Nothing of the subnegotiation reached on_data, not even its lines.
    expect(records.of(idA)).toEqual([['data', 'after']]);
    expect(a.lines.slice(1)).toEqual(['said:after']);
    expect(logs.find(/./, 'error')).toEqual([]);
  });

  it('reads NAWS sizes with doubled 0xFF and bytes 10 and 13, firing on_resize once per change', async () => {
    const { logs } = await boot();
    const c = await client();
    const id = await c.welcome();
    const naws = (...payload: number[]) =>
      bytes(IAC, SB, NAWS, ...payload, IAC, SE);
    c.write(
      Buffer.concat([
        bytes(IAC, WILL, NAWS),
        // 0x0AFF x 0xFF0D
        naws(0x0a, IAC, IAC, IAC, IAC, 0x0d),
        naws(0x0a, IAC, IAC, IAC, IAC, 0x0d),
        // 0xFF0A x 0x0DFF
        naws(IAC, IAC, 0x0a, 0x0d, IAC, IAC),
        // Three bytes: ignored with a warning.
        naws(0, 80, 0),
        naws(0, 80, 0, 24),
        naws(0, 80, 0, 24),
      ]),
    );
    c.send('info');
    const info = parseInfo(await c.expectLine(/^info:/));
    expect(info.size).toEqual({ width: 80, height: 24 });
    expect(records.of(id)).toEqual([
      ['resize', { width: 2815, height: 65293 }],
      ['resize', { width: 65290, height: 3583 }],
      ['resize', { width: 80, height: 24 }],
      ['data', 'info'],
    ]);
    expect(logs.find('NAWS of 3 bytes', 'warn')).toHaveLength(1);
    // WILL NAWS answered the server's own DO: nothing more was sent.
    expect(c.commands).toEqual(OFFERS);
  });

  it('ignores GMCP with invalid JSON with a warning, delivers valid GMCP, and sends GMCP once agreed', async () => {
    const { logs } = await boot();
    const c = await client({ answer: 'agree', do: [GMCP] });
    const id = await c.welcome();
    await c.until(() => c.sent.includes('DO GMCP'), 'DO GMCP sent');
    const gmcp = (text: string) =>
      Buffer.concat([bytes(IAC, SB, GMCP), Buffer.from(text), bytes(IAC, SE)]);
    c.write(gmcp('Core.Hello {"client": bad json'));
    await logs.waitFor(/GMCP Core\.Hello with invalid JSON/, 'warn');
    expect(
      logs.find(/GMCP Core\.Hello with invalid JSON/, 'warn')[0].context,
    ).toBe(`127.0.0.1:${c.socket.localPort}`);
    c.write(gmcp('Char.Vitals {"hp":10,"name":"ÿ"}'));
    c.write(gmcp('Core.Ping'));
    await roundTrip(c, 'still here');
    c.send('gmcp');
    await c.expectLine('gmcp:true');

    expect(records.of(id)).toEqual([
      ['gmcp', { package: 'Char.Vitals', data: { hp: 10, name: 'ÿ' } }],
      ['gmcp', { package: 'Core.Ping', data: undefined }],
      ['data', 'still here'],
      ['data', 'gmcp'],
    ]);
    const payload = 'Room.Info {"name":"Hall","exits":["n","s"]}';
    expect(c.subnegotiations(GMCP).map((p) => p.toString())).toEqual([payload]);
    expect(
      c.received.includes(
        Buffer.concat([
          bytes(IAC, SB, 201),
          Buffer.from(payload),
          bytes(IAC, SE),
        ]),
      ),
    ).toBe(true);
    // The GMCP message came before the handler's reply line.
    const gmcpAt = c.items.findIndex(
      (i) => i.kind === 'sub' && i.option === GMCP,
    );
    const lineAt = c.items.findIndex(
      (i) => i.kind === 'data' && i.bytes.includes('gmcp:true'),
    );
    expect(gmcpAt).toBeGreaterThan(-1);
    expect(gmcpAt).toBeLessThan(lineAt);
  });

  it('survives seeded random bytes full of 0xFF while another client keeps being answered', async () => {
    const { port, logs } = await boot();
    const good = await client();
    await good.welcome();
    const random = prng(0x5eed);
    const fuzzIds: string[] = [];
    let fuzzer: TelnetClient | undefined;
    let id = '';
    let sent = 0;
    for (let round = 0; round < 50; round++) {
      if (fuzzer === undefined || fuzzer.ended || fuzzer.socket.destroyed) {
        fuzzer = await TelnetClient.connect(port);
        clients.push(fuzzer);
        id = await fuzzer.welcome();
        fuzzIds.push(id);
        sent = 0;
      }
      const stream = randomStream(random, 2048);
      // In a few writes, cut at random places.
      const cut1 = Math.floor(random() * stream.length);
      const cut2 = cut1 + Math.floor(random() * (stream.length - cut1));
      fuzzer.write(stream.subarray(0, cut1));
      fuzzer.write(stream.subarray(cut1, cut2));
      fuzzer.write(stream.subarray(cut2));
      sent += stream.length;
      const f = fuzzer;
      const target = sent;
      // Either the server has read it all, or the connection has ended.
      await Promise.race([
        records.waitForBytes(id, target),
        f
          .until(() => f.ended || f.socket.destroyed, 'never')
          .catch(() => {
            /* waitForBytes reports the timeout */
          }),
      ]);
      await roundTrip(good, `ping ${round}`);
    }
    // Whatever state the parser is in, x IAC SE brings it back to data.
    const last = fuzzer as TelnetClient;
    if (!last.ended && !last.socket.destroyed) {
      last.write(bytes('x', IAC, SE, CR, LF, 'resync', CR, LF));
      await records.waitFor(id, 'data', 'resync');
    }
    for (const f of clients.filter((c) => c !== good)) f.socket.end();
    for (const fid of fuzzIds) await records.waitFor(fid, 'disconnect');
    await roundTrip(good, 'still alive');
    expect(logs.find(/./, 'error')).toEqual([]);
    expect(logs.find(/./, 'fatal')).toEqual([]);
    // The streams reached the paths that turn input into events and warnings.
    const fuzzEvents = new Set(
      records.events.entries
        .filter((e) => fuzzIds.includes(e.id))
        .map((e) => e.event),
    );
    expect([...fuzzEvents].sort()).toEqual([
      'connect',
      'data',
      'disconnect',
      'gmcp',
      'resize',
      'terminal',
    ]);
    expect(
      logs.find('Malformed subnegotiation', 'warn').length,
    ).toBeGreaterThan(0);
  }, 20_000);

  describe('output limits', () => {
    const maxOutputBuffer = 256 * 1024;

    /** A telnet client with GMCP on that then stops reading. */
    async function stalledClient(): Promise<{
      c: TelnetClient;
      id: string;
      ctx: AnyConnectionContext;
    }> {
      const c = await client({ answer: 'agree', do: [GMCP] });
      const id = await c.welcome();
      await roundTrip(c, 'ready');
      c.socket.pause();
      const ctx = (booted as Booted).transport.connections.get(id);
      if (ctx === undefined) throw new Error(`No connection ${id}`);
      return { c, id, ctx };
    }

    /**
     * Calls `send` (32 KiB each), 8 per turn of the event loop, until the
     * connection is closed or its buffered output is far past the limit.
     * The loopback kernel buffers of a client that never reads take a few
     * MiB first; the cap turns a missing drop into a failure.
     */
    async function flood(
      ctx: AnyConnectionContext,
      send: (text: string) => void,
    ): Promise<number> {
      const text = 'x'.repeat(32 * 1024);
      let peak = 0;
      for (let i = 0; i < 1024 && ctx.isOpen; i++) {
        send(text);
        peak = Math.max(peak, ctx.socket.writableLength);
        if (peak > 4 * maxOutputBuffer) break;
        if (i % 8 === 7) await new Promise((r) => setImmediate(r));
      }
      return peak;
    }

    it('cuts a client off as a slow consumer when text output passes maxOutputBuffer', async () => {
      await boot({ maxOutputBuffer });
      const { id, ctx } = await stalledClient();
      const peak = await flood(ctx, (text) => ctx.sendString(text));
      await records.waitFor(id, 'disconnect', 'slow_consumer');
      expect(peak).toBeLessThanOrEqual(maxOutputBuffer + 64 * 1024);
    });

    it('cuts a client off as a slow consumer when GMCP output passes maxOutputBuffer', async () => {
      await boot({ maxOutputBuffer });
      const { id, ctx } = await stalledClient();
      const results: boolean[] = [];
      const peak = await flood(ctx, (text) =>
        results.push(ctx.sendGmcp('Comm.Channel.Text', { text })),
      );
      const limit = maxOutputBuffer + 64 * 1024;
      expect({
        open: ctx.isOpen,
        bufferedPastLimit: peak > limit ? peak : 0,
      }).toEqual({ open: false, bufferedPastLimit: 0 });
      await records.waitFor(id, 'disconnect', 'slow_consumer');
      // Every message sent while the connection was open was queued.
      expect(results.slice(0, -1).every(Boolean)).toBe(true);
    });

    it('sends a client that toggles DO/DONT MSSP and never reads one 8 KiB MSSP table and one 3-byte answer per request', async () => {
      // Before issue 14, each DO MSSP after a DONT MSSP got a fresh table:
      // 49 KiB of toggles made 16 MiB of output, until the client was cut
      // off as a slow consumer.
      await boot({
        maxOutputBuffer,
        telnet: {
          mssp: { name: 'Big', variables: { DESC: 'd'.repeat(8192) } },
        },
      });
      const c = await client();
      const id = await c.welcome();
      await roundTrip(c, 'ready');
      c.socket.pause();
      const ctx = (booted as Booted).transport.connections.get(id);
      if (ctx === undefined) throw new Error(`No connection ${id}`);
      const readBefore = ctx.socket.bytesRead;
      const writtenBefore = ctx.socket.bytesWritten;
      const toggles = Buffer.concat(
        Array.from({ length: 64 }, () => bytes(IAC, DO, MSSP, IAC, DONT, MSSP)),
      );
      for (let i = 0; i < 32; i++) c.write(toggles);
      await records.waitForBytes(id, readBefore + 32 * toggles.length);
      // The answers to the last bytes read leave at the end of that turn.
      await nextTurn();

      const read = ctx.socket.bytesRead - readBefore;
      const written = ctx.socket.bytesWritten - writtenBefore;
      // One table (NAME, PLAYERS, UPTIME, PORT, DESC), then the DONT
      // acknowledged and every later DO refused (WONT), the DONTs after
      // them unanswered: 2,048 WONT MSSP.
      expect(written).toBeGreaterThan(8192 + 2048 * 3);
      expect(written).toBeLessThan(8192 + 200 + 2048 * 3);
      expect(written).toBeLessThan(read / 2 + 8192 + 200);
      expect(ctx.isOpen).toBe(true);

      c.socket.resume();
      await roundTrip(c, 'after');
      expect(c.subnegotiations(MSSP)).toHaveLength(1);
      expect(c.commands.filter((d) => d === 'WONT MSSP')).toHaveLength(2048);
      expect(c.commands.filter((d) => d === 'WILL MSSP')).toHaveLength(1); // the offer
    }, 15_000);
  });

  describe('negotiation', () => {
    it('cycles TTYPE with an answering client into on_terminal with MTTS capabilities, without loops', async () => {
      await boot();
      const c = await client({
        answer: 'agree',
        will: [TTYPE, NAWS],
        do: [GMCP, TelnetOption.EOR, MSSP],
        ttype: ['MUDLET', 'XTERM-256COLOR', 'MTTS 141'],
        naws: { width: 120, height: 40 },
      });
      const id = await c.welcome();
      // The offers come first, before what on_connect wrote.
      expect(c.received.subarray(0, OFFER_BYTES.length)).toEqual(OFFER_BYTES);
      await records.waitFor(id, 'terminal');
      expect(records.of(id)).toEqual([
        ['resize', { width: 120, height: 40 }],
        [
          'terminal',
          {
            client: 'MUDLET',
            terminal: 'XTERM-256COLOR',
            mtts: 141,
            capabilities: caps('ansi', 'utf8', 'colors256', 'proxy'),
          },
        ],
      ]);
      c.send('enc');
      await c.expectLine('enc:utf8');
      c.send('info');
      const info = parseInfo(await c.expectLine(/^info:/));
      expect(info.terminal?.client).toBe('MUDLET');
      expect(info.size).toEqual({ width: 120, height: 40 });

      // Confirmations of options already on get no answer.
      c.negotiate(WILL, TTYPE);
      c.negotiate(WILL, NAWS);
      c.negotiate(DO, GMCP);
      c.negotiate(DO, MSSP);
      await roundTrip(c, 'ping');
      expect(
        c.commands.filter((d) => d !== TTYPE_SEND && !d.startsWith('SB MSSP')),
      ).toEqual(OFFERS);
      expect(c.commands.filter((d) => d === TTYPE_SEND)).toHaveLength(3);
      expect(c.commands.filter((d) => d.startsWith('SB MSSP'))).toHaveLength(1);
      expect(c.commands).toHaveLength(OFFERS.length + 4);
      expect(c.sent.slice(0, 6)).toEqual([
        'WILL TTYPE',
        'WILL NAWS',
        'DO GMCP',
        'DONT CHARSET',
        'DO EOR',
        'DO MSSP',
      ]);
      expect(
        records.events.count((r) => r.id === id && r.event === 'terminal'),
      ).toBe(1);
    });

    it('ends the TTYPE cycle on a repeated or a third plain answer', async () => {
      await boot();
      const repeat = await client({
        answer: 'agree',
        will: [TTYPE],
        ttype: ['TINTIN++'],
      });
      const endless = await client({
        answer: 'agree',
        will: [TTYPE],
        ttype: ['A', 'B', 'C', 'D', 'E', 'F'],
      });
      const repeatId = await repeat.welcome();
      const endlessId = await endless.welcome();
      await records.waitFor(repeatId, 'terminal');
      await records.waitFor(endlessId, 'terminal');
      await roundTrip(repeat, 'ping');
      await roundTrip(endless, 'ping');
      expect(records.of(repeatId)).toEqual([
        ['terminal', { client: 'TINTIN++', capabilities: caps() }],
        ['data', 'ping'],
      ]);
      expect(repeat.commands.filter((d) => d === TTYPE_SEND)).toHaveLength(2);
      expect(records.of(endlessId)).toEqual([
        ['terminal', { client: 'A', terminal: 'B', capabilities: caps() }],
        ['data', 'ping'],
      ]);
      expect(endless.commands.filter((d) => d === TTYPE_SEND)).toHaveLength(3);
    });

    it('accepts a refusing client without asking again: no TTYPE SEND, no GMCP, no loop', async () => {
      await boot();
      const c = await client({ answer: 'agree', will: [], do: [] });
      const id = await c.welcome();
      await c.until(() => c.sent.length === 6, 'six refusals');
      expect(c.sent).toEqual([
        'WONT TTYPE',
        'WONT NAWS',
        'DONT GMCP',
        'DONT CHARSET',
        'DONT EOR',
        'DONT MSSP',
      ]);
      // Refusing again what is off already gets no answer either.
      c.negotiate(WONT, TTYPE);
      c.negotiate(DONT, GMCP);
      c.negotiate(WONT, NAWS);
      c.send('gmcp');
      await c.expectLine('gmcp:false');
      c.send('info');
      const info = parseInfo(await c.expectLine(/^info:/));
      expect(info).toEqual({
        telnet: true,
        size: null,
        terminal: { capabilities: caps() },
      });
      await roundTrip(c, 'ping');
      expect(c.commands).toEqual(OFFERS);
      expect(c.sent).toHaveLength(9);
      expect(records.of(id)).toEqual([
        ['data', 'gmcp'],
        ['data', 'info'],
        ['data', 'ping'],
      ]);
    });

    it('serves a client that never answers: lines flow, nothing waits, it disconnects cleanly', async () => {
      await boot();
      const c = await client();
      const id = await c.welcome();
      await roundTrip(c, 'hello');
      c.send('gmcp');
      await c.expectLine('gmcp:false');
      c.send('enc');
      await c.expectLine('enc:utf8');
      c.send('info');
      const info = parseInfo(await c.expectLine(/^info:/));
      expect(info).toEqual({
        telnet: true,
        size: null,
        terminal: { capabilities: caps() },
      });
      await c.end();
      await records.waitFor(id, 'disconnect', 'client_closed');
      expect(records.of(id, true)).toEqual([
        ['connect', true],
        ['data', 'hello'],
        ['data', 'gmcp'],
        ['data', 'enc'],
        ['data', 'info'],
        ['disconnect', 'client_closed'],
      ]);
      expect(c.commands).toEqual(OFFERS);
    });
  });

  describe('negotiation floods (issue 14)', () => {
    /**
     * Sends `unit` repeated to about `size` bytes from a fresh client, and
     * checks that another client is answered meanwhile; `settled` says when
     * the server is done with it (disconnected it, or read it all).
     */
    async function flood(
      unit: Buffer,
      size: number,
      prefix: Buffer = Buffer.alloc(0),
    ) {
      const transport = (booted as Booted).transport;
      const good = await client();
      await good.welcome();
      const c = await client();
      const id = await c.welcome();
      const ctx = transport.connections.get(id);
      if (ctx === undefined) throw new Error(`No connection ${id}`);
      const count = Math.floor(size / unit.length);
      const payload = Buffer.concat([
        prefix,
        Buffer.concat(Array.from({ length: count }, () => unit)),
      ]);
      const readBefore = ctx.socket.bytesRead;
      c.write(payload);
      // Served while the flood is read, and after.
      await roundTrip(good, 'during');
      return {
        c,
        id,
        ctx,
        sent: payload.length,
        settled: async (how: 'flood' | 'read') => {
          if (how === 'flood') {
            await records.waitFor(id, 'disconnect', 'flood');
            await c.closed;
          } else {
            await records.waitForBytes(id, readBefore + payload.length);
          }
          await roundTrip(good, 'after');
        },
      };
    }

    it('disconnects a 3 MB IAC DO MSSP IAC DONT MSSP flood with flood, its output below twice its input, while another client is served', async () => {
      await boot({ inputRate: undefined });
      const { c, ctx, settled } = await flood(
        bytes(IAC, DO, MSSP, IAC, DONT, MSSP),
        3_000_000,
      );
      await settled('flood');
      expect(ctx.socket.bytesWritten).toBeLessThan(2 * ctx.socket.bytesRead);
      expect(c.received.length).toBeLessThan(2 * ctx.socket.bytesRead);
      // Warned, then cut off, like a line flood.
      expect(c.lines.slice(-2)).toEqual([
        EARWAX_DEFAULTS.messages.floodWarning,
        EARWAX_DEFAULTS.messages.flood,
      ]);
      expect(c.subnegotiations(MSSP)).toHaveLength(1);
    }, 15_000);

    it('disconnects a flood of repeated NAWS and unagreed GMCP subnegotiations with flood, its output below twice its input', async () => {
      const { logs } = await boot({ inputRate: undefined });
      // NAWS agreed, then the same size over and over (no on_resize after
      // the first), and GMCP the server never agreed to (each ignored).
      const { id, ctx, settled } = await flood(
        bytes(
          ...[IAC, SB, NAWS, 0, 80, 0, 24, IAC, SE],
          ...[IAC, SB, GMCP, 'Core.Ping', IAC, SE],
        ),
        3_000_000,
        bytes(IAC, WILL, NAWS),
      );
      await settled('flood');
      expect(ctx.socket.bytesWritten).toBeLessThan(2 * ctx.socket.bytesRead);
      expect(records.of(id)).toEqual([['resize', { width: 80, height: 24 }]]);
      await logs.waitFor('disconnecting (flood)', 'warn');
    }, 15_000);

    it('counts the bytes of subnegotiations against the byte rate: a flood of few, large ones ends in flood too', async () => {
      // Events to spare; bytes not: 2 MB of 8 KB subnegotiations is 250
      // events, but 30 times the byte burst.
      await boot({
        inputRate: {
          linesPerSecond: 100_000,
          lineBurst: 100_000,
          bytesPerSecond: 1000,
          byteBurst: 70_000,
          dropsBeforeDisconnect: 5,
        },
      });
      const { settled } = await flood(
        Buffer.concat([bytes(IAC, SB, GMCP), Buffer.alloc(8000, 0x78), bytes(IAC, SE)]), // prettier-ignore
        2_000_000,
      );
      await settled('flood');
    }, 15_000);

    it('with inputRate false, answers a DO/DONT MSSP flood with one table and at most one 3-byte answer per request, and keeps the connection', async () => {
      await boot({ inputRate: false });
      const { c, id, ctx, sent, settled } = await flood(
        bytes(IAC, DO, MSSP, IAC, DONT, MSSP),
        240_000,
      );
      await settled('read');
      expect(ctx.isOpen).toBe(true);
      expect(ctx.socket.bytesRead).toBeGreaterThanOrEqual(sent);
      await roundTrip(c, 'still here');
      expect(c.subnegotiations(MSSP)).toHaveLength(1);
      const requests = sent / 6;
      // The DONT after the agreed DO acknowledged, every later DO refused.
      expect(c.commands.filter((d) => d === 'WONT MSSP')).toHaveLength(
        requests,
      );
      expect(c.received.length).toBeLessThan(sent);
      expect(ctx.socket.bytesWritten).toBeLessThan(2 * ctx.socket.bytesRead);
      expect(records.of(id)).toEqual([['data', 'still here']]);
    }, 15_000);
  });

  describe('input before negotiation ends', () => {
    it('delivers a line sent before any answer, in order', async () => {
      await boot();
      const c = await client(
        {
          answer: 'agree',
          will: [TTYPE, NAWS],
          ttype: ['MUDLET', 'MTTS 9'],
          naws: { width: 100, height: 30 },
        },
        (early) => early.write(`hello${CRLF}`),
      );
      const id = await c.welcome();
      await records.waitFor(id, 'terminal');
      await roundTrip(c, 'world');
      const events = records.of(id, true);
      expect(events[0]).toEqual(['connect', true]);
      expect(events[1]).toEqual(['data', 'hello']);
      expect(events.filter(([e]) => e === 'data')).toEqual([
        ['data', 'hello'],
        ['data', 'world'],
      ]);
      expect(events.map(([e]) => e)).toEqual([
        'connect',
        'data',
        'resize',
        'terminal',
        'data',
      ]);
      expect(c.lines).toContain('said:hello');
    });

    it('delivers lines sent in the same write as the first answers, in order', async () => {
      await boot();
      const c = await client();
      await c.until(() => c.commands.length === OFFERS.length, 'the offers');
      c.write(
        bytes(
          ...['zero', CR, LF],
          ...[IAC, WILL, TTYPE, IAC, WILL, NAWS],
          ...['hel'],
          ...[IAC, SB, NAWS, 0, 100, 0, 50, IAC, SE],
          ...['lo', CR, LF],
          ...[IAC, DO, TelnetOption.EOR, IAC, DO, GMCP],
          ...['again', CR, LF],
        ),
      );
      const id = await c.welcome();
      await c.expectLine('said:again');
      expect(records.of(id)).toEqual([
        ['data', 'zero'],
        ['resize', { width: 100, height: 50 }],
        ['data', 'hello'],
        ['data', 'again'],
      ]);
      expect(c.lines.filter((l) => l.startsWith('said:'))).toEqual([
        'said:zero',
        'said:hello',
        'said:again',
      ]);
      // WILL TTYPE was answered with SEND, which this client leaves unanswered.
      expect(c.commands).toEqual([...OFFERS, TTYPE_SEND]);
    });
  });

  describe('0xFF in output', () => {
    it('doubles 0xFF on every send path; UTF-8 text needs no escaping', async () => {
      await boot();
      const a = await client();
      const b = await client();
      await a.welcome();
      await b.welcome();
      a.send('ff');
      await a.expectLine('ff-done');
      const { clean, raw } = ffOutput(false);
      expect(a.received.subarray(-raw.length)).toEqual(raw);
      expect(a.data.subarray(-clean.length)).toEqual(clean);
      // No stray telnet command came out of the data.
      expect(a.commands).toEqual(OFFERS);
      const broadcast = bytes(
        ...[IAC, IAC, 0x21, CR, LF],
        ...[IAC, IAC, 0x3f, CR, LF],
        ...[0xc3, 0xbf, 0x2b, CR, LF],
      );
      await b.until(
        () => b.received.subarray(-broadcast.length).equals(broadcast),
        'the three broadcast lines',
      );
      expect(b.data.subarray(-13)).toEqual(
        bytes(IAC, 0x21, CR, LF, IAC, 0x3f, CR, LF, 0xc3, 0xbf, 0x2b, CR, LF),
      );
      expect(b.commands).toEqual(OFFERS);
    });

    it('sends latin-1 ÿ as FF FF once the client accepts ISO-8859-1 through CHARSET', async () => {
      await boot();
      const c = await client({
        answer: 'agree',
        do: [TelnetOption.CHARSET],
        charset: 'ISO-8859-1',
        encoding: 'latin1',
        // MTTS says UTF-8 later: the CHARSET agreement wins.
        will: [TTYPE],
        ttype: ['MUDLET', 'XTERM', 'MTTS 141'],
      });
      const id = await c.welcome();
      const other = await client();
      await other.welcome();
      await records.waitFor(id, 'terminal');
      await c.until(
        () => c.subnegotiations(TelnetOption.CHARSET).length === 1,
        'the CHARSET request',
      );
      expect(c.subnegotiations(TelnetOption.CHARSET)[0]).toEqual(
        bytes(TelnetSubCode.REQUEST, ';UTF-8;ISO-8859-1'),
      );
      c.send('enc');
      await c.expectLine('enc:latin1');
      // Input: ÿ as one doubled 0xFF, decoded as latin-1.
      c.write(bytes('say ', IAC, IAC, CR, LF));
      await c.expectLine('said:say ÿ');
      expect(c.received.includes(bytes('said:say ', IAC, IAC, CR, LF))).toBe(
        true,
      );
      c.send('ff');
      await c.expectLine('ff-done');
      const { clean, raw } = ffOutput(true);
      expect(c.received.subarray(-raw.length)).toEqual(raw);
      expect(c.data.subarray(-clean.length)).toEqual(clean);
      // A UTF-8 client gets the same text broadcast in UTF-8.
      const utf8Line = bytes(0xc3, 0xbf, 0x2b, CR, LF);
      await other.until(
        () => other.received.subarray(-utf8Line.length).equals(utf8Line),
        'the broadcast in UTF-8',
      );
    });

    it("sends ÿ as FF FF with the transport's encoding: 'latin1'", async () => {
      await boot({ encoding: 'latin1' });
      const c = await client({ encoding: 'latin1' });
      await c.welcome();
      c.send('enc');
      await c.expectLine('enc:latin1');
      c.send('ff');
      await c.expectLine('ff-done');
      const { clean, raw } = ffOutput(true);
      expect(c.received.subarray(-raw.length)).toEqual(raw);
      expect(c.data.subarray(-clean.length)).toEqual(clean);
      expect(c.commands).toEqual(OFFERS);
    });
  });

  describe('echo and prompts', () => {
    it('hides input with WILL ECHO and shows it again with WONT ECHO, answering confirmations with nothing', async () => {
      await boot();
      const c = await client({ answer: 'agree', do: [ECHO] });
      await c.welcome();
      const echoes = () => c.commands.filter((d) => d.endsWith(' ECHO'));

      c.send('pw');
      await c.expectLine('echo:true');
      expect(echoes()).toEqual(['WILL ECHO']);
      const willAt = c.items.findIndex(
        (i) => i.kind === 'negotiation' && i.verb === WILL && i.option === ECHO,
      );
      const lineAt = c.items.findIndex(
        (i) => i.kind === 'data' && i.bytes.includes('echo:true'),
      );
      expect(willAt).toBeLessThan(lineAt);
      // The client's DO ECHO is answered with nothing.
      await roundTrip(c, 'ping');
      expect(c.sent.filter((s) => s.endsWith(' ECHO'))).toEqual(['DO ECHO']);
      expect(echoes()).toEqual(['WILL ECHO']);

      c.send('pw');
      await c.expectLine('echo:false');
      c.send('pwok');
      await c.until(
        () => c.lines.filter((l) => l === 'echo:true').length === 2,
        'the second echo:true',
      );
      // The client's DONT ECHO is answered with nothing.
      await roundTrip(c, 'ping2');
      expect(echoes()).toEqual(['WILL ECHO', 'WONT ECHO']);
      expect(c.sent.filter((s) => s.endsWith(' ECHO'))).toEqual([
        'DO ECHO',
        'DONT ECHO',
      ]);
    });

    it("refuses a client's own DO ECHO until the game hides input with ctx.echo(false), and again after ctx.echo(true)", async () => {
      await boot();
      const c = await client();
      await c.welcome();
      const echoes = () => c.commands.filter((d) => d.endsWith(' ECHO'));

      // Unsolicited: the server does not echo, so it will not say it does.
      c.negotiate(DO, ECHO);
      await roundTrip(c, 'ping');
      expect(echoes()).toEqual(['WONT ECHO']);

      // The game asks: WILL ECHO, which the client's DO then only answers.
      c.send('pw');
      await c.expectLine('echo:true');
      expect(echoes()).toEqual(['WONT ECHO', 'WILL ECHO']);
      c.negotiate(DO, ECHO);
      await roundTrip(c, 'ping2');
      expect(echoes()).toEqual(['WONT ECHO', 'WILL ECHO']);

      // Shown again: WONT ECHO; a new DO ECHO from the client is refused.
      c.send('pwok');
      await c.until(
        () => c.lines.filter((l) => l === 'echo:true').length === 2,
        'the second echo:true',
      );
      c.negotiate(DONT, ECHO);
      c.negotiate(DO, ECHO);
      await roundTrip(c, 'ping3');
      expect(echoes()).toEqual([
        'WONT ECHO',
        'WILL ECHO',
        'WONT ECHO',
        'WONT ECHO',
      ]);
    });

    it('ends a prompt with IAC EOR after DO EOR, IAC GA without, and nothing once SGA is agreed', async () => {
      await boot();
      const withEor = await client({
        answer: 'agree',
        do: [TelnetOption.EOR],
      });
      const without = await client({ answer: 'agree', do: [] });
      const sga = await client({ answer: 'agree', do: [SGA] });
      for (const c of [withEor, without, sga]) await c.welcome();
      await roundTrip(withEor, 'ready');
      await roundTrip(without, 'ready');

      withEor.send('prompt');
      await withEor.until(
        () => withEor.received.subarray(-4).equals(bytes('> ', IAC, EOR)),
        '> IAC EOR',
      );
      expect(withEor.items.slice(-2).map((i) => i.kind)).toEqual([
        'data',
        'command',
      ]);

      without.send('prompt');
      await without.until(
        () => without.received.subarray(-4).equals(bytes('> ', IAC, GA)),
        '> IAC GA',
      );

      sga.negotiate(DO, SGA);
      await sga.until(() => sga.commands.includes('WILL SGA'), 'WILL SGA');
      sga.send('prompt');
      sga.send('after');
      await sga.expectLine('> said:after');
      expect(sga.data.includes('> said:after\r\n')).toBe(true);
      expect(sga.items.filter((i) => i.kind === 'command')).toEqual([]);
    });
  });

  it('answers DO MSSP with NAME, live PLAYERS, UPTIME and the configured variables', async () => {
    const before = Math.floor(Date.now() / 1000);
    const { port } = await boot({
      telnet: {
        mssp: {
          name: 'Test MUD',
          variables: {
            CODEBASE: 'nestjs-earwax',
            LANGUAGE: ['English', 'French'],
          },
        },
      },
    });
    const others = [await client(), await client()];
    const otherIds = [];
    for (const o of others) otherIds.push(await o.welcome());
    const asker = await client({ answer: 'agree', do: [MSSP] });
    await asker.welcome();
    await asker.until(() => asker.subnegotiations(MSSP).length === 1, 'MSSP');
    const after = Math.floor(Date.now() / 1000);
    const mssp = parseMssp(asker.subnegotiations(MSSP)[0]);
    expect(Object.keys(mssp)).toEqual([
      'NAME',
      'PLAYERS',
      'UPTIME',
      'PORT',
      'CODEBASE',
      'LANGUAGE',
    ]);
    expect(mssp.NAME).toEqual(['Test MUD']);
    // Where to connect: this (plain, telnet) listener's port; no TLS one.
    expect(mssp.PORT).toEqual([String(port)]);
    expect(mssp.SSL).toBeUndefined();
    expect(mssp.PLAYERS).toEqual(['3']);
    expect(mssp.CODEBASE).toEqual(['nestjs-earwax']);
    expect(mssp.LANGUAGE).toEqual(['English', 'French']);
    expect(mssp.UPTIME).toHaveLength(1);
    const uptime = Number(mssp.UPTIME[0]);
    expect(uptime).toBeGreaterThanOrEqual(before);
    expect(uptime).toBeLessThanOrEqual(after);

    for (const o of others) await o.end();
    for (const oid of otherIds) await records.waitFor(oid, 'disconnect');
    const late = await client({ answer: 'agree', do: [MSSP] });
    await late.welcome();
    await late.until(() => late.subnegotiations(MSSP).length === 1, 'MSSP');
    const again = parseMssp(late.subnegotiations(MSSP)[0]);
    expect(again.PLAYERS).toEqual(['2']);
    expect(again.UPTIME).toEqual(mssp.UPTIME);
  });

  it('treats 0xFF as plain data when telnet mode is off (the default)', async () => {
    const { port } = await boot({ telnet: undefined, encoding: 'latin1' });
    const c = await LineClient.connect(port);
    clients.push(c);
    const id = (await c.line(0)).slice('welcome '.length);
    // IAC WILL TTYPE, IAC IAC: all data here.
    c.write(bytes('a', IAC, WILL, TTYPE, IAC, IAC, 'b', CR, LF));
    await records.waitFor(id, 'data');
    expect(records.of(id)).toEqual([['data', 'a\xff\xfb\x18\xff\xffb']]);
    c.write(bytes('ff', CR, LF));
    await c.expectLine('ff-done');
    // Nothing negotiated; 0xFF sent as it is, never doubled.
    expect(c.received.subarray(0, 8).toString('latin1')).toBe('welcome ');
    const tail = bytes(
      ...[IAC, CR, LF],
      ...[0x61, IAC, 0x62, CR, LF],
      ...[IAC, CR, LF],
      ...[IAC, CR, LF],
      ...[IAC, CR, LF],
      ...[IAC, 0x21, CR, LF],
      ...[IAC, 0x3f, CR, LF],
      ...[IAC, 0x2b, CR, LF],
      ...[0x7e, IAC, CR, LF],
      ...['ff-done', CR, LF],
    );
    expect(c.received.subarray(-tail.length)).toEqual(tail);
  });
});
