import 'reflect-metadata';
import { afterEach, describe, expect, it } from '@jest/globals';
import { Controller, Inject } from '@nestjs/common';
import { Ctx, Payload } from '@nestjs/microservices';
import {
  ConnectionContext,
  ConnectionRegistry,
  EarwaxEvent,
  EarwaxModule,
  type EarwaxTransportOptions,
} from '../../lib/index.js';
import { bootEarwax, type Booted } from '../support/boot.js';
import { Journal } from '../support/journal.js';
import { LineClient } from '../support/line-client.js';

const JOURNAL = 'JOURNAL';

/** Records every payload: strings as `s:<text>`, buffers as `b:<hex>`. */
@Controller()
class RecordController {
  constructor(@Inject(JOURNAL) private readonly journal: Journal) {}

  @EarwaxEvent('on_data')
  data(@Payload() data: Buffer | string, @Ctx() ctx: ConnectionContext) {
    this.journal.record(
      typeof data === 'string' ? `s:${data}` : `b:${data.toString('hex')}`,
    );
    if (data.toString() === 'ping') ctx.sendString('pong');
  }

  @EarwaxEvent('on_disconnect')
  disconnected(@Payload() reason: string) {
    this.journal.record(`disconnect:${reason}`);
  }
}

describe('input framing', () => {
  const running: Booted[] = [];
  let journal: Journal;
  afterEach(async () => {
    await Promise.all(running.splice(0).map((b) => b.app.close()));
  });

  async function boot(options: EarwaxTransportOptions = {}) {
    journal = new Journal();
    const booted = await bootEarwax(
      {
        imports: [EarwaxModule.forRoot()],
        controllers: [RecordController],
        providers: [{ provide: JOURNAL, useValue: journal }],
      },
      options,
    );
    running.push(booted);
    return booted;
  }

  /** Connects, and counts the chunks the server's socket receives. */
  async function connect(b: Booted) {
    const client = await LineClient.connect(b.port);
    const registry = b.app.get(ConnectionRegistry);
    const arrivals = new Journal<number>();
    await arrivals.waitFor(
      () => registry.size === 1,
      'the connection to be admitted',
    );
    const [ctx] = registry;
    ctx.socket.on('data', (chunk: Buffer) => arrivals.record(chunk.length));
    /** Writes one piece and waits until the server has read all of it. */
    const deliver = async (piece: string | Buffer) => {
      const bytes = Buffer.from(piece);
      const target = arrivals.entries.reduce((a, b) => a + b, 0) + bytes.length;
      client.write(bytes);
      await arrivals.waitFor(
        (sizes) => sizes.reduce((a, b) => a + b, 0) >= target,
        `${target} bytes at the server`,
      );
    };
    return { client, deliver, arrivals };
  }

  it('delivers the same lines for a stream split at every byte position', async () => {
    const b = await boot({ encoding: 'utf8' });
    const { client, deliver } = await connect(b);
    const stream = 'ab\r\ncd\ne\rf\r\n';
    const expected = ['s:ab', 's:cd', 's:e', 's:f'];
    for (let i = 1; i < stream.length; i++) {
      const before = journal.entries.length;
      await deliver(stream.slice(0, i));
      await deliver(stream.slice(i));
      await journal.waitFor(
        (es) => es.length >= before + 4,
        `4 lines for split ${i}`,
      );
      expect(journal.entries.slice(before)).toEqual(expected);
    }
    // Nothing left over: the next line is framed on its own.
    client.send('ping');
    expect(await client.line(0)).toBe('pong');
    await client.end();
  });

  it('gives Buffers by default and strings decoded whole when a character is split', async () => {
    const b = await boot();
    const { client, deliver } = await connect(b);
    await deliver('caf\xc3'.replace('\xc3', ''));
    await deliver(Buffer.from([0xc3]));
    await deliver(Buffer.from([0xa9, 0x0a]));
    await journal.waitForEntry(`b:${Buffer.from('café').toString('hex')}`);
    await client.end();

    const utf8 = await boot({ encoding: 'utf8' });
    const second = await connect(utf8);
    await second.deliver(Buffer.from([0x63, 0x61, 0x66, 0xc3]));
    await second.deliver(Buffer.from([0xa9, 0x0d, 0x0a]));
    await journal.waitForEntry('s:café');
    await second.client.end();
  });

  it('gives raw chunks exactly as received in raw mode', async () => {
    const b = await boot({ framing: 'raw' });
    const { client, deliver } = await connect(b);
    await deliver('no\nframing\r');
    await deliver('here');
    await journal.waitFor((es) => es.length === 2, 'two chunks');
    expect(journal.entries).toEqual([
      `b:${Buffer.from('no\nframing\r').toString('hex')}`,
      `b:${Buffer.from('here').toString('hex')}`,
    ]);
    await client.end();
  });

  it('delivers an unterminated last line on a clean close, before on_disconnect', async () => {
    const b = await boot({ encoding: 'utf8' });
    const { client, deliver } = await connect(b);
    await deliver('one\ntail');
    await client.end();
    await journal.waitForEntry('disconnect:client_closed');
    expect(journal.entries).toEqual([
      's:one',
      's:tail',
      'disconnect:client_closed',
    ]);
  });

  it('drops the unterminated last line on reset, or when told to', async () => {
    const b = await boot({ encoding: 'utf8' });
    const first = await connect(b);
    await first.deliver('one\ntail');
    await first.client.reset();
    await journal.waitForEntry('disconnect:reset');
    expect(journal.entries).toEqual(['s:one', 'disconnect:reset']);

    const quiet = await boot({
      encoding: 'utf8',
      deliverPartialLineOnEnd: false,
    });
    const second = await connect(quiet);
    await second.deliver('one\ntail');
    await second.client.end();
    await journal.waitForEntry('disconnect:client_closed');
    expect(journal.entries).toEqual(['s:one', 'disconnect:client_closed']);
  });

  it('tells and disconnects a client whose line is too long, whatever its size', async () => {
    const b = await boot({ encoding: 'utf8', maxLineLength: 16 });
    const { client } = await connect(b);
    client.write('x'.repeat(17));
    await client.closed;
    expect(client.lines).toEqual(['Line too long (at most 16 bytes).']);
    await journal.waitForEntry('disconnect:line_too_long');
    expect(journal.entries).toEqual(['disconnect:line_too_long']);
    expect(b.logs.find('Line longer than 16 bytes', 'warn')).toHaveLength(1);

    // The default limit (64 KiB) bounds a 1 MiB line with no terminator.
    const big = await boot();
    const bigClient = await LineClient.connect(big.port);
    bigClient.write(Buffer.alloc(1024 * 1024, 0x61));
    await bigClient.closed;
    expect(bigClient.lines).toEqual(['Line too long (at most 65536 bytes).']);
  });

  it("discards an over-long line and keeps reading under the 'discard' policy", async () => {
    const b = await boot({
      encoding: 'utf8',
      maxLineLength: 8,
      overlongLinePolicy: 'discard',
      messages: { lineTooLong: 'Too long.' },
    });
    const { client } = await connect(b);
    client.write(`${'y'.repeat(20)}\r\nping\r\n`);
    await client.waitForLines(2);
    expect(client.lines).toEqual(['Too long.', 'pong']);
    expect(journal.entries).toEqual(['s:ping']);
    await client.end();
  });
});
