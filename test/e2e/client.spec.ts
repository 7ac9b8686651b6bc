import 'reflect-metadata';
import { afterEach, describe, expect, it } from '@jest/globals';
import { Controller, Inject, Injectable, Module } from '@nestjs/common';
import { ClientsModule, Ctx, Payload } from '@nestjs/microservices';
import { Test, type TestingModule } from '@nestjs/testing';
import { once } from 'node:events';
import { createServer, type Server, type Socket } from 'node:net';
import {
  firstValueFrom,
  lastValueFrom,
  take,
  tap,
  toArray,
  type Observable,
} from 'rxjs';
import {
  ConnectionContext,
  EarwaxEvent,
  type EarwaxTransportOptions,
} from '../../lib/index.js';
import {
  EarwaxClient,
  type EarwaxClientOptions,
} from '../../lib/client/index.js';
import { TelnetCommand, TelnetOption } from '../../lib/telnet/index.js';
import { bootEarwax, type Booted } from '../support/boot.js';
import { pendingWait } from '../support/pending-waits.js';
import { Waiters } from '../support/waiters.js';

const GREETING = 'Welcome to the test game!';
const { IAC, WILL, WONT, DO, DONT, GA } = TelnetCommand;
const { ECHO, NAWS, GMCP } = TelnetOption;

/**
 * Greets, then: `burst <n>` sends `line 1` .. `line <n>`, `quit` says
 * goodbye and disconnects, `partial` sends `no end` without a terminator and
 * disconnects; anything else is echoed as `echo: <line>`.
 */
@Controller()
class EchoController {
  @EarwaxEvent('on_connect')
  connected(@Ctx() ctx: ConnectionContext) {
    ctx.sendString(GREETING);
  }

  @EarwaxEvent('on_data')
  data(@Payload() line: string, @Ctx() ctx: ConnectionContext) {
    if (line.startsWith('burst ')) {
      const count = Number(line.slice(6));
      for (let i = 1; i <= count; i++) ctx.sendString(`line ${i}`);
    } else if (line === 'quit') {
      ctx.sendString('Goodbye.');
      ctx.disconnect();
    } else if (line === 'partial') {
      ctx.sendRaw('no end');
      ctx.disconnect();
    } else {
      ctx.sendString(`echo: ${line}`);
    }
  }
}

/**
 * Collects `count` values of `source` (fewer if it completes first, as
 * `lines$` does when the connection closes).
 */
function collect<T>(source: Observable<T>, count: number) {
  const seen: T[] = [];
  return pendingWait(
    firstValueFrom(
      source.pipe(
        take(count),
        tap((value) => seen.push(value)),
        toArray(),
      ),
    ),
    () => `${count} values; seen: ${JSON.stringify(seen)}`,
  );
}

/** A plain TCP server holding the one connection it accepts, recording bytes. */
class RawServer {
  received = Buffer.alloc(0);
  socket: Socket | undefined;
  private readonly waits = new Waiters(
    () => `received: ${JSON.stringify([...this.received])}`,
  );

  private constructor(readonly server: Server) {
    server.on('connection', (socket) => {
      this.socket = socket;
      socket.on('error', () => undefined);
      socket.on('data', (chunk: Buffer) => {
        this.received = Buffer.concat([this.received, chunk]);
        this.waits.wake();
      });
      this.waits.wake();
    });
  }

  static async start(host = '127.0.0.1'): Promise<RawServer> {
    const server = createServer();
    server.listen(0, host);
    await once(server, 'listening');
    return new RawServer(server);
  }

  get port(): number {
    return (this.server.address() as { port: number }).port;
  }

  async connection(): Promise<Socket> {
    await this.waits.until(() => !!this.socket, 'a connection');
    return this.socket as Socket;
  }

  async bytes(count: number): Promise<Buffer> {
    await this.waits.until(
      () => this.received.length >= count,
      `${count} bytes`,
    );
    return this.received;
  }

  async stop(): Promise<void> {
    this.socket?.destroy();
    await new Promise((resolve) => this.server.close(resolve));
  }
}

describe('EarwaxClient', () => {
  let booted: Booted | undefined;
  const cleanups: Array<() => unknown> = [];

  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
    await booted?.app.close();
    booted = undefined;
  });

  async function boot(options: EarwaxTransportOptions = {}) {
    booted = await bootEarwax(
      { controllers: [EchoController] },
      { encoding: 'utf8', ...options },
    );
    return booted.port;
  }

  function client(options: EarwaxClientOptions): EarwaxClient {
    const created = new EarwaxClient(options);
    cleanups.push(() => created.close());
    return created;
  }

  it('connects and receives the greeting', async () => {
    const port = await boot();
    const game = client({ port });
    expect(game.isConnected).toBe(false);
    await game.connect();
    expect(game.isConnected).toBe(true);
    await expect(game.expectLine(/Welcome/)).resolves.toBe(GREETING);
    // connect() is idempotent: the same connection, no second greeting.
    const socket = game.unwrap();
    await game.connect();
    expect(game.unwrap()).toBe(socket);
    game.sendLine('ping');
    await expect(game.expectLine(/^echo:/)).resolves.toBe('echo: ping');
    await expect(game.expectLine(/Welcome/, 200)).rejects.toThrow(
      /expected a line matching \/Welcome\/, but no line came within 200 ms/,
    );
  });

  it('sends lines and expects their echo, keeping lines it skipped', async () => {
    const port = await boot();
    const game = client({ port });
    await game.connect();
    game.sendLine('one');
    game.sendLine('two');
    // Out of order: 'two' first, then 'one' (kept) and the greeting (kept).
    await expect(game.expectLine('echo: two')).resolves.toBe('echo: two');
    await expect(game.expectLine('echo: one')).resolves.toBe('echo: one');
    await expect(game.expectLine(GREETING)).resolves.toBe(GREETING);
    // Each line is returned once.
    await expect(game.expectLine('echo: one', 200)).rejects.toThrow(
      /no line came within 200 ms; no unconsumed line was received/,
    );
  });

  it('emits every line on lines$, in order', async () => {
    const port = await boot();
    const game = client({ port });
    await game.connect();
    await game.expectLine(GREETING);
    const lines = collect(game.lines$, 30);
    const second = collect(game.lines$, 30);
    game.sendLine('burst 30');
    const expected = Array.from({ length: 30 }, (_, i) => `line ${i + 1}`);
    expect(await lines).toEqual(expected);
    expect(await second).toEqual(expected);
  });

  it('completes lines$ and fails waiting expectLine calls when the server disconnects', async () => {
    const port = await boot();
    const game = client({ port });
    await game.connect();
    await game.expectLine(GREETING);
    const all = lastValueFrom(game.lines$.pipe(toArray()));
    const waiting = game.expectLine('never', 3000);
    game.sendLine('quit');
    await expect(waiting).rejects.toThrow(
      /expected a line matching "never", but the connection closed; unconsumed lines received so far: \["Goodbye\."\]/,
    );
    await expect(all).resolves.toEqual(['Goodbye.']);
    expect(game.isConnected).toBe(false);
    expect(() => game.sendLine('hello')).toThrow(/not connected/);
    // The kept line is still there after the close.
    await expect(game.expectLine('Goodbye.')).resolves.toBe('Goodbye.');
  });

  it('emits the unterminated rest of the last line when the connection closes', async () => {
    const port = await boot();
    const game = client({ port });
    await game.connect();
    await game.expectLine(GREETING);
    const all = lastValueFrom(game.lines$.pipe(toArray()));
    game.sendLine('partial');
    await expect(all).resolves.toEqual(['no end']);
  });

  it('close() ends the connection, completes lines$ and allows connecting again', async () => {
    const port = await boot();
    const game = client({ port });
    const statuses: string[] = [];
    const subscription = game.status.subscribe((s) => statuses.push(s));
    cleanups.push(() => subscription.unsubscribe());
    await game.connect();
    await game.expectLine(GREETING);
    const all = lastValueFrom(game.lines$.pipe(toArray()));
    await game.close();
    await expect(all).resolves.toEqual([]);
    expect(game.isConnected).toBe(false);
    expect(statuses).toEqual(['connected', 'disconnected']);
    await game.close(); // a second close is a no-op
    await game.connect();
    await expect(game.expectLine(GREETING)).resolves.toBe(GREETING);
    expect(statuses).toEqual(['connected', 'disconnected', 'connected']);
  });

  it('close() while connecting abandons the connection and rejects connect()', async () => {
    const port = await boot();
    const game = client({ port });
    const connecting = game.connect();
    expect(game.connect()).toBe(connecting);
    await game.close();
    await expect(connecting).rejects.toThrow(
      `EarwaxClient: the connection to 127.0.0.1:${port} was closed before it was established`,
    );
    expect(game.isConnected).toBe(false);
    await game.connect();
    await expect(game.expectLine(GREETING)).resolves.toBe(GREETING);
  });

  it('gets clean lines from a telnet server, without IAC bytes', async () => {
    const port = await boot({ telnet: true });
    const game = client({ port, telnet: true });
    const seen: string[] = [];
    const subscription = game.lines$.subscribe((line) => seen.push(line));
    cleanups.push(() => subscription.unsubscribe());
    await game.connect();
    await expect(game.expectLine(/Welcome/)).resolves.toBe(GREETING);
    game.sendLine('hello');
    await expect(game.expectLine(/^echo:/)).resolves.toBe('echo: hello');
    expect(seen).toEqual([GREETING, 'echo: hello']);
    expect(seen.join('')).not.toMatch(/[\u00ff\ufffd]/);
  });

  it('without telnet mode, shows the telnet bytes as they arrive (the control case)', async () => {
    const port = await boot({ telnet: true });
    const game = client({ port, encoding: 'latin1' });
    await game.connect();
    const greeting = await game.expectLine(/Welcome/);
    expect(greeting).toContain(GREETING);
    expect(greeting).toContain('\u00ff'); // the server's offers: IAC DO ...
  });

  it('refuses every telnet option and doubles 0xFF on send', async () => {
    const raw = await RawServer.start();
    cleanups.push(() => raw.stop());
    const game = client({ port: raw.port, telnet: true, encoding: 'latin1' });
    await game.connect();
    const socket = await raw.connection();
    socket.write(
      Buffer.from([
        ...[IAC, WILL, ECHO, IAC, DO, NAWS, IAC, WONT, GMCP, IAC, GA],
        ...Buffer.from('a'),
        ...[IAC, IAC],
        ...Buffer.from('b\r\n'),
      ]),
    );
    await expect(game.expectLine(/^a/)).resolves.toBe('a\u00ffb');
    game.sendLine('x\u00ff');
    const refusals = [IAC, DONT, ECHO, IAC, WONT, NAWS];
    const line = [...Buffer.from('x'), IAC, IAC, 0x0d, 0x0a];
    const received = await raw.bytes(refusals.length + line.length);
    expect([...received]).toEqual([...refusals, ...line]);
  });

  it('sends a line with emit() (dispatchEvent), ignoring the pattern', async () => {
    const port = await boot();
    const game = client({ port });
    // emit() connects by itself.
    // It emits dispatchEvent's result (undefined), as Nest's clients do.
    await expect(
      lastValueFrom(game.emit('ignored', 'a line').pipe(toArray())),
    ).resolves.toEqual([undefined]);
    await expect(game.expectLine(/^echo:/)).resolves.toBe('echo: a line');
    await lastValueFrom(game.emit('ignored', ['first', 'second']), {
      defaultValue: undefined,
    });
    await expect(game.expectLine('echo: first')).resolves.toBe('echo: first');
    await expect(game.expectLine('echo: second')).resolves.toBe('echo: second');
    await expect(
      lastValueFrom(game.emit('ignored', { not: 'text' })),
    ).rejects.toThrow(/a string or an array of strings/);
  });

  it('send() sends the line, emits nothing and completes', async () => {
    const port = await boot();
    const game = client({ port });
    await expect(
      lastValueFrom(game.send('ignored', 'look').pipe(toArray())),
    ).resolves.toEqual([]);
    await expect(game.expectLine(/^echo:/)).resolves.toBe('echo: look');
    await expect(lastValueFrom(game.send('ignored', 42))).rejects.toThrow(
      /a string or an array of strings/,
    );
  });

  it('works as a customClass in ClientsModule.register, closed on shutdown', async () => {
    const port = await boot();

    @Injectable()
    class Bot {
      constructor(@Inject('GAME') readonly client: EarwaxClient) {}
    }
    @Module({
      imports: [
        ClientsModule.register([
          { name: 'GAME', customClass: EarwaxClient, options: { port } },
        ]),
      ],
      providers: [Bot],
    })
    class BotModule {}

    const moduleRef: TestingModule = await Test.createTestingModule({
      imports: [BotModule],
    }).compile();
    let closed = false;
    cleanups.push(() => (closed ? undefined : moduleRef.close()));
    const game = moduleRef.get(Bot).client;
    expect(game).toBeInstanceOf(EarwaxClient);
    await game.connect();
    await expect(game.expectLine(/Welcome/)).resolves.toBe(GREETING);
    game.sendLine('from nest');
    await expect(game.expectLine(/^echo:/)).resolves.toBe('echo: from nest');
    const all = lastValueFrom(game.lines$.pipe(toArray()));
    await moduleRef.close();
    closed = true;
    await expect(all).resolves.toEqual([]);
    expect(game.isConnected).toBe(false);
  });

  it('rejects with a clear error when the connection is refused', async () => {
    // A listener on 127.0.0.2 holds the port, so the kernel never picks it
    // as our own ephemeral port (no self-connect), while nothing listens on
    // 127.0.0.1 at that port.
    const holder = await RawServer.start('127.0.0.2');
    cleanups.push(() => holder.stop());
    const game = client({ port: holder.port, host: '127.0.0.1' });
    const error = await game.connect().then(
      () => undefined,
      (err: NodeJS.ErrnoException) => err,
    );
    expect(error?.message).toMatch(
      new RegExp(
        `^EarwaxClient: could not connect to 127\\.0\\.0\\.1:${holder.port}: .*ECONNREFUSED`,
      ),
    );
    expect(error?.code).toBe('ECONNREFUSED');
    expect(game.isConnected).toBe(false);
    expect(() => game.unwrap()).toThrow(/call the "connect" method first/);
    expect(() => game.sendLine('x')).toThrow(/not connected/);
  });

  it('rejects after connectTimeout when the connection does not complete', async () => {
    // A plain TCP server never answers the TLS handshake.
    const raw = await RawServer.start();
    cleanups.push(() => raw.stop());
    const game = client({ port: raw.port, tls: true, connectTimeout: 300 });
    await expect(game.connect()).rejects.toThrow(
      `EarwaxClient: connecting to 127.0.0.1:${raw.port} timed out after 300 ms`,
    );
    expect(game.isConnected).toBe(false);
  });

  it('expectLine times out listing the lines received so far', async () => {
    const port = await boot();
    const game = client({ port });
    await game.connect();
    const burst = collect(game.lines$, 2);
    game.sendLine('burst 2');
    await burst;
    await game.expectLine('echo: nothing', 300).then(
      () => {
        throw new Error('expectLine resolved');
      },
      (err: Error) =>
        expect(err.message).toBe(
          `EarwaxClient: expected a line matching "echo: nothing", but no line came within 300 ms; unconsumed lines received so far: ${JSON.stringify([GREETING, 'line 1', 'line 2'])}`,
        ),
    );
  });

  it('validates its options', () => {
    expect(() => new EarwaxClient({ port: 0 })).toThrow(/options\.port/);
    expect(
      () => new EarwaxClient(undefined as unknown as EarwaxClientOptions),
    ).toThrow(/options\.port/);
    expect(() => new EarwaxClient({ port: 1, maxLineLength: 0 })).toThrow(
      /maxLineLength/,
    );
  });
});
