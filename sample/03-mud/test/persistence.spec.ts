import 'reflect-metadata';
import { afterEach, beforeEach, describe, expect, it } from '@jest/globals';
import type { LogLevel } from '@nestjs/common';
import { getRepositoryToken } from '@nestjs/typeorm';
import {
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DataSource, type Repository } from 'typeorm';
import { TelnetOption } from '../../../lib/telnet/index.js';
import {
  type EarwaxTestClient,
  EarwaxTesting,
  type EarwaxTestServer,
} from '../../../lib/testing/index.js';
import { AccountEntity } from '../src/account.entity.js';
import { AppModule } from '../src/app.module.js';
import { CharacterEntity } from '../src/character.entity.js';
import { databasePath, DEFAULT_DATABASE } from '../src/database.options.js';
import { mudTransportOptions, SHUTDOWN_MESSAGE } from '../src/mud.options.js';
import { hashPassword, verifyPassword } from '../src/password-hash.js';

const ATTIC = [
  '[Tavern Attic]',
  'Dust, old crates and a round window under the sloping roof. The ladder leads down.',
  'Exits: down.',
];
const MARKET = [
  '[Market Street]',
  'Empty stalls lean against each other, waiting for market day. The square lies west.',
  'Exits: west.',
];
const SQUARE = [
  '[Town Square]',
  'Cobblestones ring a dry fountain. A tavern door stands to the north and a market street runs east.',
  'Exits: north, east.',
];

/** A client that agrees to the password echo and to EOR prompts. */
const TELNET = { accept: [TelnetOption.ECHO, TelnetOption.EOR] };

describe('sample 03-mud keeps its players in a SQLite file', () => {
  let dir: string;
  let database: string;
  let server: EarwaxTestServer | undefined;

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'earwax-mud-persist-'));
    // A folder that does not exist yet: the game makes it.
    database = join(dir, 'data', 'mud.sqlite');
  });

  afterEach(async () => {
    await server?.close();
    server = undefined;
    rmSync(dir, { recursive: true, force: true });
  });

  /**
   * Boots the game on the test's database file, as `MUD_DB` would; a test
   * that expects errors says which levels to print.
   */
  async function boot(
    printLogs?: readonly LogLevel[],
  ): Promise<EarwaxTestServer> {
    server = await EarwaxTesting.createServer(AppModule.forRoot({ database }), {
      transport: { ...mudTransportOptions({}), port: 0 },
      printLogs,
    });
    return server;
  }

  /**
   * Stops the game gracefully, as SIGTERM does (`app.close()`: the clients
   * stay open to hear the goodbye), then lets go of the test clients.
   */
  async function stop(...playing: EarwaxTestClient[]): Promise<void> {
    await server?.app.close();
    for (const client of playing) {
      await client.expectClose();
      expect(client.unread).toEqual([SHUTDOWN_MESSAGE]);
    }
    await server?.close();
    server = undefined;
  }

  /** Sends a line and returns the response, up to and with its prompt. */
  function ask(client: EarwaxTestClient, line: string): Promise<string[]> {
    client.send(line);
    return client.telnet.readPrompt();
  }

  /** Connects and answers `Name:` with a name; returns what came back. */
  async function named(
    name: string,
    from?: string,
  ): Promise<{ client: EarwaxTestClient; answer: string[] }> {
    if (!server) throw new Error('boot() first');
    const client = await server.connect({ telnet: TELNET, from });
    expect((await client.telnet.readPrompt()).at(-1)).toBe('Name: ');
    return { client, answer: await ask(client, name) };
  }

  /** Opens the database file apart from the game, to see what is on disk. */
  async function onDisk<T>(read: (data: DataSource) => Promise<T>): Promise<T> {
    const data = new DataSource({
      type: 'sqljs',
      location: database,
      entities: [AccountEntity, CharacterEntity],
    });
    await data.initialize();
    try {
      return await read(data);
    } finally {
      await data.destroy();
    }
  }

  it('finds a character where it was after a restart, with its password only', async () => {
    await boot();
    const first = await named('alice');
    expect(first.answer).toEqual([
      'Alice is a new character. Choose a password (4 characters or more).',
      'Password: ',
    ]);
    const alice = first.client;
    expect((await ask(alice, 'attic-key')).slice(1, 2)).toEqual([
      'Welcome, Alice! Your character has been created.',
    ]);
    expect((await ask(alice, 'north'))[0]).toBe('You go north.');
    expect(await ask(alice, 'up')).toEqual(['You go up.', ...ATTIC, '> ']);

    // Saved on the move, before anyone leaves: the file says so now.
    expect(
      await onDisk((data) =>
        data.getRepository(CharacterEntity).findOneBy({ key: 'alice' }),
      ),
    ).toEqual({ key: 'alice', name: 'Alice', room: 4 });

    // Bob walks east and quits: saved at logout too.
    const bob = (await named('Bob', '127.0.0.2')).client;
    await ask(bob, 'bob-secret');
    await ask(bob, 'e');
    bob.send('quit');
    await bob.expectClose();

    // The password is stored as a scrypt hash: not in the file, anywhere.
    const file = readFileSync(database);
    expect(file.includes('attic-key')).toBe(false);
    expect(file.includes('bob-secret')).toBe(false);
    const stored = await onDisk((data) =>
      data.getRepository(AccountEntity).findOneByOrFail({ key: 'alice' }),
    );
    expect(stored.name).toBe('Alice');
    expect(stored.passwordHash).toMatch(
      /^\$scrypt\$ln=14,r=8,p=1\$[A-Za-z0-9+/]{22}\$[A-Za-z0-9+/]{43}$/,
    );
    expect(await verifyPassword('attic-key', stored.passwordHash)).toBe(true);

    // Alice is still playing when the server stops.
    await stop(alice);

    // A new server on the same file, which is a SQLite database.
    expect(databasePath({ MUD_DB: database })).toBe(database);
    await boot();
    const again = await named('ALICE');
    expect(again.answer).toEqual(['Hello again, Alice.', 'Password: ']);
    expect(await ask(again.client, 'Attic-Key')).toEqual([
      '',
      'Wrong password.',
      'Name: ',
    ]);
    expect(await ask(again.client, 'alice')).toEqual([
      'Hello again, Alice.',
      'Password: ',
    ]);
    expect(await ask(again.client, 'attic-key')).toEqual([
      '',
      'Welcome back, Alice!',
      'Type help for the commands.',
      ...ATTIC,
      '> ',
    ]);
    expect(await ask(again.client, 'who')).toEqual([
      'Players online (1):',
      '  Alice - Tavern Attic',
      '> ',
    ]);

    const bobAgain = await named('bob', '127.0.0.2');
    expect(bobAgain.answer[0]).toBe('Hello again, Bob.');
    expect((await ask(bobAgain.client, 'bob-secret')).slice(3, -1)).toEqual(
      MARKET,
    );
  });

  it('saves a character at logout when its move could not be written, and the game goes on', async () => {
    // The failed write is logged as an error: expected here.
    const game = await boot(['fatal']);
    const cleo = (await named('Cleo')).client;
    await ask(cleo, 'cleo-pw');
    // The file is written through `<file>.tmp`: a folder in its place
    // makes the next write fail.
    mkdirSync(`${database}.tmp`);
    expect((await ask(cleo, 'e')).slice(0, -1)).toEqual([
      'You go east.',
      ...MARKET,
    ]);
    await game.logs.waitFor(/^Could not save Cleo: /, { level: 'error' });
    expect(
      await onDisk((data) =>
        data.getRepository(CharacterEntity).findOneBy({ key: 'cleo' }),
      ),
    ).toMatchObject({ room: 1 });

    rmSync(`${database}.tmp`, { recursive: true });
    cleo.send('quit');
    await cleo.expectClose();
    await stop();
    await boot();
    const again = (await named('Cleo')).client;
    expect((await ask(again, 'cleo-pw')).slice(3, -1)).toEqual(MARKET);
  });

  it('brings a hash made with older scrypt parameters up to date at login', async () => {
    const { app } = await boot();
    const accounts = app.get<Repository<AccountEntity>>(
      getRepositoryToken(AccountEntity),
    );
    const old = await hashPassword('old-pw', { ln: 10, r: 8, p: 1 });
    await accounts.insert({ key: 'olga', name: 'Olga', passwordHash: old });

    const olga = await named('Olga');
    expect(olga.answer[0]).toBe('Hello again, Olga.');
    // No character yet for this account: made at the start.
    expect((await ask(olga.client, 'old-pw')).slice(1, 6)).toEqual([
      'Welcome back, Olga!',
      'Type help for the commands.',
      ...SQUARE,
    ]);
    const renewed = await accounts.findOneByOrFail({ key: 'olga' });
    expect(renewed.passwordHash).toMatch(/^\$scrypt\$ln=14,r=8,p=1\$/);
    expect(await verifyPassword('old-pw', renewed.passwordHash)).toBe(true);
    expect(await verifyPassword('old-pw', old)).toBe(true);
    expect(await verifyPassword('wrong', old)).toBe(false);
    expect(await verifyPassword('old-pw', 'old-pw')).toBe(false);
  });

  it('puts a character saved in a room the world no longer has at the start', async () => {
    const { app } = await boot();
    const first = (await named('Gus')).client;
    await ask(first, 'gus-pw');
    first.send('quit');
    await first.expectClose();
    await app
      .get<Repository<CharacterEntity>>(getRepositoryToken(CharacterEntity))
      .update({ key: 'gus' }, { room: 99 });

    const gus = (await named('Gus')).client;
    expect((await ask(gus, 'gus-pw')).slice(3, -1)).toEqual(SQUARE);
  });

  it('reads the file from MUD_DB, by default under data/', () => {
    expect(databasePath({ MUD_DB: '/var/lib/mud/players.sqlite' })).toBe(
      '/var/lib/mud/players.sqlite',
    );
    expect(databasePath({})).toBe(DEFAULT_DATABASE);
    expect(databasePath({ MUD_DB: ' ' })).toBe(DEFAULT_DATABASE);
    expect(DEFAULT_DATABASE).toBe('data/03-mud.sqlite');

    // A file that is there must be a SQLite database (or empty).
    const csv = join(dir, 'players.csv');
    writeFileSync(csv, 'name,password\nalice,x\n');
    expect(() => databasePath({ MUD_DB: csv })).toThrow(
      `MUD_DB: ${csv} is not a SQLite database`,
    );
    expect(() => databasePath({ MUD_DB: dir })).toThrow(
      `MUD_DB: cannot read ${dir}: EISDIR`,
    );
    const empty = join(dir, 'empty.sqlite');
    writeFileSync(empty, '');
    expect(databasePath({ MUD_DB: empty })).toBe(empty);
  });
});
