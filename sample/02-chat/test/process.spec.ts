import { afterEach, beforeAll, describe, expect, it } from '@jest/globals';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  type ChildEnd,
  WatchedChild,
} from '../../../test/support/child-process.js';
import { LineClient } from '../../../test/support/line-client.js';
import { DEFAULT_SHUTDOWN_MESSAGE } from '../src/chat.options.js';

/**
 * The chat as `npm start` runs it: `sample/run.mjs` builds (only what
 * changed), starts the server as its child, passes SIGTERM, SIGINT and
 * SIGHUP on, and ends as the server did, so that npm (or a shell, or a
 * supervisor) never returns while the server runs, and never leaves it
 * running. Real processes, real signals, a real player on the game port.
 */

const LISTENING = /Listening on 127\.0\.0\.1:(\d+)$/;
const RUNNING = /^\[sample\] running 02-chat \(pid (\d+)\)/;
const HEALTH = /GET http:\/\/127\.0\.0\.1:(\d+)\/health$/;
/** Cleanup only: SIGKILL for a process group SIGTERM has not ended by then. */
const CLEANUP_KILL_AFTER_MS = 10_000;
/** The first build of lib/ and the samples: long on a busy machine. */
const BUILD_TIMEOUT_MS = 240_000;

/** The processes a test started, each leading its own process group. */
const started: WatchedChild[] = [];

afterEach(async () => {
  for (const child of started.splice(0)) {
    if (!child.running) continue;
    killGroup(child, 'SIGTERM');
    const timer = setTimeout(
      () => killGroup(child, 'SIGKILL'),
      CLEANUP_KILL_AFTER_MS,
    );
    await child.closed;
    clearTimeout(timer);
  }
}, 20_000);

/** Signals every process of the group `child` leads (as a terminal does). */
function killGroup(child: WatchedChild, signal: NodeJS.Signals): void {
  try {
    process.kill(-(child.child.pid as number), signal);
  } catch {
    // The group is gone already.
  }
}

/**
 * Starts `command` in a process group of its own (as a shell's job is), on
 * a free port, with plain log lines.
 */
function launch(
  name: string,
  command: string,
  args: string[],
  env: NodeJS.ProcessEnv = {},
): WatchedChild {
  const child = WatchedChild.spawn(name, command, args, {
    cwd: process.cwd(),
    detached: true,
    stderrLines: true,
    env: {
      ...process.env,
      HOST: '127.0.0.1',
      PORT: '0',
      NO_COLOR: '1',
      ...env,
    },
  });
  started.push(child);
  return child;
}

/** Waits until the chat listens; its game port and the server's pid. */
async function listening(
  runner: WatchedChild,
): Promise<{ port: number; server: number }> {
  const server = Number(RUNNING.exec(await runner.waitForLine(RUNNING))?.[1]);
  const port = Number(LISTENING.exec(await runner.waitForLine(LISTENING))?.[1]);
  return { port, server };
}

/** A named player in the lobby. */
async function player(port: number, name: string): Promise<LineClient> {
  const client = await LineClient.connect(port);
  await client.expectLine('What is your name?');
  client.send(name);
  await client.expectLine(/^Hello, /);
  return client;
}

/** Whether a process with this pid exists. */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ESRCH') return false;
    throw err;
  }
}

/** The error connecting to `port` gives (none: it was accepted). */
async function connectError(port: number): Promise<string | undefined> {
  try {
    const client = await LineClient.connect(port);
    client.socket.destroy();
    return undefined;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code;
  }
}

/** The Dockerfile's HEALTHCHECK command in docs/deployment.md, as argv. */
function healthCheckCommand(): string[] {
  const page = readFileSync(join('docs', 'deployment.md'), 'utf8');
  const line = /^HEALTHCHECK .*?CMD (\[.*\])$/m.exec(page);
  if (!line) throw new Error('No HEALTHCHECK ... CMD [...] line in the page');
  return JSON.parse(line[1]) as string[];
}

/** Runs the HEALTHCHECK command against `healthPort`; how it ended. */
function runHealthCheck(healthPort: number): Promise<ChildEnd> {
  const [command, ...args] = healthCheckCommand();
  const check = WatchedChild.spawn('the HEALTHCHECK', command, args, {
    env: { ...process.env, HEALTH_PORT: String(healthPort) },
  });
  return check.waitForEnd();
}

describe('sample 02-chat as a process (npm start, sample/run.mjs)', () => {
  beforeAll(async () => {
    // The build run.mjs runs, once, so that every start below finds it
    // up to date (and says so).
    const build = WatchedChild.spawn(
      'tsc -b',
      process.execPath,
      [
        join('node_modules', 'typescript', 'bin', 'tsc'),
        '-b',
        join('sample', 'tsconfig.json'),
        '--incremental',
      ],
      { stderrLines: true },
    );
    expect(await build.waitForEnd()).toEqual({ code: 0, signal: null });
  }, BUILD_TIMEOUT_MS);

  it('npm start: SIGTERM to npm stops the server gracefully, and npm ends with it', async () => {
    const npm = launch('npm start', 'npm', ['start']);
    const { port, server } = await listening(npm);
    // Built by beforeAll: nothing to do but check.
    expect(npm.lines.entries).toContainEqual(
      expect.stringMatching(/^\[sample\] up to date \(checked in [\d.]+ s\)$/),
    );
    const alice = await player(port, 'alice');

    // Only npm's pid, as `kill -TERM` or a supervisor would.
    npm.signal('SIGTERM');
    await alice.expectLine(DEFAULT_SHUTDOWN_MESSAGE);
    await alice.expectClosedByServer();
    // npm ends as the server did: killed by the signal it was sent.
    expect(await npm.waitForEnd()).toEqual({ code: null, signal: 'SIGTERM' });
    expect(npm.lines.entries).toContain(
      `[sample] SIGTERM: stopping 02-chat (pid ${server})`,
    );
    expect(npm.lines.entries).toContain('[sample] 02-chat ended (SIGTERM)');
    // No orphan: the server is gone, its port closed.
    expect(alive(server)).toBe(false);
    expect(await connectError(port)).toBe('ECONNREFUSED');
  }, 60_000);

  it('Ctrl-C (SIGINT to the whole process group) reaches the server once, and the runner ends after it', async () => {
    const runner = launch('run.mjs', process.execPath, [
      join('sample', 'run.mjs'),
      '02-chat',
    ]);
    const { port, server } = await listening(runner);
    const alice = await player(port, 'alice');

    killGroup(runner, 'SIGINT');
    await alice.expectLine(DEFAULT_SHUTDOWN_MESSAGE);
    expect(await runner.waitForEnd()).toEqual({
      code: null,
      signal: 'SIGINT',
    });
    const stopping = runner.lines.entries.filter((line) =>
      line.startsWith('[sample] SIGINT: stopping'),
    );
    expect(stopping).toEqual([
      `[sample] SIGINT: stopping 02-chat (pid ${server})`,
    ]);
    expect(alive(server)).toBe(false);
    expect(await connectError(port)).toBe('ECONNREFUSED');
  }, 60_000);

  it('SIGHUP to the runner stops the server too', async () => {
    const runner = launch('run.mjs', process.execPath, [
      join('sample', 'run.mjs'),
      '02-chat',
    ]);
    const { port, server } = await listening(runner);
    runner.signal('SIGHUP');
    expect(await runner.waitForEnd()).toEqual({
      code: null,
      signal: 'SIGHUP',
    });
    expect(alive(server)).toBe(false);
    expect(await connectError(port)).toBe('ECONNREFUSED');
  }, 60_000);

  it('ends with the exit code of a server that fails to start', async () => {
    const runner = launch(
      'run.mjs',
      process.execPath,
      [join('sample', 'run.mjs'), '02-chat'],
      { PORT: 'four thousand' },
    );
    expect(await runner.waitForEnd()).toEqual({ code: 1, signal: null });
    expect(runner.lines.entries).toContain(
      'PORT must be a whole number, 0 to 65535; got "four thousand".',
    );
    expect(runner.lines.entries).toContain(
      '[sample] 02-chat ended (exit code 1)',
    );
  }, 60_000);

  it('HEALTH_PORT: the HEALTHCHECK of docs/deployment.md passes while the game listens, and fails once it is gone', async () => {
    const runner = launch(
      'run.mjs',
      process.execPath,
      [join('sample', 'run.mjs'), '02-chat'],
      { HEALTH_PORT: '0' },
    );
    const { port } = await listening(runner);
    const healthPort = Number(
      HEALTH.exec(await runner.waitForLine(HEALTH))?.[1],
    );
    expect(healthPort).not.toBe(port);
    expect(await runHealthCheck(healthPort)).toEqual({
      code: 0,
      signal: null,
    });

    runner.signal('SIGTERM');
    expect(await runner.waitForEnd()).toEqual({
      code: null,
      signal: 'SIGTERM',
    });
    expect((await runHealthCheck(healthPort)).code).toBe(1);
  }, 60_000);
});
