import 'reflect-metadata';
import {
  afterAll,
  afterEach,
  beforeAll,
  describe,
  expect,
  it,
} from '@jest/globals';
import type { DynamicModule } from '@nestjs/common';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ConnectionOptions } from 'node:tls';
import { ConnectionRegistry } from '../../../lib/index.js';
import {
  TelnetCommand,
  TelnetOption,
  TelnetSubCode,
} from '../../../lib/telnet/index.js';
import {
  type EarwaxTestClient,
  EarwaxTesting,
  type EarwaxTestServer,
  type EarwaxTestTelnetOptions,
} from '../../../lib/testing/index.js';
import { AccountService } from '../src/account.service.js';
import { AppModule } from '../src/app.module.js';
import { HELP } from '../src/game.controller.js';
import {
  DEFAULT_TLS_PORT,
  MUD_NAME,
  mudTransportOptions,
  SHUTDOWN_MESSAGE,
  TLS_OFF_NOTICE,
  tlsNotice,
} from '../src/mud.options.js';
import { verifyPassword } from '../src/password-hash.js';
import {
  makeCertificate,
  type TestCertificate,
} from '../../../test/support/certificates.js';

const { IAC, WILL, WONT, DO, GA, EOR } = TelnetCommand;
const Option = TelnetOption;

const WELCOME = [
  'Welcome to Earwax Tiny MUD!',
  'Give a name to log in (a new name makes a new character), or quit.',
  'Name: ',
];
const SQUARE = [
  '[Town Square]',
  'Cobblestones ring a dry fountain. A tavern door stands to the north and a market street runs east.',
  'Exits: north, east.',
];
const TAVERN = [
  '[The Crooked Tavern]',
  'Low beams, warm ale and a fire that never quite goes out. The square is south; a ladder leads up.',
  'Exits: south, up.',
];

/**
 * How a test player's MUD client behaves, where it connects from, and to
 * which listener (with TLS for the `tls` one).
 */
type MudClient = EarwaxTestTelnetOptions & {
  from?: string;
  listener?: string;
  tls?: ConnectionOptions;
};

/** What a standard client agrees to: the password echo, and EOR prompts. */
const STANDARD: MudClient = { accept: [Option.ECHO, Option.EOR] };

describe('sample 03-mud', () => {
  let server: EarwaxTestServer | undefined;
  /** The test certificate, and where its PEM files are. */
  let certificate: TestCertificate;
  let certDir: string;
  let keyFile: string;
  let certFile: string;

  beforeAll(() => {
    certificate = makeCertificate('Earwax Tiny MUD');
    certDir = mkdtempSync(join(tmpdir(), 'earwax-mud-tls-'));
    keyFile = join(certDir, 'key.pem');
    certFile = join(certDir, 'cert.pem');
    writeFileSync(keyFile, certificate.key);
    writeFileSync(certFile, certificate.cert);
  });

  afterAll(() => {
    rmSync(certDir, { recursive: true, force: true });
  });

  /** Each test's own database folder. */
  let dbDir: string | undefined;

  afterEach(async () => {
    await server?.close();
    server = undefined;
    if (dbDir) rmSync(dbDir, { recursive: true, force: true });
    dbDir = undefined;
  });

  /** The game, keeping its players in a new SQLite file of its own. */
  function game(): DynamicModule {
    dbDir = mkdtempSync(join(tmpdir(), 'earwax-mud-db-'));
    return AppModule.forRoot({ database: join(dbDir, 'mud.sqlite') });
  }

  async function boot(): Promise<EarwaxTestServer> {
    server = await EarwaxTesting.createServer(game(), {
      transport: { ...mudTransportOptions({}), port: 0 },
    });
    return server;
  }

  /** Boots the game as `TLS_KEY=... TLS_CERT=...` would, on free ports. */
  async function bootWithTls(
    env: NodeJS.ProcessEnv = {},
  ): Promise<EarwaxTestServer> {
    server = await EarwaxTesting.createServer(game(), {
      transport: mudTransportOptions({
        TLS_KEY: keyFile,
        TLS_CERT: certFile,
        PORT: '0',
        TLS_PORT: '0',
        ...env,
      }),
    });
    return server;
  }

  /** A client of the `tls` listener that trusts the test certificate. */
  function overTls(options: MudClient = STANDARD): MudClient {
    return {
      ...options,
      listener: 'tls',
      tls: { ca: certificate.cert, servername: 'localhost' },
    };
  }

  function app(): EarwaxTestServer {
    if (!server) throw new Error('boot() first');
    return server;
  }

  /** Connects and waits for the name prompt. */
  async function connect(
    options: MudClient = STANDARD,
  ): Promise<EarwaxTestClient> {
    const { from, listener, tls, ...telnet } = options;
    const client = await app().connect({ telnet, from, listener, tls });
    expect(await client.telnet.readPrompt()).toEqual(WELCOME);
    return client;
  }

  /**
   * Sends a line and returns the response to it: every MUD response ends
   * with a prompt (marked IAC GA or IAC EOR), so this is exactly its answer.
   */
  function ask(client: EarwaxTestClient, line: string): Promise<string[]> {
    client.send(line);
    return client.telnet.readPrompt();
  }

  /** Connects and logs in (a new name creates the character). */
  async function login(
    name: string,
    password: string,
    options: MudClient = STANDARD,
  ): Promise<EarwaxTestClient> {
    const client = await connect(options);
    expect((await ask(client, name)).at(-1)).toBe('Password: ');
    const entered = await ask(client, password);
    expect(entered.slice(0, 2)).toEqual([
      '',
      expect.stringMatching(new RegExp(`^Welcome(?: back)?, ${name}!`, 'i')),
    ]);
    expect(entered.at(-1)).toBe('> ');
    return client;
  }

  /** Where the bytes `IAC <verb> <option>` are in what a client received. */
  function negotiationAt(
    client: EarwaxTestClient,
    verb: number,
    option: number,
    from = 0,
  ): number {
    return client.received.indexOf(Buffer.of(IAC, verb, option), from);
  }

  /** How many TTYPE SEND requests the client received (and answered). */
  function ttypeRequests(client: EarwaxTestClient): number {
    return client.telnet.events.filter(
      (e) =>
        e.type === 'subnegotiation' &&
        e.option === Option.TTYPE &&
        e.payload[0] === TelnetSubCode.SEND,
    ).length;
  }

  it('creates the account on the first login, with echo off while the password is typed', async () => {
    await boot();
    const alice = await connect();
    expect(await ask(alice, 'alice')).toEqual([
      'Alice is a new character. Choose a password (4 characters or more).',
      'Password: ',
    ]);
    // IAC WILL ECHO just before the password prompt: the client hides
    // what is typed (this client agreed with DO ECHO).
    const willEcho = negotiationAt(alice, WILL, Option.ECHO);
    expect(willEcho).toBeGreaterThan(-1);
    expect(
      alice.received.subarray(willEcho + 3, willEcho + 13).toString(),
    ).toBe('Password: ');
    expect(negotiationAt(alice, WONT, Option.ECHO)).toBe(-1);

    // Too short: asked again, echo still off.
    expect(await ask(alice, 'abc')).toEqual([
      '',
      'A password has at least 4 characters; try another.',
      'Password: ',
    ]);
    expect(negotiationAt(alice, WONT, Option.ECHO)).toBe(-1);

    const before = alice.received.length;
    expect(await ask(alice, 's3cret!')).toEqual([
      '',
      'Welcome, Alice! Your character has been created.',
      'Type help for the commands.',
      ...SQUARE,
      '> ',
    ]);
    // IAC WONT ECHO once the password is in, before the welcome.
    const wontEcho = negotiationAt(alice, WONT, Option.ECHO, before);
    expect(wontEcho).toBeGreaterThan(-1);
    expect(wontEcho).toBeLessThan(alice.received.indexOf('Welcome, Alice!'));
    expect(negotiationAt(alice, WILL, Option.ECHO, willEcho + 1)).toBe(-1);
    await app().logs.waitFor('Alice created a character and logged in.');

    // Stored as a salted scrypt hash, never as the password.
    const account = await app().app.get(AccountService).find('ALICE');
    expect(account?.name).toBe('Alice');
    expect(account?.passwordHash).toMatch(/^\$scrypt\$ln=14,r=8,p=1\$/);
    expect(account?.passwordHash).not.toContain('s3cret!');
    expect(await verifyPassword('s3cret!', account?.passwordHash ?? '')).toBe(
      true,
    );
  });

  it('lets a returning player in with the same password only; three wrong ones disconnect', async () => {
    await boot();
    const first = await login('Alice', 'open sesame');
    first.send('quit');
    await first.expectClose();
    expect(first.unread).toEqual(['Goodbye, Alice. Come back soon!']);
    expect(first.partial).toBe('');

    const again = await connect();
    expect(await ask(again, 'ALICE')).toEqual([
      'Hello again, Alice.',
      'Password: ',
    ]);
    for (let attempt = 1; attempt <= 2; attempt++) {
      expect(await ask(again, 'wrong')).toEqual([
        '',
        'Wrong password.',
        'Name: ',
      ]);
      expect(await ask(again, 'alice')).toEqual([
        'Hello again, Alice.',
        'Password: ',
      ]);
    }
    await app().logs.waitFor('Wrong password for Alice.', { level: 'warn' });
    again.send('wrong');
    await again.expectClose();
    expect(again.unread).toEqual([
      '',
      'Wrong password. Too many failures: goodbye.',
    ]);
    expect(again.partial).toBe('');
    // Echo was turned off and back on for each of the three passwords.
    const echoes = again.telnet.events.flatMap((e) =>
      e.type === 'negotiation' && e.option === Option.ECHO ? [e.verb] : [],
    );
    expect(echoes).toEqual(['WILL', 'WONT', 'WILL', 'WONT', 'WILL', 'WONT']);

    const alice = await login('alice', 'open sesame');
    // One character, one connection.
    const other = await connect();
    expect(await ask(other, 'Alice')).toEqual([
      'Alice is already playing.',
      'Name: ',
    ]);
    expect(await ask(other, 'x1')).toEqual([
      'A name is 3 to 16 letters.',
      'Name: ',
    ]);
    expect(await ask(alice, 'who')).toEqual([
      'Players online (1):',
      '  Alice - Town Square',
      '> ',
    ]);
    // `quit` is not a name.
    other.send('QUIT');
    await other.expectClose();
    expect(other.unread).toEqual(['Goodbye.']);
    expect(other.partial).toBe('');
    expect(await app().app.get(AccountService).exists('quit')).toBe(false);
  });

  it('moves players between rooms, says things to the room only, and lists who is on', async () => {
    await boot();
    const alice = await login('Alice', 'alice-pw');
    const aliceHears = alice.telnet.readPrompt();
    const bob = await login('Bob', 'bob-pw', {
      ...STANDARD,
      from: '127.0.0.2',
    });
    expect(await aliceHears).toEqual(['Bob has entered the world.', '> ']);
    expect(bob.lines.slice(-2)).toEqual(['Also here: Alice.', '> ']);
    expect(await ask(alice, 'look')).toEqual([
      ...SQUARE,
      'Also here: Bob.',
      '> ',
    ]);

    let bobHears = bob.telnet.readPrompt();
    expect(await ask(alice, 'say Hello there!')).toEqual([
      'You say, "Hello there!"',
      '> ',
    ]);
    expect(await bobHears).toEqual(['Alice says, "Hello there!"', '> ']);

    bobHears = bob.telnet.readPrompt();
    expect(await ask(alice, 'go north')).toEqual([
      'You go north.',
      ...TAVERN,
      '> ',
    ]);
    expect(await bobHears).toEqual(['Alice leaves north.', '> ']);
    const registry = app().app.get(ConnectionRegistry);
    expect(registry).toBe(app().registry);
    expect(registry.roomSize('room:1')).toBe(1);
    expect(registry.roomSize('room:2')).toBe(1);

    // Said in the tavern: Bob, in the square, hears nothing. His answer to
    // `look` comes after anything the say would have sent him.
    expect(await ask(alice, "'anyone here?")).toEqual([
      'You say, "anyone here?"',
      '> ',
    ]);
    expect(await ask(bob, 'l')).toEqual([...SQUARE, '> ']);
    expect(bob.lines).not.toContain('Alice says, "anyone here?"');

    const aliceHearsBob = alice.telnet.readPrompt();
    expect(await ask(bob, 'n')).toEqual([
      'You go north.',
      ...TAVERN,
      'Also here: Alice.',
      '> ',
    ]);
    expect(await aliceHearsBob).toEqual(['Bob arrives.', '> ']);
    expect(await ask(bob, 'west')).toEqual([
      'You cannot go west from here.',
      '> ',
    ]);
    expect(await ask(bob, 'go nowhere')).toEqual([
      '"nowhere" is not a way out; try n, s, e, w, u or d.',
      '> ',
    ]);
    expect(await ask(alice, 'who')).toEqual([
      'Players online (2):',
      '  Alice - The Crooked Tavern',
      '  Bob - The Crooked Tavern',
      '> ',
    ]);
    expect(registry.members('room:2')).toHaveLength(2);
    expect(registry.roomSize('room:1')).toBe(0);

    const aliceHearsQuit = alice.telnet.readPrompt();
    bob.send('quit');
    await bob.expectClose();
    expect(bob.unread).toEqual(['Goodbye, Bob. Come back soon!']);
    expect(bob.partial).toBe('');
    expect(await aliceHearsQuit).toEqual(['Bob has left the world.', '> ']);
    expect(registry.roomSize('room:2')).toBe(1);
  });

  it('answers help, unknown commands and blank lines, each with a prompt', async () => {
    await boot();
    const alice = await login('Alice', 'alice-pw');
    expect(await ask(alice, 'help')).toEqual([...HELP, '> ']);
    expect(await ask(alice, 'dance')).toEqual([
      '"dance" is not a command; type help for the commands.',
      '> ',
    ]);
    expect(await ask(alice, '')).toEqual(['> ']);
    expect(await ask(alice, 'say')).toEqual(['Say what?', '> ']);
    expect(await ask(alice, 'go')).toEqual(['Go where?', '> ']);
  });

  it('sends GMCP Char.Name and Room.Info on login and each move, and remembers Core.Hello', async () => {
    await boot();
    const carol = await login('Carol', 'carol-pw', {
      accept: [Option.ECHO, Option.EOR, Option.GMCP],
      gmcp: [
        { package: 'Core.Hello', data: { client: 'MudTest', version: '2.1' } },
      ],
    });
    expect(carol.telnet.gmcp).toEqual([
      { package: 'Char.Name', data: { name: 'Carol', fullname: 'Carol' } },
      {
        package: 'Room.Info',
        data: { num: 1, name: 'Town Square', exits: { n: 2, e: 3 } },
      },
    ]);
    await ask(carol, 'n');
    await ask(carol, 'look');
    await ask(carol, 'up');
    expect(carol.telnet.gmcp.slice(2)).toEqual([
      {
        package: 'Room.Info',
        data: { num: 2, name: 'The Crooked Tavern', exits: { s: 1, u: 4 } },
      },
      {
        package: 'Room.Info',
        data: { num: 4, name: 'Tavern Attic', exits: { d: 2 } },
      },
    ]);
    await app().logs.waitFor('Client: MudTest 2.1 (GMCP Core.Hello).');
    expect((await ask(carol, 'stats'))[0]).toBe(
      'Client (GMCP Core.Hello): MudTest 2.1',
    );

    // A client that said DONT GMCP gets none.
    const dave = await login('Dave', 'dave-pw');
    expect(negotiationAt(dave, WILL, Option.GMCP)).toBeGreaterThan(-1);
    await ask(dave, 'n');
    expect(dave.telnet.gmcp).toEqual([]);
    expect((await ask(dave, 'stats'))[0]).toBe(
      'Client (GMCP Core.Hello): not told',
    );
  });

  it('ends prompts with IAC EOR once the client agrees to EOR, else with IAC GA', async () => {
    await boot();
    const withEor = await login('Erin', 'erin-pw');
    const withGa = await login('Gary', 'gary-pw', { accept: [Option.ECHO] });
    expect(await withEor.telnet.readPrompt()).toEqual([
      'Gary has entered the world.',
      '> ',
    ]);
    expect(await ask(withEor, 'look')).toEqual([
      ...SQUARE,
      'Also here: Gary.',
      '> ',
    ]);
    expect(await ask(withGa, 'look')).toEqual([
      ...SQUARE,
      'Also here: Erin.',
      '> ',
    ]);
    // The first prompt may go out before the client's DO EOR arrives;
    // every prompt after it is marked EOR.
    expect(withEor.telnet.prompts.slice(1).map((p) => p.mark)).toEqual(
      withEor.telnet.prompts.slice(1).map(() => 'EOR'),
    );
    expect(withEor.received.includes(Buffer.from([0x3e, 0x20, IAC, EOR]))).toBe(
      true,
    );
    expect(withGa.telnet.prompts.map((p) => p.mark)).toEqual(
      withGa.telnet.prompts.map(() => 'GA'),
    );
    expect(withGa.received.includes(Buffer.from([0x3e, 0x20, IAC, GA]))).toBe(
      true,
    );
    expect(withGa.received.includes(Buffer.of(IAC, EOR))).toBe(false);
  });

  it('shows in stats what the client told through TTYPE and NAWS, and window changes', async () => {
    await boot();
    const client = await connect({
      ...STANDARD,
      ttype: ['MUDTEST', 'XTERM-256COLOR', 'MTTS 13'],
      naws: { width: 100, height: 40 },
    });
    // Everything sent after the third answer is read after it.
    await client.waitFor(
      () => ttypeRequests(client) === 3,
      'three TTYPE answers',
    );
    await ask(client, 'Tess');
    await ask(client, 'tess-pw');
    expect(await ask(client, 'stats')).toEqual([
      'Client (GMCP Core.Hello): not told',
      'Terminal (TTYPE): MUDTEST, XTERM-256COLOR, MTTS 13',
      'Capabilities (MTTS): ansi, utf8, colors256',
      'Window (NAWS): 100x40',
      'Encoding: utf8',
      'Connection: plain telnet (not encrypted)',
      '> ',
    ]);
    await app().logs.waitFor(
      'Terminal: MUDTEST, XTERM-256COLOR, MTTS 13 (TTYPE).',
    );
    client.telnet.sendNaws(120, 50);
    expect((await ask(client, 'terminal'))[3]).toBe('Window (NAWS): 120x50');
    // MTTS ended the cycle: no fourth SEND.
    expect(ttypeRequests(client)).toBe(3);

    const plain = await login('Paul', 'paul-pw');
    expect(await ask(plain, 'stats')).toEqual([
      'Client (GMCP Core.Hello): not told',
      'Terminal (TTYPE): not told',
      'Capabilities (MTTS): not told',
      'Window (NAWS): not told',
      'Encoding: utf8',
      'Connection: plain telnet (not encrypted)',
      '> ',
    ]);
    expect(negotiationAt(plain, DO, Option.TTYPE)).toBeGreaterThan(-1);
    expect(negotiationAt(plain, DO, Option.NAWS)).toBeGreaterThan(-1);
  });

  it('answers DO MSSP with the game name and its variables', async () => {
    await boot();
    const crawler = await connect({ accept: [Option.MSSP] });
    await crawler.waitFor(
      () => crawler.telnet.mssp !== undefined,
      'an MSSP subnegotiation',
    );
    const mssp = crawler.telnet.mssp;
    expect(mssp).toMatchObject({
      NAME: [MUD_NAME],
      PLAYERS: [expect.stringMatching(/^\d+$/)],
      UPTIME: [expect.stringMatching(/^\d+$/)],
      CODEBASE: ['nestjs-earwax'],
      ROOMS: ['4'],
      GMCP: ['1'],
    });
    // A client that refuses gets no MSSP.
    const player = await connect();
    // Its DONT MSSP went out before this line, so it has been read.
    expect(await ask(player, '')).toEqual(['Name: ']);
    expect(
      player.telnet.events.some(
        (e) => e.type === 'subnegotiation' && e.option === Option.MSSP,
      ),
    ).toBe(false);
  });

  it('sends each player text in the charset their client agreed to', async () => {
    await boot();
    const alice = await login('Alice', 'alice-pw');
    const bob = await login('Bob', 'bob-pw', {
      accept: [Option.ECHO, Option.EOR, Option.CHARSET],
      charset: 'ISO-8859-1',
      from: '127.0.0.2',
    });
    expect(await alice.telnet.readPrompt()).toEqual([
      'Bob has entered the world.',
      '> ',
    ]);
    expect((await ask(bob, 'stats')).at(-3)).toBe('Encoding: latin1');

    const bobHears = bob.telnet.readPrompt();
    await ask(alice, 'say Crème brûlée, ÿes');
    expect(await bobHears).toEqual(['Alice says, "Crème brûlée, ÿes"', '> ']);
    // Latin-1 ÿ is 0xFF: doubled on the wire.
    expect(bob.received.includes(Buffer.of(IAC, IAC))).toBe(true);

    const aliceHears = alice.telnet.readPrompt();
    await ask(bob, 'say Olá, ÿ');
    expect(await aliceHears).toEqual(['Bob says, "Olá, ÿ"', '> ']);
  });

  it('says goodbye to everyone on app.close()', async () => {
    const { app: nest } = await boot();
    const alice = await login('Alice', 'alice-pw');
    const bob = await login('Bob', 'bob-pw', {
      ...STANDARD,
      from: '127.0.0.2',
    });
    expect(await alice.telnet.readPrompt()).toEqual([
      'Bob has entered the world.',
      '> ',
    ]);
    const unnamed = await connect();

    await nest.close();
    for (const client of [alice, bob, unnamed]) {
      await client.expectClose();
      expect(client.unread).toEqual([SHUTDOWN_MESSAGE]);
      expect(client.partial).toBe('');
    }
    // Nobody was told that the others left.
    expect(bob.received.includes('has left the world')).toBe(false);
  });

  it('reads HOST and PORT from the environment, with telnet and MSSP on', () => {
    expect(mudTransportOptions({})).toMatchObject({
      host: '127.0.0.1',
      port: 4000,
      encoding: 'utf8',
      telnet: { mssp: { name: 'Earwax Tiny MUD' } },
      messages: { shutdown: SHUTDOWN_MESSAGE },
    });
    expect(
      mudTransportOptions({ HOST: '0.0.0.0', PORT: '4100' }),
    ).toMatchObject({ host: '0.0.0.0', port: 4100 });
    expect(() => mudTransportOptions({ PORT: 'http' })).toThrow(
      'PORT must be a whole number, 0 to 65535; got "http".',
    );
    expect(() => mudTransportOptions({ PORT: '70000' })).toThrow(/^PORT /);
    expect(mudTransportOptions({}).proxyProtocol).toBe(false);
    expect(
      mudTransportOptions({ PROXY_FROM: '10.0.0.5, 10.0.1.0/24' })
        .proxyProtocol,
    ).toEqual({ trustedProxies: ['10.0.0.5', '10.0.1.0/24'] });
    // Without TLS_KEY and TLS_CERT: one plain listener, and a notice.
    expect(mudTransportOptions({}).listeners).toBeUndefined();
    expect(tlsNotice(mudTransportOptions({}))).toBe(TLS_OFF_NOTICE);
    expect(TLS_OFF_NOTICE).toMatch(/TLS_KEY and TLS_CERT/);
  });

  it('adds a tls listener beside the telnet one when TLS_KEY and TLS_CERT are set, with PROXY_FROM on both', () => {
    const options = mudTransportOptions({
      HOST: '0.0.0.0',
      PORT: '4100',
      TLS_KEY: keyFile,
      TLS_CERT: certFile,
      PROXY_FROM: '10.0.0.5',
    });
    expect(options).toMatchObject({
      host: '0.0.0.0',
      encoding: 'utf8',
      telnet: { mssp: { name: MUD_NAME } },
      proxyProtocol: { trustedProxies: ['10.0.0.5'] },
    });
    // With listeners, the transport refuses a transport-level port.
    expect(options.port).toBeUndefined();
    expect(options.listeners).toEqual([
      { name: 'telnet', port: 4100 },
      {
        name: 'tls',
        port: DEFAULT_TLS_PORT,
        tls: { key: certificate.key, cert: certificate.cert },
      },
    ]);
    // Neither listener overrides the transport's PROXY protocol setting.
    for (const listener of options.listeners ?? []) {
      expect(listener.proxyProtocol).toBeUndefined();
    }
    expect(tlsNotice(options)).toBeUndefined();
    expect(
      mudTransportOptions({
        TLS_KEY: keyFile,
        TLS_CERT: certFile,
        TLS_PORT: '5443',
      }).listeners?.map((l) => `${l.name}:${l.port}`),
    ).toEqual(['telnet:4000', 'tls:5443']);
  });

  it('stops at start with a message naming the variable for a bad TLS setting', () => {
    const missing = join(certDir, 'no-such-file.pem');
    const tls = { TLS_KEY: keyFile, TLS_CERT: certFile };
    expect(() => mudTransportOptions({ TLS_KEY: keyFile })).toThrow(
      'TLS_KEY is set but TLS_CERT is not: TLS needs both (paths to a PEM key and its certificate), or neither.',
    );
    expect(() => mudTransportOptions({ TLS_CERT: certFile })).toThrow(
      /^TLS_CERT is set but TLS_KEY is not/,
    );
    expect(() => mudTransportOptions({ ...tls, TLS_KEY: missing })).toThrow(
      `TLS_KEY: cannot read ${missing}: ENOENT`,
    );
    expect(() => mudTransportOptions({ ...tls, TLS_CERT: missing })).toThrow(
      `TLS_CERT: cannot read ${missing}: ENOENT`,
    );
    // The two files swapped: each is named for what it is not.
    expect(() =>
      mudTransportOptions({ TLS_KEY: certFile, TLS_CERT: keyFile }),
    ).toThrow(`TLS_KEY: ${certFile} is not a PEM private key`);
    expect(() => mudTransportOptions({ ...tls, TLS_CERT: keyFile })).toThrow(
      `TLS_CERT: ${keyFile} is not a PEM certificate`,
    );
    // A key and someone else's certificate.
    const otherKey = join(certDir, 'other-key.pem');
    writeFileSync(otherKey, makeCertificate('other').key);
    expect(() => mudTransportOptions({ ...tls, TLS_KEY: otherKey })).toThrow(
      `TLS_KEY (${otherKey}) is not the key of the certificate in TLS_CERT (${certFile})`,
    );
    expect(() => mudTransportOptions({ ...tls, TLS_PORT: 'ssl' })).toThrow(
      'TLS_PORT must be a whole number, 0 to 65535; got "ssl".',
    );
    expect(() => mudTransportOptions({ ...tls, TLS_PORT: '65536' })).toThrow(
      /^TLS_PORT must be a whole number/,
    );
    expect(() =>
      mudTransportOptions({ ...tls, PORT: '4443', TLS_PORT: '4443' }),
    ).toThrow('TLS_PORT must differ from PORT; both are 4443.');
    expect(() => mudTransportOptions({ TLS_PORT: '4443' })).toThrow(
      /^TLS_PORT is set but TLS is off: set TLS_KEY and TLS_CERT/,
    );
    expect(() => mudTransportOptions({ ...tls, PORT: '-1' })).toThrow(
      /^PORT must be a whole number/,
    );
  });

  it('puts a TLS player and a plain telnet player in one game: they see and hear each other, and who shows the secure one', async () => {
    const game = await bootWithTls();
    expect(game.transport.listenerNames).toEqual(['telnet', 'tls']);
    const secure = await login('Sarah', 'sarah-pw', overTls());
    const sarahHears = secure.telnet.readPrompt();
    const plain = await login('Paul', 'paul-pw', {
      ...STANDARD,
      listener: 'telnet',
      from: '127.0.0.2',
    });
    expect(await sarahHears).toEqual(['Paul has entered the world.', '> ']);
    expect(plain.lines.slice(-2)).toEqual(['Also here: Sarah.', '> ']);

    const paulHears = plain.telnet.readPrompt();
    expect(await ask(secure, 'say Hello over TLS!')).toEqual([
      'You say, "Hello over TLS!"',
      '> ',
    ]);
    expect(await paulHears).toEqual(['Sarah says, "Hello over TLS!"', '> ']);
    const sarahHearsPaul = secure.telnet.readPrompt();
    await ask(plain, "'and back in the clear");
    expect(await sarahHearsPaul).toEqual([
      'Paul says, "and back in the clear"',
      '> ',
    ]);

    const who = [
      'Players online (2):',
      '  Sarah (secure) - Town Square',
      '  Paul - Town Square',
      '> ',
    ];
    expect(await ask(plain, 'who')).toEqual(who);
    expect(await ask(secure, 'who')).toEqual(who);
    expect((await ask(secure, 'stats')).at(-2)).toMatch(
      /^Connection: secure \(TLSv1\.3, TLS_\w+\)$/,
    );
    expect((await ask(plain, 'stats')).at(-2)).toBe(
      'Connection: plain telnet (not encrypted)',
    );
    expect(
      [...game.registry]
        .map((ctx) => `${ctx.listener}:${ctx.hostname}:${ctx.isTelnet}`)
        .sort(),
    ).toEqual(['telnet:127.0.0.2:true', 'tls:127.0.0.1:true']);

    const sarahHearsQuit = secure.telnet.readPrompt();
    plain.send('quit');
    await plain.expectClose();
    expect(await sarahHearsQuit).toEqual(['Paul has left the world.', '> ']);
  });

  it('answers MSSP on both listeners with the plain port as PORT and the TLS port as SSL', async () => {
    const game = await bootWithTls();
    const plainPort = game.addressOf('telnet').port;
    const tlsPort = game.addressOf('tls').port;
    expect(plainPort).not.toBe(tlsPort);
    const crawlers = [
      await connect({ accept: [Option.MSSP], listener: 'telnet' }),
      await connect(overTls({ accept: [Option.MSSP] })),
    ];
    for (const crawler of crawlers) {
      await crawler.waitFor(
        () => crawler.telnet.mssp !== undefined,
        'an MSSP subnegotiation',
      );
      expect(crawler.telnet.mssp).toMatchObject({
        NAME: [MUD_NAME],
        PORT: [String(plainPort)],
        SSL: [String(tlsPort)],
        CODEBASE: ['nestjs-earwax'],
      });
    }
  });

  it('requires the PROXY protocol from PROXY_FROM on the TLS listener as on the plain one', async () => {
    const game = await bootWithTls({ PROXY_FROM: '10.0.0.5' });
    // Straight from 127.0.0.3, not a trusted proxy: closed before anything
    // is read, TLS handshake or not.
    const direct = [
      await game.connect({ listener: 'telnet', from: '127.0.0.3' }),
      await game.connect({ listener: 'tls', from: '127.0.0.3' }),
    ];
    for (const client of direct) {
      await client.expectClose();
      expect(client.received.length).toBe(0);
    }
    // Logged just before each socket was closed. A log context names the
    // client's end, as a test client's label does (`client <ip:port> → ...`).
    expect(
      game.logs
        .find(/not a trusted proxy/, 'warn')
        .map((entry) => entry.context)
        .sort(),
    ).toEqual(direct.map((client) => client.label.split(' ')[1]).sort());
    expect(game.registry.size).toBe(0);
  });
});
