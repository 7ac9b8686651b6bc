import 'reflect-metadata';
import { afterEach, describe, expect, it } from '@jest/globals';
import { scryptSync } from 'node:crypto';
import {
  ConnectionRegistry,
  TelnetCommand,
  TelnetOption,
  TelnetSubCode,
} from '../../../lib/index.js';
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
  MUD_NAME,
  mudTransportOptions,
  SHUTDOWN_MESSAGE,
} from '../src/mud.options.js';

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

/** How a test player's MUD client behaves, and where it connects from. */
type MudClient = EarwaxTestTelnetOptions & { from?: string };

/** What a standard client agrees to: the password echo, and EOR prompts. */
const STANDARD: MudClient = { accept: [Option.ECHO, Option.EOR] };

describe('sample 03-mud', () => {
  let server: EarwaxTestServer | undefined;

  afterEach(async () => {
    await server?.close();
    server = undefined;
  });

  async function boot(): Promise<EarwaxTestServer> {
    server = await EarwaxTesting.createServer(AppModule, {
      transport: { ...mudTransportOptions({}), port: 0 },
    });
    return server;
  }

  function app(): EarwaxTestServer {
    if (!server) throw new Error('boot() first');
    return server;
  }

  /** Connects and waits for the name prompt. */
  async function connect(
    options: MudClient = STANDARD,
  ): Promise<EarwaxTestClient> {
    const { from, ...telnet } = options;
    const client = await app().connect({ telnet, from });
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
    const account = app().app.get(AccountService).find('ALICE');
    expect(account?.name).toBe('Alice');
    expect(account?.salt).toHaveLength(16);
    expect(account?.hash).toEqual(scryptSync('s3cret!', account!.salt, 32));
    expect(account?.hash.includes(Buffer.from('s3cret!'))).toBe(false);
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
    expect(app().app.get(AccountService).exists('quit')).toBe(false);
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
    expect((await ask(bob, 'stats')).at(-2)).toBe('Encoding: latin1');

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
  });
});
