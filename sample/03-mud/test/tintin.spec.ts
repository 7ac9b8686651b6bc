import 'reflect-metadata';
import { afterEach, describe, expect, it } from '@jest/globals';
import {
  existsSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConnectionRegistry } from '../../../lib/index.js';
import { bootEarwax, type Booted } from '../../../test/support/boot.js';
import { WatchedChild } from '../../../test/support/child-process.js';
import { AppModule } from '../src/app.module.js';
import { nameOf, type MudSession } from '../src/mud-session.js';
import { mudTransportOptions } from '../src/mud.options.js';

/** Where Debian's tintin++ package puts the client (and where else it may be). */
const TINTIN_PATHS = [
  '/usr/games/tt++',
  '/usr/bin/tt++',
  '/usr/local/bin/tt++',
];

/**
 * A TinTin++ script: log in as Tina (a new character), look, and quit when
 * the server says so; the session's text goes to `logFile`. `#end` when the
 * session dies. No `#delay` ends it after a while: on a busy machine that
 * could come first; if the test fails, afterEach kills tt++.
 */
function script(port: number, logFile: string): string {
  return [
    '#config {LOG} {PLAIN}',
    `#event {SESSION CONNECTED} {#log {overwrite} {${logFile}}}`,
    '#event {SESSION DISCONNECTED} {#end}',
    '#action {^Name:} {#send {Tina}}',
    '#action {^Password:} {#send {tintin-pw}}',
    '#action {^Welcome, Tina!} {#send {look}}',
    '#action {^The test is over: quit now.} {#send {quit}}',
    `#session mud 127.0.0.1 ${port}`,
    '',
  ].join('\n');
}

describe('sample 03-mud with a real MUD client', () => {
  let booted: Booted | undefined;
  let child: WatchedChild | undefined;
  let dir: string | undefined;

  afterEach(async () => {
    await child?.stop('SIGKILL');
    child = undefined;
    await booted?.app.close();
    booted = undefined;
    if (dir) rmSync(dir, { recursive: true, force: true });
    dir = undefined;
  });

  it('TinTin++ negotiates its terminal type, logs in and sees the room', async () => {
    const tintin = TINTIN_PATHS.find((path) => existsSync(path));
    if (tintin === undefined) {
      throw new Error(
        `TinTin++ (tt++) is not installed (looked in ${TINTIN_PATHS.join(', ')}): install the Debian package with \`apt-get install tintin++\` (.ci/run does).`,
      );
    }
    dir = mkdtempSync(join(tmpdir(), 'earwax-tintin-'));
    booted = await bootEarwax(
      { imports: [AppModule.forRoot({ database: join(dir, 'mud.sqlite') })] },
      { ...mudTransportOptions({}), port: 0 },
    );
    const { logs, port } = booted;
    const logFile = join(dir, 'session.log');
    const scriptFile = join(dir, 'login.tin');
    writeFileSync(scriptFile, script(port, logFile));

    // -H: no terminal needed (stdin from /dev/null); -G: no greeting.
    // HOME is the temporary folder, where tt++ keeps its files.
    const tt = WatchedChild.spawn('tt++', tintin, ['-G', '-H', scriptFile], {
      cwd: dir,
      env: { ...process.env, HOME: dir },
    });
    child = tt;

    // TinTin++ answers TTYPE: its name, then its terminal, then MTTS. (At
    // once, with its output, if tt++ ends first.)
    await tt.whileRunning(
      logs.waitFor(/Terminal: TINTIN\+\+, /),
      'the terminal type',
    );
    await tt.whileRunning(
      logs.waitFor('Tina created a character and logged in.'),
      'Tina to log in',
    );
    const registry = booted.app.get(ConnectionRegistry);
    const [tina] = registry.filter((ctx) => nameOf(ctx) === 'Tina');
    expect(tina).toBeDefined();
    expect((tina.data as MudSession).terminal?.client).toMatch(/TINTIN/);
    expect(tina.terminal?.mtts).toEqual(expect.any(Number));
    // Sent after the welcome, so the client has sent `look` before this.
    tina.sendString('The test is over: quit now.');

    // It quits on that line: ends once it has, and its output is read.
    const end = await tt.waitForEnd();
    // What it wrote shows in the failure, if any.
    expect({ end, tt: tt.describe() }).toMatchObject({
      end: { code: 0, signal: null },
    });
    await logs.waitFor('Tina disconnected (quit).');

    const log = readFileSync(logFile, 'utf8');
    const welcome = log.indexOf(
      'Welcome, Tina! Your character has been created.',
    );
    expect(welcome).toBeGreaterThan(-1);
    // The room on login, then again in answer to `look`, then the goodbye.
    const room =
      '[Town Square]\nCobblestones ring a dry fountain. A tavern door stands to the north and a market street runs east.\nExits: north, east.\n';
    const onLogin = log.indexOf(room, welcome);
    const onLook = log.indexOf(room, onLogin + room.length);
    const goodbye = log.indexOf('Goodbye, Tina. Come back soon!');
    expect(onLogin).toBeGreaterThan(welcome);
    expect(onLook).toBeGreaterThan(onLogin);
    expect(goodbye).toBeGreaterThan(onLook);
  }, 15_000);
});
