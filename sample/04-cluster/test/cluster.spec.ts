import 'reflect-metadata';
import { afterEach, beforeEach, describe, expect, it } from '@jest/globals';
import type { ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { Journal } from '../../../test/support/journal.js';
import { LineClient } from '../../../test/support/line-client.js';
import { spawnTypeScript } from '../../../test/support/redis-app-process.js';
import { RedisServer } from '../../../test/support/redis-server.js';

const PREFIX = 'cluster-sample';
const WELCOME = /^Welcome, (guest\w+): worker (\d+) serves you\./;
const GOODBYE = 'This worker is restarting; please reconnect.';

/**
 * The sample as it runs: a real primary process with two workers sharing
 * one port, joined by Redis; players land on both workers and talk to each
 * other; SIGTERM stops everything gracefully.
 */
describe('sample 04-cluster', () => {
  let redis: RedisServer;
  let primary: ChildProcess | undefined;
  let exited: Promise<[number | null, NodeJS.Signals | null]>;
  let output = new Journal();
  const clients: LineClient[] = [];

  beforeEach(async () => {
    redis = await RedisServer.start();
  });

  afterEach(async () => {
    for (const client of clients.splice(0)) client.socket.destroy();
    if (primary && primary.exitCode === null && primary.signalCode === null) {
      // Its workers get SIGTERM from it; SIGKILL would orphan them.
      primary.kill('SIGTERM');
      await Promise.race([
        exited,
        new Promise((resolve) => setTimeout(resolve, 10_000).unref()),
      ]);
      primary.kill('SIGKILL');
    }
    primary = undefined;
    await redis.stop();
  }, 20_000);

  /** Starts the primary and waits until both workers listen; the port. */
  async function start(): Promise<number> {
    primary = spawnTypeScript(join('sample', '04-cluster', 'src', 'main.ts'), {
      HOST: '127.0.0.1',
      PORT: '0',
      WORKERS: '2',
      REDIS_URL: redis.url,
      REDIS_PREFIX: PREFIX,
      // Plain lines, without colours, to read.
      NO_COLOR: '1',
    });
    exited = once(primary, 'exit') as typeof exited;
    output = new Journal();
    let pending = '';
    const keep = (chunk: Buffer) => {
      const parts = (pending + chunk.toString('utf8')).split('\n');
      pending = parts.pop() ?? '';
      for (const part of parts) output.record(part);
    };
    primary.stdout?.on('data', keep);
    primary.stderr?.on('data', keep);
    const listening = /^Cluster listening on 127\.0\.0\.1:(\d+) with 2 workers/;
    await output.waitFor(
      (lines) => lines.some((line) => listening.test(line)),
      'the cluster to listen',
      30_000,
    );
    const line = output.entries.find((l) => listening.test(l)) as string;
    return Number(listening.exec(line)?.[1]);
  }

  async function player(port: number) {
    const client = await LineClient.connect(port);
    clients.push(client);
    const match = WELCOME.exec(await client.line(0, 5000));
    if (!match) throw new Error(`Unexpected welcome: ${client.lines[0]}`);
    return { client, name: match[1], worker: match[2] };
  }

  it('spreads players over the workers, who all talk as one game, and stops gracefully', async () => {
    const port = await start();
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
    alice.client.send('hello from one worker');
    for (const other of players.slice(1)) {
      await other.client.expectLine('alice: hello from one worker');
    }

    bob.client.send('/who');
    const who = await bob.client.expectLine(/^4 online: /);
    for (const p of players) {
      const name = p === alice ? 'alice' : p.name;
      expect(who).toContain(`${name} (worker ${p.worker})`);
    }

    primary?.kill('SIGTERM');
    const [code] = await Promise.race([
      exited,
      new Promise<never>((_, reject) =>
        setTimeout(
          () => reject(new Error('the primary did not exit')),
          15_000,
        ).unref(),
      ),
    ]);
    expect(code).toBe(0);
    for (const p of players) {
      await p.client.expectClosedByServer(5000);
      expect(p.client.lines).toContain(GOODBYE);
    }
    expect(output.entries).toContain('All workers stopped.');
    const inspect = new Redis(redis.url);
    try {
      expect(await inspect.keys('*')).toEqual([]);
    } finally {
      inspect.disconnect();
    }
  }, 60_000);

  it('replaces a worker that dies, and the other worker’s players carry on', async () => {
    const port = await start();
    const first = await player(port);
    const second = await player(port);
    expect(second.worker).not.toBe(first.worker);

    process.kill(Number(first.worker), 'SIGKILL');
    await first.client.expectClosedByServer(5000);
    await output.waitFor(
      (lines) =>
        lines.some((l) =>
          l.startsWith(
            `Worker ${first.worker} died (SIGKILL); starting another.`,
          ),
        ),
      'the primary to replace the worker',
      5000,
    );
    // The new worker announces itself to the others through Redis.
    await second.client.expectLine(
      /^A new worker \(pid \d+\) is serving players\.$/,
      30_000,
    );
    const third = await player(port);
    const fourth = await player(port);
    expect([third.worker, fourth.worker]).toContain(second.worker);
    third.client.send('anyone there?');
    await second.client.expectLine(`${third.name}: anyone there?`);
    await fourth.client.expectLine(`${third.name}: anyone there?`);
  }, 60_000);
});
