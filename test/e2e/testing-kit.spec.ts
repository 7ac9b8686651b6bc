import 'reflect-metadata';
import { afterEach, describe, expect, it } from '@jest/globals';
import { Controller, Inject, Injectable, Module } from '@nestjs/common';
import { Ctx, Payload } from '@nestjs/microservices';
import { Test } from '@nestjs/testing';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  ConnectionContext,
  ConnectionRegistry,
  type DisconnectReason,
  EarwaxEvent,
  EarwaxModule,
  EarwaxTransport,
  EventNameError,
  type GmcpMessage,
  type TerminalInfo,
  type WindowSize,
} from '../../lib/index.js';
import { TelnetOption } from '../../lib/telnet/index.js';
import {
  EarwaxExpectationError,
  EarwaxTestClient,
  EarwaxTesting,
  type EarwaxTestServer,
} from '../../lib/testing/index.js';
import { Journal } from '../support/journal.js';
import { eventually } from '../support/redis-eventually.js';

const JOURNAL = 'JOURNAL';

/** The greeting, a provider so a test can override it. */
@Injectable()
class Greeting {
  text(ctx: ConnectionContext): string {
    return `Welcome, ${ctx.hostname}.`;
  }
}

/**
 * A tiny game: greets, answers a few commands, and writes what it saw to
 * the journal.
 */
@Controller()
class GameController {
  constructor(
    private readonly greeting: Greeting,
    @Inject(JOURNAL) private readonly journal: Journal,
  ) {}

  @EarwaxEvent('on_connect')
  hello(@Ctx() ctx: ConnectionContext): void {
    ctx.sendString(this.greeting.text(ctx));
  }

  @EarwaxEvent('on_data')
  command(
    @Payload() line: string,
    @Ctx() ctx: ConnectionContext,
  ): string | string[] | undefined {
    const space = line.indexOf(' ');
    const verb = space === -1 ? line : line.slice(0, space);
    const arg = space === -1 ? '' : line.slice(space + 1);
    switch (verb) {
      case 'look':
        return 'A dark room.';
      case 'count':
        return Array.from({ length: Number(arg) }, (_, i) => `line ${i + 1}`);
      case 'echo':
        return arg;
      case 'long':
        return 'x'.repeat(Number(arg));
      case 'prompt':
        ctx.sendPrompt(arg || '> ');
        return undefined;
      case 'gmcp':
        ctx.sendGmcp('Room.Info', { name: 'Hall', exits: ['n'] });
        return 'sent';
      case 'encoding':
        return `encoding ${ctx.encoding}`;
      case 'quit':
        ctx.sendString('Goodbye.');
        ctx.disconnect('quit');
        return undefined;
      default:
        return `unknown: ${line}`;
    }
  }

  @EarwaxEvent('on_disconnect')
  gone(@Payload() reason: DisconnectReason, @Ctx() ctx: ConnectionContext) {
    this.journal.record(`disconnect ${ctx.hostname} ${reason}`);
  }

  @EarwaxEvent('on_resize')
  resized(@Payload() size: WindowSize): void {
    this.journal.record(`resize ${size.width}x${size.height}`);
  }

  @EarwaxEvent('on_terminal')
  terminal(@Payload() info: TerminalInfo): void {
    this.journal.record(`terminal ${info.client} ${info.terminal}`);
  }

  @EarwaxEvent('on_gmcp')
  gmcp(@Payload() message: GmcpMessage): void {
    this.journal.record(
      `gmcp ${message.package} ${JSON.stringify(message.data)}`,
    );
  }
}

@Module({
  imports: [EarwaxModule.forRoot()],
  controllers: [GameController],
  providers: [Greeting, { provide: JOURNAL, useFactory: () => new Journal() }],
})
class GameModule {}

/** The TCP sockets and servers this process holds (`TCPSocketWrap`, ...). */
function tcpHandles(): string[] {
  return process
    .getActiveResourcesInfo()
    .filter((kind) => kind.startsWith('TCP'));
}

/**
 * Resolves once this process holds no TCP socket or server. A closed handle
 * leaves the list only when libuv has released it, a moment after its
 * `close` event, and nothing signals that: so this checks every 10 ms. No
 * time limit of its own: Jest's timeout of the test bounds it, and names it
 * with the handles still open (see test/support/pending-waits.ts).
 */
async function noTcpHandles(): Promise<void> {
  await eventually(
    async () => tcpHandles(),
    (open) => open.length === 0,
    'no TCP handle to be left',
    10,
  );
}

/** Catches a rejection, so a test can read its message. */
async function failureOf(promise: Promise<unknown>): Promise<Error> {
  try {
    await promise;
  } catch (err) {
    return err as Error;
  }
  throw new Error('expected the promise to reject, but it resolved');
}

describe('EarwaxTesting.createServer', () => {
  let server: EarwaxTestServer | undefined;
  afterEach(async () => {
    await server?.close();
    server = undefined;
  });

  it('boots a module class on 127.0.0.1 and a free port, with its app, transport, registry and logs', async () => {
    server = await EarwaxTesting.createServer(GameModule, {
      transport: { encoding: 'utf8' },
    });
    expect(server.address.address).toBe('127.0.0.1');
    expect(server.host).toBe('127.0.0.1');
    expect(server.port).toBeGreaterThan(0);
    expect(server.transport).toBeInstanceOf(EarwaxTransport);
    expect(server.transport.address()?.port).toBe(server.port);
    expect(server.registry).toBe(server.app.get(ConnectionRegistry));
    const entry = await server.logs.waitFor(
      `Listening on 127.0.0.1:${server.port}`,
      { level: 'log' },
    );
    expect(entry.context).toBe('EarwaxTransport');

    const player = await server.connect();
    expect(await player.readLine()).toBe('Welcome, 127.0.0.1.');
    // The registry holds a connection before its on_connect runs.
    expect(server.registry.size).toBe(1);
    expect(server.clients).toEqual([player]);
  });

  it('boots a TestingModule, so a test can override a provider', async () => {
    const moduleRef = await Test.createTestingModule({ imports: [GameModule] })
      .overrideProvider(Greeting)
      .useValue({ text: () => 'Hello from the test double.' })
      .compile();
    server = await EarwaxTesting.createServer(moduleRef, {
      transport: { encoding: 'utf8' },
    });
    const player = await server.connect();
    expect(await player.readLine()).toBe('Hello from the test double.');
    player.send('look');
    expect(await player.readLine()).toBe('A dark room.');
  });

  it('boots plain module metadata with transport options, after running configure', async () => {
    const journal = new Journal();
    const configured: string[] = [];
    server = await EarwaxTesting.createServer(
      {
        imports: [EarwaxModule.forRoot()],
        controllers: [GameController],
        providers: [Greeting, { provide: JOURNAL, useValue: journal }],
      },
      {
        transport: {
          encoding: 'utf8',
          maxConnectionsPerIp: 1,
          messages: { tooManyConnections: 'One at a time, please.' },
        },
        configure: (app, transport) => {
          expect(app.get(ConnectionRegistry)).toBe(transport.connections);
          configured.push(
            transport.address() === null ? 'not listening' : 'listening',
          );
        },
      },
    );
    expect(configured).toEqual(['not listening']);
    const first = await server.connect();
    await first.expectLine('Welcome, 127.0.0.1.');
    // The transport options apply: a second connection from the same
    // address is refused, one from another address is not.
    const second = await server.connect();
    await second.expectClose();
    expect(second.lines).toEqual(['One at a time, please.']);
    expect(second.state).toBe('server-closed');
    const other = await server.connect({ from: '127.0.0.2' });
    await other.expectLine('Welcome, 127.0.0.2.');
  });

  it('rejects with the original error, closing what it created, when the app cannot listen', async () => {
    @Controller()
    class UnknownEventController {
      @EarwaxEvent('on_nothing')
      nothing(): void {}
    }
    await noTcpHandles();
    await expect(
      EarwaxTesting.createServer({ controllers: [UnknownEventController] }),
    ).rejects.toThrow(EventNameError);

    // A port that is taken: listen() fails with EADDRINUSE.
    server = await EarwaxTesting.createServer(GameModule);
    const taken = EarwaxTesting.createServer(GameModule, {
      transport: { port: server.port },
    });
    await expect(taken).rejects.toMatchObject({ code: 'EADDRINUSE' });
    await server.close();
    server = undefined;
    await noTcpHandles();
  });

  it('connects to a listener by name on a transport with several listeners', async () => {
    server = await EarwaxTesting.createServer(GameModule, {
      transport: {
        encoding: 'utf8',
        listeners: [
          { name: 'players', port: 0, telnet: true },
          { name: 'bots', port: 0 },
        ],
      },
    });
    expect(server.port).toBe(server.addressOf('players').port);
    expect(server.addressOf('bots').port).not.toBe(server.port);
    const bot = await server.connect({ listener: 'bots' });
    expect(await bot.readLine()).toBe('Welcome, 127.0.0.1.');
    // The bots' port is raw: no telnet negotiation came with the greeting.
    expect(bot.received.includes(0xff)).toBe(false);
    const player = await server.connect({ listener: 'players', telnet: true });
    await player.expectLine('Welcome, 127.0.0.1.');
    expect(player.telnet.negotiations).toContain('DO TTYPE');
    expect(() => server?.addressOf('admin')).toThrow(
      'the transport has no listening listener named "admin"',
    );
  });
});

describe('EarwaxTestClient', () => {
  let server: EarwaxTestServer | undefined;
  afterEach(async () => {
    await server?.close();
    server = undefined;
  });

  async function boot(): Promise<{
    server: EarwaxTestServer;
    journal: Journal;
  }> {
    server = await EarwaxTesting.createServer(GameModule, {
      transport: { encoding: 'utf8' },
    });
    return { server, journal: server.app.get<Journal>(JOURNAL) };
  }

  it('reads lines through a cursor: readLine, readLines, expectLine, readUntil', async () => {
    const { server } = await boot();
    const player = await server.connect();
    expect(await player.readLine()).toBe('Welcome, 127.0.0.1.');
    player.send('count 3');
    expect(await player.readLines(3)).toEqual(['line 1', 'line 2', 'line 3']);

    player.send('count 4');
    // expectLine skips (and reads) the lines before its match...
    expect(await player.expectLine(/^line [23]$/)).toBe('line 2');
    // ...so the next read starts after it.
    expect(await player.readLine()).toBe('line 3');
    await player.waitFor(() => player.lines.length === 8, 'line 4');
    expect(player.unread).toEqual(['line 4']);
    player.send('look');
    expect(await player.readUntil('A dark room.')).toEqual([
      'line 4',
      'A dark room.',
    ]);
    // A function is a pattern too.
    player.send('echo needle');
    expect(await player.expectLine((line) => line.includes('need'))).toBe(
      'needle',
    );
    expect(player.lines).toEqual([
      'Welcome, 127.0.0.1.',
      'line 1',
      'line 2',
      'line 3',
      'line 1',
      'line 2',
      'line 3',
      'line 4',
      'A dark room.',
      'needle',
    ]);
  });

  it('sends raw bytes as they are, and keeps every byte received and the unterminated line', async () => {
    const { server } = await boot();
    const player = await server.connect();
    await player.readLine();
    // Two lines in one write, split mid-line by a second write.
    player.sendRaw('echo one\necho t');
    player.sendRaw(Buffer.from('wo\r\n'));
    expect(await player.readLines(2)).toEqual(['one', 'two']);
    player.send('prompt Name: ');
    await player.waitFor(() => player.partial === 'Name: ', 'the name prompt');
    expect(player.unread).toEqual([]);
    expect(player.received.toString()).toBe(
      'Welcome, 127.0.0.1.\r\none\r\ntwo\r\nName: ',
    );
  });

  it('expectClose resolves when the server closes; reads and sends after it say so', async () => {
    const { server, journal } = await boot();
    const player = await server.connect();
    await player.readLine();
    player.send('quit');
    await player.expectClose();
    expect(player.state).toBe('server-closed');
    expect(player.isOpen).toBe(false);
    await journal.waitForEntry('disconnect 127.0.0.1 quit');
    // What came before the close can still be read...
    expect(await player.readLine()).toBe('Goodbye.');
    // ...and past it, a read fails at once, naming who closed.
    const error = await failureOf(player.readLine({ timeout: 8000 }));
    expect(error).toBeInstanceOf(EarwaxExpectationError);
    expect(error.message).toContain(
      'expected a line within 8000 ms, but the server closed the connection first.',
    );
    expect(() => player.send('look')).toThrow(
      `${player.label}: cannot send the line "look": the server closed the connection`,
    );
  });

  it('closes and resets from the client side: the server sees client_closed and reset', async () => {
    const { server, journal } = await boot();
    const leaving = await server.connect({ from: '127.0.0.2' });
    const cut = await server.connect({ from: '127.0.0.3' });
    await leaving.readLine();
    await cut.readLine();
    await leaving.close();
    await cut.reset();
    await journal.waitForEntry('disconnect 127.0.0.2 client_closed');
    await journal.waitForEntry('disconnect 127.0.0.3 reset');
    expect(leaving.state).toBe('client-closed');
    const error = await failureOf(cut.expectClose({ timeout: 8000 }));
    expect(error.message).toContain(
      'expected the server to close the connection within 8000 ms, but this client closed it itself first.',
    );
    expect(error.message).toContain(
      'Connection: this client reset the connection (reset()).',
    );
  });

  it('fails a wait that times out with the client, the expectation, every line and the unterminated rest', async () => {
    const { server } = await boot();
    const player = await server.connect({ from: '127.0.0.2' });
    player.send('count 2');
    await player.readUntil('line 1');
    player.send('prompt Name: ');
    await player.waitFor(() => player.partial === 'Name: ', 'the prompt');

    const error = await failureOf(
      player.expectLine(/^Password/, { timeout: 150 }),
    );
    expect(error).toBeInstanceOf(EarwaxExpectationError);
    const port = player.socket.localPort;
    expect(error.message).toBe(
      [
        `client 127.0.0.2:${port} → 127.0.0.1:${server.port}: expected a line matching /^Password/ within 150 ms, but none came.`,
        'Connection: the connection is still open.',
        'Lines received: 3 (the first 2 read; read ones marked "·"; most recent last):',
        '  · 1: "Welcome, 127.0.0.2."',
        '  · 2: "line 1"',
        '    3: "line 2"',
        'Unterminated line (no line end yet): "Name: "',
      ].join('\n'),
    );
    // The stack points at the test that waited, not at a timer.
    expect(error.stack).toContain('testing-kit.spec.ts');
    // Nothing was read by the failed wait.
    expect(player.unread).toEqual(['line 2']);
  });

  it('lists the most recent lines only, each cut short, in a failure message', async () => {
    const { server } = await boot();
    const player = await server.connect();
    player.send('count 40');
    player.send('long 500');
    await player.expectLine(/^x+$/);
    const error = await failureOf(player.expectLine('never', { timeout: 50 }));
    const message = error.message;
    expect(message).toContain(
      'Lines received: 42 (all read; read ones marked "·"; most recent last):',
    );
    expect(message).toContain('  … 12 earlier lines not shown');
    expect(message).not.toContain('"line 11"');
    expect(message).toContain('  · 13: "line 12"');
    expect(message).toContain(
      `  · 42: "${'x'.repeat(200)}" … (300 more characters)`,
    );
    expect(message).toContain('Unterminated line: none.');
  });

  it('fails expectClose on an open connection, saying it is still open', async () => {
    const { server } = await boot();
    const player = await server.connect();
    await player.readLine();
    const error = await failureOf(player.expectClose({ timeout: 100 }));
    expect(error.message).toContain(
      'expected the server to close the connection within 100 ms, but it is still open.',
    );
    expect(error.message).toContain('  · 1: "Welcome, 127.0.0.1."');
    expect(player.isOpen).toBe(true);
  });

  it('fails a wait as soon as the server closes the connection', async () => {
    const { server } = await boot();
    const player = await server.connect();
    await player.readLine();
    const waiting = failureOf(player.expectLine('never', { timeout: 8000 }));
    player.send('quit');
    const error = await waiting;
    expect(error.message).toContain(
      'expected the line "never" within 8000 ms, but the server closed the connection first.',
    );
    expect(error.message).toContain(
      'Connection: the server closed the connection.',
    );
    expect(error.message).toContain('    2: "Goodbye."');
  });

  it('opens clients from distinct loopback addresses, one by one or many at once', async () => {
    const { server } = await boot();
    const alice = await server.connect({ from: '127.0.0.2' });
    expect(alice.localAddress).toBe('127.0.0.2');
    expect(alice.label).toMatch(/^client 127\.0\.0\.2:\d+ → 127\.0\.0\.1:\d+$/);
    expect(await alice.readLine()).toBe('Welcome, 127.0.0.2.');

    const crowd = await server.connectMany(3, (i) => ({
      from: `127.0.0.${i + 10}`,
    }));
    expect(await Promise.all(crowd.map((c) => c.readLine()))).toEqual([
      'Welcome, 127.0.0.10.',
      'Welcome, 127.0.0.11.',
      'Welcome, 127.0.0.12.',
    ]);
    const same = await server.connectMany(2);
    expect(await Promise.all(same.map((c) => c.readLine()))).toEqual([
      'Welcome, 127.0.0.1.',
      'Welcome, 127.0.0.1.',
    ]);
    expect(server.clients).toHaveLength(6);
    expect(server.registry.size).toBe(6);
  });

  it('connectMany closes the clients it opened when one cannot connect', async () => {
    const { server, journal } = await boot();
    // 192.0.2.1 (TEST-NET-1) is not an address of this machine.
    const error = await failureOf(
      server.connectMany(3, (i) => ({
        from: i === 1 ? '192.0.2.1' : '127.0.0.1',
      })),
    );
    expect(error.message).toMatch(
      /^EarwaxTestClient: could not connect to 127\.0\.0\.1:\d+ from 192\.0\.2\.1: /,
    );
    expect((error as NodeJS.ErrnoException).code).toBe('EADDRNOTAVAIL');
    expect(server.clients).toHaveLength(2);
    expect(server.clients.map((c) => c.state)).toEqual([
      'client-closed',
      'client-closed',
    ]);
    await journal.waitFor(
      (entries) => entries.length === 2,
      'both admitted clients to leave',
    );
  });

  it('close() closes every client and the app, leaving no socket or server open', async () => {
    await noTcpHandles();
    const { server: booted, journal } = await boot();
    const clients = await booted.connectMany(3, (i) => ({
      from: `127.0.0.${i + 2}`,
    }));
    await Promise.all(clients.map((c) => c.readLine()));
    expect(tcpHandles()).toContain('TCPServerWrap');
    expect(tcpHandles()).toContain('TCPSocketWrap');
    await booted.close();
    server = undefined;
    expect(clients.map((c) => c.state)).toEqual([
      'client-closed',
      'client-closed',
      'client-closed',
    ]);
    // Each as a player leaving, before the app shut down.
    expect([...journal.entries].sort()).toEqual([
      'disconnect 127.0.0.2 client_closed',
      'disconnect 127.0.0.3 client_closed',
      'disconnect 127.0.0.4 client_closed',
    ]);
    await noTcpHandles();
    // Safe to call again; connecting afterwards is an error.
    await booted.close();
    await expect(booted.connect()).rejects.toThrow('connect() after close()');
  });

  it('refuses bad input with a clear error', async () => {
    const { server } = await boot();
    const player = await server.connect();
    expect(() => player.send(42 as unknown as string)).toThrow(
      'send() takes a string, got number; use sendRaw() for bytes',
    );
    await expect(player.readLines(-1)).rejects.toThrow(
      'readLines() needs a whole number of lines, got -1',
    );
    await expect(player.readLine({ timeout: -5 })).rejects.toThrow(
      'a timeout is a number of milliseconds (0 or more), got -5',
    );
    await expect(player.expectLine(42 as unknown as string)).rejects.toThrow(
      'A line pattern is a string, a RegExp or a function',
    );
    expect(() => player.telnet).toThrow(
      'is not telnet-aware: connect with { telnet: true }',
    );
    await expect(EarwaxTestClient.connect({ port: 0 })).rejects.toThrow(
      'port must be a whole number from 1 to 65535, got 0',
    );
    await expect(
      server.connect({ telnet: { accept: [TelnetOption.MCCP2] } }),
    ).rejects.toThrow('MCCP2 cannot be accepted');
    await expect(
      server.connect({ telnet: { charset: 'EBCDIC' } }),
    ).rejects.toThrow(
      'telnet.charset "EBCDIC" is not one the test client can read',
    );
    await expect(server.connectMany(-1)).rejects.toThrow(
      'connectMany() needs a whole number of clients, got -1',
    );
    // Nothing was lost: the client still works.
    player.send('look');
    expect(await player.expectLine('A dark room.')).toBe('A dark room.');
  });

  it('waits on the logs, failing with the latest entries', async () => {
    const { server } = await boot();
    const player = await server.connect({ from: '127.0.0.5' });
    await player.readLine();
    await player.close();
    const entry = await server.logs.waitFor(/Disconnected \(client_closed\)/);
    expect(entry).toMatchObject({ level: 'log' });
    expect(entry.context).toContain('127.0.0.5');
    expect(server.logs.find('Connection established.', 'log')).toHaveLength(1);
    const error = await failureOf(
      server.logs.waitFor('no such entry', { level: 'warn', timeout: 50 }),
    );
    expect(error.message).toContain(
      'EarwaxTestLogger: expected a log entry containing "no such entry" at level warn within 50 ms, but none was logged.',
    );
    expect(error.message).toMatch(
      /\[log\] .*127\.0\.0\.5.*: Connection established\./,
    );
  });
});

describe('EarwaxTestClient with telnet', () => {
  let server: EarwaxTestServer | undefined;
  afterEach(async () => {
    await server?.close();
    server = undefined;
  });

  async function boot() {
    server = await EarwaxTesting.createServer(GameModule, {
      transport: {
        encoding: 'utf8',
        telnet: { mssp: { name: 'Kit Test MUD' } },
      },
    });
    return { server, journal: server.app.get<Journal>(JOURNAL) };
  }

  it('refuses every option by default and reads clean lines and prompts', async () => {
    const { server } = await boot();
    const player = await server.connect({ telnet: true });
    expect(await player.readLine()).toBe('Welcome, 127.0.0.1.');
    expect(player.received.includes(0xff)).toBe(true);
    player.send('prompt > ');
    // The prompt has no line end: IAC GA (EOR was refused) makes it a line.
    expect(await player.telnet.readPrompt()).toEqual(['> ']);
    expect(player.telnet.prompts).toEqual([
      { index: 1, text: '> ', mark: 'GA' },
    ]);
    const negotiations = player.telnet.negotiations;
    for (const offer of ['DO TTYPE', 'DO NAWS', 'WILL GMCP', 'WILL EOR']) {
      expect(negotiations).toContain(offer);
    }
    for (const option of [TelnetOption.EOR, TelnetOption.GMCP]) {
      expect(player.telnet.serverPerforms(option)).toBe(false);
    }
    expect(player.telnet.clientPerforms(TelnetOption.NAWS)).toBe(false);
    player.send('gmcp');
    await player.expectLine('sent');
    expect(player.telnet.gmcp).toEqual([]);
    expect(player.lines.every((line) => !line.includes('\xff'))).toBe(true);
  });

  it('agrees to what it is told: EOR prompts, TTYPE, NAWS, GMCP, MSSP and a charset', async () => {
    const { server, journal } = await boot();
    const player = await server.connect({
      telnet: {
        accept: [TelnetOption.EOR, TelnetOption.MSSP],
        ttype: ['KITCLIENT', 'XTERM'],
        naws: { width: 100, height: 40 },
        gmcp: [
          { package: 'Core.Hello', data: { client: 'Kit', version: '1' } },
        ],
        charset: 'ISO-8859-1',
      },
    });
    await player.readLine();
    await journal.waitForEntry('resize 100x40');
    await journal.waitForEntry(
      'gmcp Core.Hello {"client":"Kit","version":"1"}',
    );
    await journal.waitForEntry('terminal KITCLIENT XTERM');
    await player.waitFor(
      () => player.telnet.mssp !== undefined,
      'an MSSP report',
    );
    expect(player.telnet.mssp).toMatchObject({
      NAME: ['Kit Test MUD'],
      PLAYERS: ['1'],
    });
    expect(player.telnet.serverPerforms(TelnetOption.EOR)).toBe(true);
    expect(player.telnet.clientPerforms(TelnetOption.NAWS)).toBe(true);

    player.send('prompt > ');
    expect(await player.telnet.readPrompt()).toEqual(['> ']);
    expect(player.telnet.prompts.at(-1)?.mark).toBe('EOR');
    player.send('gmcp');
    await player.expectLine('sent');
    expect(player.telnet.gmcp).toEqual([
      { package: 'Room.Info', data: { name: 'Hall', exits: ['n'] } },
    ]);

    // ISO-8859-1 both ways: ÿ is 0xFF, doubled on the wire.
    const [ctx] = server.registry;
    await player.waitFor(
      () => ctx.encoding === 'latin1',
      'the server to switch to ISO-8859-1',
    );
    player.send('echo crème ÿ');
    expect(await player.expectLine(/^crème/)).toBe('crème ÿ');
    expect(player.received.includes(Buffer.from([0xff, 0xff]))).toBe(true);
    player.telnet.sendNaws(120, 50);
    await journal.waitForEntry('resize 120x50');
    player.telnet.sendGmcp('Char.Login', { name: 'kit' });
    await journal.waitForEntry('gmcp Char.Login {"name":"kit"}');
  });

  it('records what the server sent besides text, in order, against the lines', async () => {
    const { server } = await boot();
    const player = await server.connect({
      telnet: { accept: [TelnetOption.EOR] },
    });
    await player.readLine();
    player.send('prompt Name: ');
    await player.telnet.readPrompt();
    const eor = player.telnet.events.find(
      (event) => event.type === 'command' && event.name === 'EOR',
    );
    // The mark came after the prompt line, which is lines[afterLines - 1].
    expect(eor?.afterLines).toBe(2);
    expect(player.lines[1]).toBe('Name: ');
    const willEor = player.telnet.events.find(
      (event) =>
        event.type === 'negotiation' &&
        event.verb === 'WILL' &&
        event.option === TelnetOption.EOR,
    );
    expect(willEor).toBeDefined();
    const error = await failureOf(player.expectLine('never', { timeout: 50 }));
    expect(error.message).toContain(' (telnet): expected the line "never"');
    expect(error.message).toMatch(
      /Telnet: the server performs EOR; this client performs none; \d+ telnet events received\./,
    );
  });
});

describe('EarwaxTestClient with TLS', () => {
  let server: EarwaxTestServer | undefined;
  let dir: string | undefined;
  afterEach(async () => {
    await server?.close();
    server = undefined;
    if (dir) rmSync(dir, { recursive: true, force: true });
    dir = undefined;
  });

  it('connects to a TLS listener', async () => {
    dir = mkdtempSync(join(tmpdir(), 'earwax-kit-'));
    const key = join(dir, 'kit.key');
    const cert = join(dir, 'kit.crt');
    execFileSync(
      'openssl',
      [
        'req',
        '-x509',
        '-newkey',
        'rsa:2048',
        '-nodes',
        '-days',
        '1',
        '-subj',
        '/CN=localhost',
        '-keyout',
        key,
        '-out',
        cert,
      ],
      { stdio: 'ignore', timeout: 8000 },
    );
    server = await EarwaxTesting.createServer(GameModule, {
      transport: {
        encoding: 'utf8',
        tls: { key: readFileSync(key), cert: readFileSync(cert) },
      },
    });
    const player = await server.connect({
      tls: { ca: readFileSync(cert), servername: 'localhost' },
    });
    expect(player.label).toMatch(/ \(TLS\)$/);
    expect(await player.readLine()).toBe('Welcome, 127.0.0.1.');
    const [ctx] = server.registry;
    expect(ctx.tls?.protocol).toMatch(/^TLSv1\.[23]$/);
    player.send('look');
    expect(await player.readLine()).toBe('A dark room.');
  }, 15_000);
});
