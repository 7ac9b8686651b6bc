import 'reflect-metadata';
import { afterEach, describe, expect, it } from '@jest/globals';
import { Controller, Inject, Injectable } from '@nestjs/common';
import { Ctx, Payload } from '@nestjs/microservices';
import { connect, type Socket } from 'node:net';
import {
  ConnectionContext,
  ConnectionGuard,
  EarwaxEvent,
  EarwaxModule,
  type EarwaxOptionsFactory,
  type EarwaxTransportOptions,
} from '../../lib/index.js';
import { bootEarwax, type Booted } from '../support/boot.js';
import { Gate } from '../support/gate.js';
import { Journal } from '../support/journal.js';
import { LineClient } from '../support/line-client.js';

const JOURNAL = 'JOURNAL';

@Controller()
class EdgeController {
  constructor(
    @Inject(JOURNAL) private readonly journal: Journal,
    private readonly gate: Gate,
  ) {}

  @EarwaxEvent('on_connect')
  connected(@Ctx() ctx: ConnectionContext) {
    this.journal.record('connect');
    ctx.sendString('hi');
  }

  @EarwaxEvent('on_data')
  data(@Payload() data: string, @Ctx() ctx: ConnectionContext) {
    this.journal.record(`data:${data}`);
    if (data === 'kick') ctx.disconnect();
  }

  @EarwaxEvent('on_disconnect')
  async disconnected(@Payload() reason: string) {
    this.journal.record(`disconnect:${reason}`);
    if (reason === 'server_shutdown') await this.gate.open;
  }

  @EarwaxEvent('on_block')
  blocked() {
    this.journal.record('block');
  }
}

/** Decides only when the test says so. */
@Injectable()
class SlowGuard extends ConnectionGuard {
  static decide: (allowed: boolean) => void = () => undefined;
  static readonly asked = new Journal();
  override canConnect(): Promise<boolean> {
    SlowGuard.asked.record('asked');
    return new Promise((resolve) => (SlowGuard.decide = resolve));
  }
}

describe('edge cases', () => {
  let booted: Booted | undefined;
  let journal: Journal;
  afterEach(async () => {
    booted?.app.get(Gate).release();
    await booted?.app.close();
    booted = undefined;
  });

  async function boot(
    options: EarwaxTransportOptions = {},
    imports: unknown[] = [],
  ) {
    journal = new Journal();
    booted = await bootEarwax(
      {
        imports: [EarwaxModule.forRoot(), ...(imports as never[])],
        controllers: [EdgeController],
        providers: [{ provide: JOURNAL, useValue: journal }, Gate],
      },
      options,
    );
    return booted;
  }

  it('decodes raw chunks with a streaming decoder, so a split character survives', async () => {
    const b = await boot({ framing: 'raw', encoding: 'utf8' });
    const registry = b.transport.connections;
    const client = await LineClient.connect(b.port);
    await journal.waitForEntry('connect');
    const [ctx] = registry;
    const arrived = new Journal<number>();
    ctx.socket.on('data', (chunk: Buffer) => arrived.record(chunk.length));
    client.write(Buffer.from([0x63, 0xc3]));
    await arrived.waitFor((es) => es.length === 1);
    client.write(Buffer.from([0xa9]));
    await journal.waitFor(
      (es) => es.filter((e) => e.startsWith('data:')).length === 2,
    );
    expect(journal.entries.filter((e) => e.startsWith('data:'))).toEqual([
      'data:c',
      'data:é',
    ]);
    await client.end();
  });

  it('destroys a kicked client that never closes its side once the linger time is up', async () => {
    const b = await boot({ encoding: 'utf8', lingerTimeout: 50 });
    const serverSide = new Promise<Socket>((resolve) =>
      b.transport.on('connection', (socket) => resolve(socket)),
    );
    // allowHalfOpen: the client reads the server's FIN but never sends its own.
    const client = connect({
      port: b.port,
      host: '127.0.0.1',
      allowHalfOpen: true,
    });
    client.on('error', () => undefined);
    client.resume();
    const ended = new Promise<void>((resolve) => client.once('end', resolve));
    const socket = await serverSide;
    const serverClosed = new Promise<void>((resolve) =>
      socket.once('close', () => resolve()),
    );
    client.write('kick\r\n');
    await ended;
    // Only the linger timer can close the server's socket now.
    await serverClosed;
    await journal.waitForEntry('disconnect:kicked');
    expect(journal.count((e) => e.startsWith('disconnect:'))).toBe(1);
    client.destroy();
  });

  it('resolves close() at the deadline when an on_disconnect handler never finishes', async () => {
    const b = await boot({ encoding: 'utf8', closeTimeout: 100 });
    const client = await LineClient.connect(b.port);
    await journal.waitForEntry('connect');
    await b.app.close();
    booted = undefined;
    await client.closed;
    expect(journal.entries).toEqual(['connect', 'disconnect:server_shutdown']);
    expect(b.logs.find('Still busy at shutdown deadline', 'warn')).toHaveLength(
      1,
    );
    b.app.get(Gate).release();
  });

  it('keeps on_connect and on_disconnect paired when a client resets while the guard decides', async () => {
    const b = await boot({}, [EarwaxModule.forRoot({ guard: SlowGuard })]);
    const before = SlowGuard.asked.entries.length;
    const client = await LineClient.connect(b.port);
    await SlowGuard.asked.waitFor((es) => es.length > before);
    await client.reset();
    // The socket is paused while the guard decides; whether the reset is
    // seen before or after admission, connects and disconnects must pair.
    SlowGuard.decide(true);
    const second = await LineClient.connect(b.port);
    await SlowGuard.asked.waitFor((es) => es.length > before + 1);
    SlowGuard.decide(true);
    expect(await second.line(0)).toBe('hi');
    await second.end();
    await journal.waitFor(
      (es) => es.filter((e) => e.startsWith('disconnect:')).length >= 1,
    );
    expect(journal.entries.filter((e) => e === 'block')).toEqual([]);
    // Every admitted connection got exactly one disconnect.
    expect(journal.count((e) => e === 'connect')).toBe(
      journal.count((e) => e.startsWith('disconnect:')),
    );
  });

  it('builds transport defaults with forRootAsync({ useClass })', async () => {
    @Injectable()
    class LimitsFactory implements EarwaxOptionsFactory {
      createEarwaxOptions() {
        return {
          maxLineLength: 4,
          messages: { lineTooLong: 'short lines only' },
        };
      }
    }
    journal = new Journal();
    booted = await bootEarwax(
      {
        imports: [EarwaxModule.forRootAsync({ useClass: LimitsFactory })],
        controllers: [EdgeController],
        providers: [{ provide: JOURNAL, useValue: journal }, Gate],
      },
      { encoding: 'utf8' },
    );
    const client = await LineClient.connect(booted.port);
    client.send('toolong');
    await client.closed;
    expect(client.lines).toEqual(['hi', 'short lines only']);
    expect(() => EarwaxModule.forRootAsync({})).toThrow(
      /useFactory, useClass, useExisting or adapter/,
    );
  });
});
