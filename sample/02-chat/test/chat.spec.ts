import 'reflect-metadata';
import { afterEach, describe, expect, it } from '@jest/globals';
import { BlockListService } from '../../../lib/index.js';
import {
  type EarwaxTestClient,
  EarwaxTesting,
  type EarwaxTestServer,
} from '../../../lib/testing/index.js';
import { AppModule } from '../src/app.module.js';
import {
  chatHealthPort,
  chatTransportOptions,
  DEFAULT_SHUTDOWN_MESSAGE,
} from '../src/chat.options.js';

const PASSWORD = 'open sesame';
const HELLO = (name: string) =>
  `Hello, ${name}. You are in lobby; /help lists the commands.`;
const NOT_ADMIN = 'Only admins can do that: /admin <password> first.';

describe('sample 02-chat', () => {
  let server: EarwaxTestServer | undefined;

  afterEach(async () => {
    await server?.close();
    server = undefined;
  });

  /**
   * Boots the sample's AppModule on port 0 with the transport options `env`
   * gives; `env.ADMIN_PASSWORD` is in `process.env` only while the module is
   * built (that is when AppModule reads it).
   */
  async function boot(env: NodeJS.ProcessEnv = {}): Promise<EarwaxTestServer> {
    const saved = process.env.ADMIN_PASSWORD;
    if (env.ADMIN_PASSWORD === undefined) delete process.env.ADMIN_PASSWORD;
    else process.env.ADMIN_PASSWORD = env.ADMIN_PASSWORD;
    try {
      server = await EarwaxTesting.createServer(AppModule, {
        transport: { ...chatTransportOptions(env), host: '127.0.0.1', port: 0 },
      });
    } finally {
      if (saved === undefined) delete process.env.ADMIN_PASSWORD;
      else process.env.ADMIN_PASSWORD = saved;
    }
    return server;
  }

  function connect(from?: string): Promise<EarwaxTestClient> {
    if (!server) throw new Error('boot() first');
    return server.connect({ from });
  }

  /** Connects and takes a name; the player is then in the lobby. */
  async function enter(name: string, from?: string): Promise<EarwaxTestClient> {
    const client = await connect(from);
    expect(await client.readLines(2)).toEqual([
      'Welcome to the chat server.',
      'What is your name?',
    ]);
    client.send(name);
    expect(await client.readLine()).toBe(HELLO(name));
    return client;
  }

  /** Sends a line and reads the next `count` lines the client receives. */
  function ask(
    client: EarwaxTestClient,
    text: string,
    count = 1,
  ): Promise<string[]> {
    client.send(text);
    return client.readLines(count);
  }

  function blockList(): BlockListService {
    if (!server) throw new Error('boot() first');
    return server.app.get(BlockListService, { strict: false });
  }

  it('asks for a name and refuses invalid and taken ones', async () => {
    await boot();
    const alice = await enter('Alice');
    const bob = await connect('127.0.0.2');
    expect(await bob.readLines(2)).toEqual([
      'Welcome to the chat server.',
      'What is your name?',
    ]);
    for (const bad of ['x', 'Bad name', 'Bob!', 'B'.repeat(17)]) {
      expect(await ask(bob, bad, 2)).toEqual([
        'A name is 2 to 16 letters or digits.',
        'What is your name?',
      ]);
    }
    // Taken, whatever the case.
    expect(await ask(bob, 'ALICE', 2)).toEqual([
      'ALICE is taken.',
      'What is your name?',
    ]);
    expect(await ask(bob, 'Bob')).toEqual([HELLO('Bob')]);
    // The failed attempts were never announced: the arrival is Alice's next line.
    expect(await alice.readLine()).toBe('Bob has arrived.');
    expect(alice.lines.slice(3)).toEqual(['Bob has arrived.']);

    // A name is free again once its player has gone.
    const bobHears = bob.readLine();
    await alice.close();
    expect(await bobHears).toBe('Alice has left.');
    await enter('alice', '127.0.0.3');
  });

  it('says plain text to the room only; /join announces to both rooms', async () => {
    await boot();
    const alice = await enter('Alice');
    const bob = await enter('Bob', '127.0.0.2');
    await alice.expectLine('Bob has arrived.');
    const carol = await enter('Carol', '127.0.0.3');
    await alice.expectLine('Carol has arrived.');
    await bob.expectLine('Carol has arrived.');
    // Connected but unnamed: in no room yet.
    const lurker = await connect('127.0.0.4');
    expect(await lurker.readLines(2)).toEqual([
      'Welcome to the chat server.',
      'What is your name?',
    ]);

    let aliceHears = alice.readLine();
    let bobHears = bob.readLine();
    expect(await ask(carol, '/join Kitchen')).toEqual([
      'You are now in kitchen.',
    ]);
    expect(await aliceHears).toBe('Carol has gone to kitchen.');
    expect(await bobHears).toBe('Carol has gone to kitchen.');

    aliceHears = alice.readLine();
    const carolHears = carol.readLine();
    expect(await ask(bob, '/join kitchen')).toEqual([
      'You are now in kitchen.',
    ]);
    expect(await aliceHears).toBe('Bob has gone to kitchen.');
    expect(await carolHears).toBe('Bob has arrived from lobby.');
    expect(await ask(bob, '/join kitchen')).toEqual([
      'You are already in kitchen.',
    ]);
    expect(await ask(bob, '/join no spaces')).toEqual([
      'Usage: /join <room> (up to 24 letters, digits or dashes).',
    ]);

    const carolHearsBob = carol.readLine();
    expect(await ask(bob, 'hello kitchen')).toEqual(['You say: hello kitchen']);
    expect(await carolHearsBob).toBe('Bob: hello kitchen');
    // Carol has it, so the broadcast is done: a line for Alice would have
    // been written before her answer to /who.
    expect(await ask(alice, '/who')).toEqual(['In lobby: Alice.']);
    expect(alice.lines).not.toContain('Bob: hello kitchen');

    expect(await ask(alice, 'hello lobby')).toEqual(['You say: hello lobby']);
    expect(await ask(carol, '/who')).toEqual(['In kitchen: Carol, Bob.']);
    expect(await ask(bob, '/rooms')).toEqual([
      'Rooms: kitchen (2), lobby (1).',
    ]);
    expect(await ask(lurker, 'x', 2)).toEqual([
      'A name is 2 to 16 letters or digits.',
      'What is your name?',
    ]);
    expect(carol.lines).not.toContain('Alice: hello lobby');
    expect(bob.lines).not.toContain('Alice: hello lobby');
    expect(lurker.lines).toHaveLength(4);

    // A room ends with its last member; leaving is told to the room left.
    bobHears = bob.readLine();
    expect(await ask(carol, '/quit')).toEqual(['Goodbye.']);
    expect(await bobHears).toBe('Carol has left.');
    expect(await ask(bob, '/join lobby')).toEqual(['You are now in lobby.']);
    expect(await alice.expectLine('Bob has arrived from kitchen.')).toBe(
      'Bob has arrived from kitchen.',
    );
    expect(await ask(alice, '/rooms')).toEqual(['Rooms: lobby (2).']);
    expect(await ask(alice, '/who')).toEqual(['In lobby: Alice, Bob.']);
  });

  it('lets an admin /ban an address: its players are kicked and cannot come back', async () => {
    await boot({ ADMIN_PASSWORD: PASSWORD });
    const alice = await enter('Alice');
    const bob = await enter('Bob', '127.0.0.2');
    await alice.expectLine('Bob has arrived.');
    expect(await ask(alice, '/admin wrong')).toEqual(['Wrong password.']);
    expect(await ask(alice, '/ban 127.0.0.2')).toEqual([NOT_ADMIN]);
    expect(await ask(alice, `/admin ${PASSWORD}`)).toEqual([
      'You are now an admin.',
    ]);

    alice.send('/ban 127.0.0.2 5');
    await alice.expectLine('Banned 127.0.0.2 for 5 minute(s); kicked Bob.');
    await alice.expectLine('Bob has left.');
    await bob.expectClose();
    const [ban] = blockList().list();
    expect(ban).toMatchObject({ target: '127.0.0.2', reason: 'by Alice' });
    expect(ban.expiresAt! - ban.createdAt).toBe(5 * 60_000);

    // Refused by the transport before anything else: no name prompt.
    const again = await connect('127.0.0.2');
    await again.expectClose();
    expect(again.lines).toEqual([
      `You are banned from this server until ${new Date(ban.expiresAt!).toISOString().replace(/\.\d{3}Z$/, 'Z')}.`,
    ]);
    // Other addresses still get in.
    await enter('Carol', '127.0.0.3');
    await alice.expectLine('Carol has arrived.');

    const bans = await ask(alice, '/bans', 2);
    expect(bans[0]).toBe('Bans (1):');
    expect(bans[1]).toMatch(/^ {2}127\.0\.0\.2 \(until \S+Z, by Alice\)$/);
    expect(await ask(alice, '/ban not-an-ip')).toEqual([
      expect.stringMatching(/^Cannot ban: Invalid block list target/),
    ]);
    expect(await ask(alice, '/unban 127.0.0.2')).toEqual([
      'Unbanned 127.0.0.2.',
    ]);
    expect(blockList().list()).toEqual([]);
    await enter('Bob', '127.0.0.2');
  });

  it('refuses /ban, /unban and /bans to a player who is not an admin', async () => {
    await boot({ ADMIN_PASSWORD: PASSWORD });
    const alice = await enter('Alice');
    const bob = await enter('Bob', '127.0.0.2');
    await alice.expectLine('Bob has arrived.');
    expect(await ask(bob, '/ban 127.0.0.1')).toEqual([NOT_ADMIN]);
    expect(await ask(bob, '/ban 127.0.0.0/8 10')).toEqual([NOT_ADMIN]);
    expect(await ask(bob, '/unban 127.0.0.1')).toEqual([NOT_ADMIN]);
    expect(await ask(bob, '/bans')).toEqual([NOT_ADMIN]);
    expect(blockList().list()).toEqual([]);
    // Alice was not kicked.
    expect(await ask(alice, '/who')).toEqual(['In lobby: Alice, Bob.']);
  });

  it('disables the admin commands when ADMIN_PASSWORD is not set', async () => {
    await boot();
    const alice = await enter('Alice');
    const disabled = 'Admin commands are disabled: ADMIN_PASSWORD is not set.';
    expect(await ask(alice, `/admin ${PASSWORD}`)).toEqual([disabled]);
    expect(await ask(alice, '/ban 127.0.0.2')).toEqual([disabled]);
    expect(blockList().list()).toEqual([]);
  });

  it('refuses the addresses in BLOCKED, and applies MAX_CONNECTIONS_PER_IP', async () => {
    await boot({
      BLOCKED: '127.0.0.9, 10.0.0.0/8',
      MAX_CONNECTIONS_PER_IP: '1',
    });
    const blocked = await connect('127.0.0.9');
    await blocked.expectClose();
    expect(blocked.lines).toEqual(['You are banned from this server.']);

    await enter('Alice', '127.0.0.2');
    const second = await connect('127.0.0.2');
    await second.expectClose();
    // Not a ban: the transport's own message.
    expect(second.lines).toEqual(['Too many connections from your address.']);
  });

  it('reads its limits from the environment and names a bad variable', () => {
    expect(
      chatTransportOptions({
        PORT: '4100',
        MAX_CONNECTIONS: '200',
        MAX_CONNECTIONS_PER_IP: '3',
        IDLE_TIMEOUT_MS: '0',
        FIRST_INPUT_TIMEOUT_MS: '0',
        INPUT_LINES_PER_SECOND: '2',
        SHUTDOWN_MESSAGE: '',
        BLOCKED: '203.0.113.9,2001:db8::/32',
      }),
    ).toMatchObject({
      port: 4100,
      maxConnections: 200,
      maxConnectionsPerIp: 3,
      idleTimeout: false,
      firstInputTimeout: false,
      inputRate: { linesPerSecond: 2, lineBurst: 8 },
      messages: { shutdown: false },
      blockList: ['203.0.113.9', '2001:db8::/32'],
    });
    expect(chatTransportOptions({})).toMatchObject({
      port: 4000,
      idleTimeout: 1_800_000,
      // Ten minutes to type a name, not the library's one.
      firstInputTimeout: 600_000,
      messages: { shutdown: DEFAULT_SHUTDOWN_MESSAGE },
    });

    expect(() =>
      chatTransportOptions({ MAX_CONNECTIONS_PER_IP: 'ten' }),
    ).toThrow(
      'MAX_CONNECTIONS_PER_IP must be a whole number, at least 1; got "ten".',
    );
    expect(() => chatTransportOptions({ IDLE_TIMEOUT_MS: '-5' })).toThrow(
      /^IDLE_TIMEOUT_MS /,
    );
    expect(() => chatTransportOptions({ INPUT_LINES_PER_SECOND: '0' })).toThrow(
      /^INPUT_LINES_PER_SECOND /,
    );
    expect(() => chatTransportOptions({ MAX_CONNECTIONS: '1.5' })).toThrow(
      /^MAX_CONNECTIONS /,
    );
    expect(() => chatTransportOptions({ PORT: '70000' })).toThrow(
      'PORT must be a whole number, 0 to 65535; got "70000".',
    );
    expect(() => chatTransportOptions({ BLOCKED: '10.0.0.0/33' })).toThrow(
      /^BLOCKED .*"10\.0\.0\.0\/33"/,
    );
    expect(() =>
      chatTransportOptions({ FIRST_INPUT_TIMEOUT_MS: 'soon' }),
    ).toThrow(/^FIRST_INPUT_TIMEOUT_MS /);

    // No HTTP at all unless HEALTH_PORT is set.
    expect(chatHealthPort({})).toBeUndefined();
    expect(chatHealthPort({ HEALTH_PORT: '' })).toBeUndefined();
    expect(chatHealthPort({ HEALTH_PORT: '8080' })).toBe(8080);
    expect(() => chatHealthPort({ HEALTH_PORT: 'http' })).toThrow(
      /^HEALTH_PORT /,
    );
  });

  it('drops a newcomer who types no name within FIRST_INPUT_TIMEOUT_MS', async () => {
    await boot({ FIRST_INPUT_TIMEOUT_MS: '300' });
    const silent = await connect();
    expect(await silent.readLines(2)).toEqual([
      'Welcome to the chat server.',
      'What is your name?',
    ]);
    await silent.expectClose();
    expect(silent.lines.slice(2)).toEqual(['Disconnected for inactivity.']);
  });

  it('says goodbye to everyone on app.close()', async () => {
    const { app } = await boot();
    const alice = await enter('Alice');
    const bob = await enter('Bob', '127.0.0.2');
    await alice.expectLine('Bob has arrived.');
    const unnamed = await connect('127.0.0.3');
    expect(await unnamed.readLines(2)).toEqual([
      'Welcome to the chat server.',
      'What is your name?',
    ]);

    await app.close();
    for (const client of [alice, bob, unnamed]) {
      await client.expectClose();
    }
    // The goodbye, and no "has left" as everyone goes at once.
    expect(alice.lines.slice(4)).toEqual([DEFAULT_SHUTDOWN_MESSAGE]);
    expect(bob.lines.slice(3)).toEqual([DEFAULT_SHUTDOWN_MESSAGE]);
    expect(unnamed.lines.slice(2)).toEqual([DEFAULT_SHUTDOWN_MESSAGE]);
  });
});
