import 'reflect-metadata';
import {
  afterAll,
  afterEach,
  beforeAll,
  describe,
  expect,
  it,
} from '@jest/globals';
import { Redis } from 'ioredis';
import { LineClient } from '../support/line-client.js';
import { AppProcess } from '../support/redis-app-process.js';
import { eventually } from '../support/redis-eventually.js';
import { Player } from '../support/redis-player.js';
import { RedisServer } from '../support/redis-server.js';

/**
 * Three app processes of one game (test/support/redis-app-child.ts), each on
 * its own port, joined by a RedisAdapter over a real redis-server; players
 * on each drive them with commands. Everything a game does across processes
 * is checked from the players' side: room and global broadcasts, kicks and
 * room changes by id, bans, presence, server-side events, a Redis outage,
 * a crashed process, and the keys left behind.
 */

const PREFIX = 'earwax-e2e';
const HEARTBEAT_MS = 300;
const PRESENCE_TTL_MS = 1200;

describe('RedisAdapter across three processes', () => {
  let redis: RedisServer;
  let inspect: Redis;
  let apps: AppProcess[] = [];
  const players: Player[] = [];
  const sockets: LineClient[] = [];

  beforeAll(async () => {
    redis = await RedisServer.start();
    inspect = new Redis(redis.url, {
      lazyConnect: true,
      retryStrategy: () => 100,
    });
    inspect.on('error', () => undefined);
    await inspect.connect();
    apps = await Promise.all(
      ['app1', 'app2', 'app3'].map((nodeId) =>
        AppProcess.start({
          redisUrl: redis.url,
          prefix: PREFIX,
          nodeId,
          heartbeatMs: HEARTBEAT_MS,
          presenceTtlMs: PRESENCE_TTL_MS,
          requestTimeoutMs: 3000,
        }),
      ),
    );
    for (const app of apps) {
      await app.waitFor(/RedisAdapter:Joined the cluster as app\d/);
    }
  }, 60_000);

  afterEach(async () => {
    await Promise.all(players.splice(0).map((p) => p.leave()));
    for (const socket of sockets.splice(0)) socket.socket.destroy();
    if (!redis.running) {
      await redis.restart();
      for (const app of apps) {
        await app.waitFor(/RedisAdapter:Redis is back/);
      }
    }
    // No ban outlives its test (one that failed half-way included)...
    const running = apps.filter((app) => app.running);
    if (running.length === 0) return;
    const admins = await Promise.all(
      running.map((app) => Player.join(app.port)),
    );
    await admins[0].ask('clear', /^cleared$/);
    for (const admin of admins) {
      await eventually(
        () => admin.ask('bans', /^bans /),
        (answer) => answer === 'bans -',
        `${admin.node} to have no ban`,
      );
    }
    await Promise.all(admins.map((admin) => admin.leave()));
    // ...and every process's presence is empty again.
    await eventually(
      () => presenceKeys(),
      (keys) => keys.length === 0,
      'every presence hash to be gone',
    );
  });

  afterAll(async () => {
    for (const player of players.splice(0)) player.client.socket.destroy();
    await Promise.all(apps.map((app) => app.kill()));
    inspect?.disconnect();
    await redis?.stop();
  }, 30_000);

  async function join(app: AppProcess, from?: string): Promise<Player> {
    const player = await Player.join(app.port, from);
    players.push(player);
    return player;
  }

  function presenceKeys(): Promise<string[]> {
    return inspect.keys(`{${PREFIX}}:presence:*`);
  }

  /** Waits until `player`'s process counts `expected` (in `room`). */
  function counts(player: Player, expected: number, room = '') {
    const command = room === '' ? 'count' : `count ${room}`;
    return eventually(
      () => player.ask(command, /^count /),
      (answer) => answer === `count ${expected}`,
      `${player.node} to count ${expected}${room && ` in ${room}`}`,
    );
  }

  it('lists and counts every process’s players, with their rooms and shared state', async () => {
    const [a, b, c] = [
      await join(apps[0]),
      await join(apps[1]),
      await join(apps[2]),
    ];
    expect([a.node, b.node, c.node]).toEqual(['app1', 'app2', 'app3']);
    await a.ask('name alice', /^named true$/);
    await b.ask('name bob', /^named true$/);
    await c.ask('name carol', /^named true$/);
    await a.ask('join hall', /^joined hall true$/);
    await c.ask('join hall', /^joined hall true$/);

    for (const player of [a, b, c]) await counts(player, 3);
    await counts(b, 2, 'hall');
    await eventually(
      () => b.ask('names', /^names /),
      (answer) => answer === 'names alice,bob,carol',
      'every shared name',
    );
    expect(await b.ask('who', /^who /)).toBe(
      `who ${[a.id, b.id, c.id].sort().join(',')}`,
    );
    expect(await b.ask('who hall', /^who /)).toBe(
      `who ${[a.id, c.id].sort().join(',')}`,
    );

    await c.leave();
    await counts(a, 2);
    await counts(a, 1, 'hall');
  });

  it('delivers a room broadcast to its members on every process, and to nobody else', async () => {
    const a = await join(apps[0]);
    const b = await join(apps[1]);
    const c = await join(apps[2]);
    const a2 = await join(apps[0]);
    await a.ask('join hall', /^joined/);
    await b.ask('join hall', /^joined/);
    await a2.ask('join hall', /^joined/);
    await c.ask('join yard', /^joined/);
    await counts(c, 3, 'hall');

    await a.ask('say hall hello', /^said hall$/);
    await b.hears('[hall] hello');
    await a2.hears('[hall] hello');
    // One publisher's messages arrive in order: once c has the marker sent
    // after the room message, it would have had that too.
    await a.ask('all marker', /^sent all$/);
    await c.hears('marker');
    await a.hears('marker');
    expect(c.lines).not.toContain('[hall] hello');
    expect(a.lines).not.toContain('[hall] hello');
  });

  it('broadcasts to all, and to all but one, across processes', async () => {
    const a = await join(apps[0]);
    const b = await join(apps[1]);
    const c = await join(apps[2]);

    await a.ask('all hi everyone', /^sent all$/);
    for (const player of [a, b, c]) await player.hears('hi everyone');

    await b.ask('others not you b', /^sent others$/);
    await a.hears('not you b');
    await c.hears('not you b');
    await b.ask('all marker', /^sent all$/);
    await b.hears('marker');
    expect(b.lines).not.toContain('not you b');
  });

  it('kicks, and moves between rooms, a player of another process by id', async () => {
    const a = await join(apps[0]);
    const b = await join(apps[1]);
    const c = await join(apps[2]);
    await counts(a, 3);

    expect(await a.ask(`pull ${b.id} lobby`, /^pull /)).toBe('pull true');
    expect(await a.ask(`pull ${b.id} lobby`, /^pull /)).toBe('pull false');
    await counts(c, 1, 'lobby');
    await c.ask('say lobby come in', /^said/);
    await b.hears('[lobby] come in');
    expect(await a.ask(`push ${b.id} lobby`, /^push /)).toBe('push true');
    await counts(c, 0, 'lobby');

    expect(await a.ask(`kick ${c.id}`, /^kick /)).toBe('kick true');
    await c.client.expectClosedByServer();
    await counts(a, 2);
    expect(await a.ask('kick 00000000-no-such-id', /^kick /)).toBe(
      'kick false',
    );
    expect(await b.ask(`kick ${a.id}`, /^kick /)).toBe('kick true');
    await a.client.expectClosedByServer();
  });

  it('applies a ban made on one process on every process at once, and its unban', async () => {
    const admin = await join(apps[0]);
    const victim = await join(apps[1], '127.0.0.5');
    const bystander = await join(apps[2], '127.0.0.6');

    expect(await admin.ask('ban 127.0.0.5', /^banned /)).toBe(
      'banned 127.0.0.5',
    );
    // The live connection on another process is kicked...
    await victim.client.expectClosedByServer();
    // ...and new ones are refused everywhere, by each process's local list.
    for (const app of apps) {
      await app.waitFor(/BlockList:Banned 127\.0\.0\.5/);
      const refused = await LineClient.connect(app.port, '127.0.0.5');
      sockets.push(refused);
      await refused.expectClosedByServer();
      expect(refused.lines).toEqual([]);
    }
    expect(await bystander.ask('bans', /^bans /)).toBe('bans 127.0.0.5');
    expect(bystander.client.socket.destroyed).toBe(false);

    expect(await bystander.ask('unban 127.0.0.5', /^unbanned /)).toBe(
      'unbanned true',
    );
    for (const app of apps) {
      await app.waitFor(/BlockList:Unbanned 127\.0\.0\.5/);
      const back = await join(app, '127.0.0.5');
      expect(back.node).toBe(app.nodeId);
    }
    expect(await inspect.keys(`{${PREFIX}}:ban:*`)).toEqual([]);
  });

  it('ends a temporary ban on every process, and in Redis, when it expires', async () => {
    const admin = await join(apps[2]);
    const marks = apps.map((app) => app.mark());
    expect(await admin.ask('ban 127.0.0.7 2500', /^banned /)).toBe(
      'banned 127.0.0.7',
    );
    for (const [i, app] of apps.entries()) {
      await app.waitFor(/BlockList:Banned 127\.0\.0\.7/, marks[i]);
    }
    // Stored before it was published: its key expires with the ban.
    const key = `{${PREFIX}}:ban:127.0.0.7`;
    const ttl = await inspect.pttl(key);
    expect(ttl).toBeGreaterThan(0);
    expect(ttl).toBeLessThanOrEqual(2500);
    const refused = await LineClient.connect(apps[0].port, '127.0.0.7');
    sockets.push(refused);
    await refused.expectClosedByServer();

    for (const [i, app] of apps.entries()) {
      await app.waitFor(/BlockList:Ban of 127\.0\.0\.7 expired/, marks[i]);
      expect((await join(app, '127.0.0.7')).node).toBe(app.nodeId);
    }
    expect(await inspect.exists(key)).toBe(0);
  });

  it('sends server-side events to the other processes', async () => {
    const a = await join(apps[0]);
    const b = await join(apps[1]);
    const c = await join(apps[2]);
    expect(await a.ask('emit tick {"n":1}', /^emitted /)).toBe('emitted true');
    await b.hears('event tick {"n":1} from app1');
    await c.hears('event tick {"n":1} from app1');
    // Not to its own process: b's event, sent after, reaches a, and a never
    // had its own.
    await b.ask('emit tock null', /^emitted/);
    await a.hears('event tock null from app2');
    expect(a.lines.some((line) => line.startsWith('event tick'))).toBe(false);
  });

  it('keeps serving each process’s players while Redis is down, and resyncs when it returns', async () => {
    const a = await join(apps[0]);
    const a2 = await join(apps[0]);
    const c = await join(apps[2]);
    await counts(c, 3);
    // A ban from before the outage, which the restarted (empty) Redis will
    // not have.
    expect(await c.ask('ban 127.0.0.9', /^banned/)).toBe('banned 127.0.0.9');
    for (const app of apps) await app.waitFor(/BlockList:Banned 127\.0\.0\.9/);
    const marks = apps.map((app) => app.mark());

    await redis.kill();
    for (const [i, app] of apps.entries()) {
      await app.waitFor(/RedisAdapter:Lost Redis/, marks[i]);
    }
    // Local service goes on: broadcasts within a process, new players,
    // bans (local for now).
    await a.ask('all during the outage', /^sent all$/);
    await a2.hears('during the outage');
    const late = await join(apps[1]);
    expect(late.node).toBe('app2');
    expect(await a.ask('ban 127.0.0.8', /^banned/)).toBe('banned 127.0.0.8');
    const refused = await LineClient.connect(apps[0].port, '127.0.0.8');
    sockets.push(refused);
    await refused.expectClosedByServer();
    // Cluster-wide questions say so instead of answering wrongly.
    expect(await a.ask('count', /^(count|unavailable)/)).toBe(
      'unavailable count',
    );
    expect(await a.ask(`kick ${c.id}`, /^(kick|unavailable)/)).toBe(
      'unavailable kick',
    );
    expect(await a.ask('emit lost {}', /^emitted/)).toBe('emitted false');

    await redis.restart();
    for (const [i, app] of apps.entries()) {
      await app.waitFor(/RedisAdapter:Redis is back/, marks[i]);
    }
    // Presence was rewritten by every process (Redis came back empty)...
    await counts(c, 4);
    // ...the ban made during the outage now holds everywhere...
    await apps[2].waitFor(/BlockList:Banned 127\.0\.0\.8/, marks[2]);
    const refusedToo = await LineClient.connect(apps[2].port, '127.0.0.8');
    sockets.push(refusedToo);
    await refusedToo.expectClosedByServer();
    // ...and the bans from before are written back, not lifted, though Redis
    // lost them.
    expect(await c.ask('bans', /^bans /)).toBe('bans 127.0.0.8,127.0.0.9');
    expect((await inspect.keys(`{${PREFIX}}:ban:*`)).sort()).toEqual([
      `{${PREFIX}}:ban:127.0.0.8`,
      `{${PREFIX}}:ban:127.0.0.9`,
    ]);
    for (const app of apps) {
      expect(
        app.reports.entries
          .slice(marks[apps.indexOf(app)])
          .some((line) => /Unbanned 127\.0\.0\.9/.test(line)),
      ).toBe(false);
    }
    // ...and broadcasts cross processes again; what was sent during the
    // outage stayed on its process.
    await c.ask('all we are back', /^sent all$/);
    await a.hears('we are back');
    await late.hears('we are back');
    expect(c.lines).not.toContain('during the outage');
    expect(late.lines).not.toContain('during the outage');
    for (const target of ['127.0.0.8', '127.0.0.9']) {
      expect(await c.ask(`unban ${target}`, /^unbanned/)).toBe('unbanned true');
    }
    for (const app of apps) {
      await app.waitFor(/BlockList:Unbanned 127\.0\.0\.9/);
    }
    await eventually(
      () => inspect.keys(`{${PREFIX}}:ban:*`),
      (keys) => keys.length === 0,
      'the ban keys to be gone',
    );
  }, 30_000);

  it('drops a crashed process from presence once its heartbeat stops', async () => {
    const extra = await AppProcess.start({
      redisUrl: redis.url,
      prefix: PREFIX,
      nodeId: 'app4',
      heartbeatMs: HEARTBEAT_MS,
      presenceTtlMs: PRESENCE_TTL_MS,
    });
    try {
      await extra.waitFor(/RedisAdapter:Joined the cluster as app4/);
      const a = await join(apps[0]);
      const doomed = await join(extra);
      await counts(a, 2);
      await extra.kill();
      // Its process is gone without a word: presence expires after its TTL.
      await counts(a, 1);
      await eventually(
        () => inspect.zrange(`{${PREFIX}}:nodes`, '0', '-1'),
        (nodes) => !nodes.includes('app4'),
        'app4 to leave the list of processes',
      );
      expect(await a.ask(`kick ${doomed.id}`, /^kick /)).toBe('kick false');
    } finally {
      await extra.kill();
    }
  }, 30_000);

  it('leaves no key behind once every player has left and the processes have closed', async () => {
    const players3 = [
      await join(apps[0]),
      await join(apps[1]),
      await join(apps[2]),
    ];
    await players3[0].ask('join hall', /^joined/);
    await players3[1].ask('name bob', /^named/);
    await counts(players3[2], 3);
    expect((await presenceKeys()).sort()).toEqual(
      apps.map((app) => `{${PREFIX}}:presence:${app.nodeId}`),
    );

    await Promise.all(players.splice(0).map((p) => p.leave()));
    await eventually(
      () => inspect.keys(`{${PREFIX}}*`),
      (keys) => keys.length === 1,
      'only the list of processes to remain',
    ).then((keys) => expect(keys).toEqual([`{${PREFIX}}:nodes`]));

    // Each stop() ends once the process has exited and all it wrote is read.
    const ends = await Promise.all(apps.map((app) => app.stop()));
    for (const app of apps) {
      expect(app.reports.entries).toContain('shutdown');
    }
    // Nest re-raises the signal once its hooks have run.
    expect(ends).toEqual(apps.map(() => ({ code: null, signal: 'SIGTERM' })));
    expect(await inspect.keys('*')).toEqual([]);
  }, 30_000);
});
