import 'reflect-metadata';
import { afterEach, beforeEach, describe, expect, it } from '@jest/globals';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import {
  spawnTypeScript,
  type WatchedChild,
} from '../../../test/support/child-process.js';
import { LineClient } from '../../../test/support/line-client.js';
import { RedisServer } from '../../../test/support/redis-server.js';
import { SERVER_STOPPING, WORKER_RESTARTING } from '../src/goodbye.js';

const PREFIX = 'cluster-sample';
const WELCOME = /^Welcome, (guest\w+): worker (\d+) serves you\./;
const LISTENING = /^Cluster listening on 127\.0\.0\.1:(\d+) with 2 workers/;
/** Cleanup only: SIGKILL for a primary that SIGTERM has not ended by then. */
const CLEANUP_KILL_AFTER_MS = 10_000;

/**
 * The sample as it runs: a real primary process with two workers sharing
 * one port, joined by Redis; players land on both workers and talk to each
 * other; SIGTERM stops everything gracefully.
 */
describe('sample 04-cluster', () => {
  let redis: RedisServer;
  /** The primary a test started, for afterEach to stop. */
  let launched: WatchedChild | undefined;
  const clients: LineClient[] = [];

  beforeEach(async () => {
    redis = await RedisServer.start();
  });

  afterEach(async () => {
    for (const client of clients.splice(0)) client.socket.destroy();
    // Its workers get SIGTERM from it; it ends (and its output, which the
    // workers share, closes) once they have all exited.
    await launched?.stop('SIGTERM', CLEANUP_KILL_AFTER_MS);
    launched = undefined;
    await redis.stop();
  }, 20_000);

  /**
   * Starts the primary and waits until it says both workers listen (or
   * fails at once with its output if it exits first); its port.
   */
  async function start(): Promise<{ primary: WatchedChild; port: number }> {
    const child = spawnTypeScript(
      'the primary',
      join('sample', '04-cluster', 'src', 'main.ts'),
      {
        HOST: '127.0.0.1',
        PORT: '0',
        WORKERS: '2',
        REDIS_URL: redis.url,
        REDIS_PREFIX: PREFIX,
        // Plain lines, without colours, to read.
        NO_COLOR: '1',
      },
      // Its crash reports go to stderr: awaited as lines too.
      { stderrLines: true },
    );
    launched = child;
    const line = await child.waitForLine(LISTENING);
    return { primary: child, port: Number(LISTENING.exec(line)?.[1]) };
  }

  async function player(port: number) {
    const client = await LineClient.connect(port);
    clients.push(client);
    const match = WELCOME.exec(await client.line(0));
    if (!match) throw new Error(`Unexpected welcome: ${client.lines[0]}`);
    return { client, name: match[1], worker: match[2] };
  }

  it('spreads players over the workers, who all talk as one game, and stops gracefully', async () => {
    const { primary, port } = await start();
    const players = [];
    for (let i = 0; i < 4; i++) players.push(await player(port));
    // Node's cluster hands connections to the workers in turn.
    expect(new Set(players.map((p) => p.worker)).size).toBe(2);
    const [alice, bob] = players;
    expect(bob.worker).not.toBe(alice.worker);

    alice.client.send('/name alice');
    await alice.client.expectLine('You are alice.');
    for (const other of players.slice(1)) {
      await other.client.expectLine(`${alice.name} is now alice.`);
    }
    // A mistyped command is answered, not said to everyone: the line said
    // after it reaches the others, and it never did before.
    alice.client.send('/dance');
    await alice.client.expectLine(
      'Unknown command /dance; the commands are /name, /who and /quit.',
    );
    alice.client.send('hello from one worker');
    for (const other of players.slice(1)) {
      await other.client.expectLine('alice: hello from one worker');
      expect(other.client.lines.join('\n')).not.toContain('/dance');
    }

    bob.client.send('/who');
    const who = await bob.client.expectLine(/^4 online: /);
    for (const p of players) {
      const name = p === alice ? 'alice' : p.name;
      expect(who).toContain(`${name} (worker ${p.worker})`);
    }

    // Ends once the primary has exited and all it wrote has been read: its
    // last line can come after its exit.
    expect(await primary.stop('SIGTERM')).toEqual({ code: 0, signal: null });
    for (const p of players) {
      await p.client.expectClosedByServer();
      expect(p.client.lines).toContain(SERVER_STOPPING);
      expect(p.client.lines).not.toContain(WORKER_RESTARTING);
    }
    expect(primary.lines.entries).toContain('All workers stopped.');
    const inspect = new Redis(redis.url);
    try {
      expect(await inspect.keys('*')).toEqual([]);
    } finally {
      inspect.disconnect();
    }
  }, 60_000);

  it('tells the players of a worker stopped alone that it restarts, and replaces it', async () => {
    const { primary, port } = await start();
    const first = await player(port);
    const second = await player(port);
    expect(second.worker).not.toBe(first.worker);

    process.kill(Number(first.worker), 'SIGTERM');
    await first.client.expectClosedByServer();
    expect(first.client.lines).toContain(WORKER_RESTARTING);
    expect(first.client.lines).not.toContain(SERVER_STOPPING);
    await primary.waitForLine(
      new RegExp(
        `^Worker ${first.worker} died \\(SIGTERM\\); starting another\\.`,
      ),
    );
    // The other worker's player was told nothing of it, and stays.
    await second.client.expectLine(
      /^A new worker \(pid \d+\) is serving players\.$/,
    );
    expect(second.client.lines.join('\n')).not.toMatch(/restarting|shutting/);
  }, 60_000);

  it('replaces a worker that dies, and the other worker’s players carry on', async () => {
    const { primary, port } = await start();
    const first = await player(port);
    const second = await player(port);
    expect(second.worker).not.toBe(first.worker);

    process.kill(Number(first.worker), 'SIGKILL');
    await first.client.expectClosedByServer();
    await primary.waitForLine(
      new RegExp(
        `^Worker ${first.worker} died \\(SIGKILL\\); starting another\\.`,
      ),
    );
    // The new worker announces itself to the others through Redis.
    await second.client.expectLine(
      /^A new worker \(pid \d+\) is serving players\.$/,
    );
    const third = await player(port);
    const fourth = await player(port);
    expect([third.worker, fourth.worker]).toContain(second.worker);
    third.client.send('anyone there?');
    await second.client.expectLine(`${third.name}: anyone there?`);
    await fourth.client.expectLine(`${third.name}: anyone there?`);
  }, 60_000);
});
