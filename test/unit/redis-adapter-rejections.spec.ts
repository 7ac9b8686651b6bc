import 'reflect-metadata';
import {
  afterAll,
  afterEach,
  beforeAll,
  describe,
  expect,
  it,
} from '@jest/globals';
import { Logger } from '@nestjs/common';
import { filter, firstValueFrom, timeout } from 'rxjs';
import { ClusterLifecycle } from '../../lib/cluster/cluster.lifecycle.js';
import {
  BlockListService,
  ConnectionRegistry,
  EarwaxMetrics,
  type ServerSideEvent,
} from '../../lib/index.js';
import { RedisAdapter } from '../../lib/redis/index.js';
import { RecordingLogger } from '../support/recording-logger.js';
import {
  fakeContext,
  recordingHost,
} from '../support/redis-adapter-fixtures.js';
import { useRedisServer } from '../support/redis-server.js';

/**
 * The Redis adapter's receiving path, without a transport: a RedisAdapter
 * over a real redis-server, started by ClusterLifecycle with a real
 * registry, block list and metrics, and a connection that records its
 * disconnects. Forged messages are published with a raw client; each must
 * be dropped whole, counted in the metrics, logged once per window, and
 * leave everything else as it was.
 */

const logs = new RecordingLogger();
beforeAll(() => Logger.overrideLogger(logs));
afterAll(() => Logger.overrideLogger(false));

describe('RedisAdapter with forged input', () => {
  const shared = useRedisServer();
  const stops: Array<() => Promise<void>> = [];
  let prefixes = 0;

  afterEach(async () => {
    for (const stop of stops.splice(0)) await stop();
  });

  /** A process of the game: node `here`, one live connection. */
  async function start(prefix: string) {
    const adapter = new RedisAdapter({
      redis: {
        port: shared.server.port,
        host: '127.0.0.1',
        retryStrategy: () => 100,
      },
      prefix,
      nodeId: 'here',
      // No heartbeat during a test: its rereads would change the counts.
      heartbeatInterval: 60_000,
      presenceTtl: 120_000,
    });
    const registry = new ConnectionRegistry(adapter);
    const blockList = new BlockListService(registry, adapter);
    const metrics = new EarwaxMetrics();
    const lifecycle = new ClusterLifecycle(
      registry,
      blockList,
      adapter,
      metrics,
    );
    await lifecycle.onModuleInit();
    let stopped = false;
    const stop = async () => {
      if (stopped) return;
      stopped = true;
      await lifecycle.onApplicationShutdown();
    };
    stops.push(stop);
    expect(adapter.available).toBe(true);
    const connections = recordingHost(registry);
    const ctx = fakeContext(connections, '203.0.113.9');
    registry.add(ctx);
    const events: ServerSideEvent[] = [];
    registry.serverEvents$.subscribe((e) => events.push(e));
    let markers = 0;
    /**
     * Publishes a server-side event after everything published so far and
     * waits for it: pub/sub keeps the order, so what came before has been
     * handled (or dropped) by then.
     */
    const settled = async () => {
      const data = ++markers;
      const seen = firstValueFrom(
        registry.serverEvents$.pipe(
          filter((e) => e.event === 'marker' && e.data === data),
          timeout(5000),
        ),
      );
      await shared.inspect.publish(
        `{${prefix}}:all`,
        JSON.stringify({
          v: 1,
          kind: 'event',
          from: 'there',
          event: 'marker',
          data,
        }),
      );
      await seen;
    };
    const rejected = () => metrics.snapshot().clusterMessagesRejected;
    return {
      adapter,
      registry,
      blockList,
      metrics,
      connections,
      ctx,
      events,
      settled,
      rejected,
      stop,
    };
  }

  it('drops forged messages whole, counts each, logs once per window, and still applies valid ones', async () => {
    const prefix = `forged-${++prefixes}`;
    const here = await start(prefix);
    const all = `{${prefix}}:all`;
    const mine = `{${prefix}}:node:here`;
    const id = here.ctx.id;
    const disconnect = (reason: unknown) =>
      JSON.stringify({
        v: 1,
        kind: 'request',
        from: 'there',
        id: `r-${String(reason)}`,
        command: { type: 'disconnect', id, reason },
      });
    const held = (counts: string) =>
      `{"v":1,"kind":"held","from":"there","reset":false,"counts":${counts}}`;
    const forged: Array<[string, string]> = [
      [mine, disconnect('constructor')],
      [mine, disconnect('__proto__')],
      [mine, disconnect('toString')],
      [mine, disconnect('banana')],
      [mine, disconnect(7)],
      [mine, 'not json'],
      [all, held('{"203.0.113.9":1e999}')],
      [all, held('{"203.0.113.9":-4}')],
      [all, held('{"203.0.113.9":2.5}')],
      [all, held('{"__proto__":5}')],
      [all, held('{"constructor":5}')],
      [all, held('{"203.0.113.9":3,"not-an-ip":1}')],
      [all, '{"v":1,"kind":"constructor","from":"there"}'],
      [all, '{"v":1,"kind":"gossip","from":"there"}'],
      [all, '[]'],
      [
        all,
        JSON.stringify({
          v: 1,
          kind: 'event',
          from: 'x'.repeat(100_000),
          event: 'tick',
          data: null,
        }),
      ],
      [
        all,
        '{"v":1,"kind":"event","from":"there","event":"tick","data":{"__proto__":{"polluted":true}}}',
      ],
      [
        all,
        JSON.stringify({
          v: 1,
          kind: 'broadcast',
          from: 'there',
          broadcast: { text: 'hi', room: 'r'.repeat(5000) },
        }),
      ],
    ];
    for (const [channel, text] of forged) {
      await shared.inspect.publish(channel, text);
    }
    await here.settled();

    expect(here.rejected()).toBe(forged.length);
    // Nothing of them was applied.
    expect(here.connections.disconnects).toEqual([]);
    expect(here.adapter.heldElsewhere('203.0.113.9')).toBe(0);
    expect(here.adapter.heldElsewhere('constructor')).toBe(0);
    expect(here.events.map((e) => e.event)).toEqual(['marker']);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    // One warning per channel in the window, naming the first problem.
    const warnings = logs.find(/^Dropped a malformed message on /);
    expect(warnings.map((w) => w.message)).toEqual([
      `Dropped a malformed message on ${mine}: message.command.reason is not a disconnect reason: "constructor"`,
      `Dropped a malformed message on ${all}: message.counts["203.0.113.9"] is not a whole number from 0 to 9007199254740991: Infinity`,
    ]);
    expectFinite(here.metrics);

    // What is well formed still works.
    await shared.inspect.publish(mine, disconnect('kicked'));
    await shared.inspect.publish(all, held('{"203.0.113.9":2}'));
    await here.settled();
    expect(here.connections.disconnects).toEqual([`${id}:kicked`]);
    expect(here.adapter.heldElsewhere('203.0.113.9')).toBe(2);
    expect(here.rejected()).toBe(forged.length);

    // The rest of the window is summed up when it ends (here: at close).
    await here.stop();
    expect(
      logs.find(/more malformed messages on/).map((w) => w.message),
    ).toEqual([
      `Dropped 5 more malformed messages on ${mine} in the last 10 s.`,
      `Dropped ${forged.length - 7} more malformed messages on ${all} in the last 10 s.`,
    ]);
  });

  it('drops malformed records read back from Redis: process ids, presence entries, held counts, stored bans', async () => {
    const prefix = `stored-${++prefixes}`;
    const key = (rest: string) => `{${prefix}}:${rest}`;
    const live = Date.now() + 120_000;
    const presence = {
      id: 'c1',
      node: 'rogue',
      address: '203.0.113.7',
      port: 4000,
      connectedAt: 1,
      rooms: ['hall'],
    };
    const ban = (target: string) =>
      JSON.stringify({
        kick: false,
        entry: { target, family: 'ipv4', createdAt: Date.now() },
      });
    await shared.inspect
      .multi()
      .zadd(key('nodes'), live, 'rogue', live, 'n'.repeat(2000))
      .hset(key('presence:rogue'), {
        c1: JSON.stringify(presence),
        c2: '{"id":"c2"}',
        c3: 'garbage',
        c4: JSON.stringify({ ...presence, id: 'c4', port: -1 }),
        c5: JSON.stringify({
          ...presence,
          id: 'c5',
          rooms: ['x'.repeat(2000)],
        }),
      })
      .hset(key('held:rogue'), { '203.0.113.7': '2', '203.0.113.8': 'NaN' })
      .set(key('ban:10.9.0.0/16'), ban('10.9.0.0/16'))
      // A ban stored under another target's key.
      .set(key('ban:10.8.0.0/16'), ban('10.7.0.0/16'))
      .set(key('ban:junk'), 'garbage')
      .exec();

    const here = await start(prefix);
    // The sync at start read the bans (not the one under another target's
    // key) and the held counts.
    expect(here.blockList.list().map((b) => b.target)).toEqual(['10.9.0.0/16']);
    expect(here.adapter.heldElsewhere('203.0.113.7')).toBe(0);
    expect(here.adapter.heldElsewhere('203.0.113.8')).toBe(0);
    const atStart = here.rejected();
    // Per sync: a process id, rogue's held counts, two bans.
    expect(atStart).toBeGreaterThanOrEqual(4);
    expect(atStart % 4).toBe(0);

    const found = await here.registry.fetchConnections();
    expect(found.map((p) => p.id).sort()).toEqual(['c1', here.ctx.id].sort());
    // The process id again, and four presence entries.
    expect(here.rejected()).toBe(atStart + 5);
    for (const kind of [
      /^Dropped a malformed process id in \{stored-\d+\}:nodes: node is longer than 1024 characters/,
      /^Dropped a malformed presence entry of rogue: /,
      /^Dropped the malformed held counts of rogue: counts\["203\.0\.113\.8"\] is not a whole number: "NaN"$/,
      // Whichever of the two SCAN finds first.
      /^Dropped the malformed ban stored under "\{stored-\d+\}:ban:(junk": stored ban is not JSON|10\.8\.0\.0\/16": ban\.entry\.target "10\.7\.0\.0\/16" is not the target its key names$)/,
    ]) {
      expect(logs.find(kind)).toHaveLength(1);
    }
    expectFinite(here.metrics);
  });
});

/** Every sample of the metrics' Prometheus text is a finite number >= 0. */
function expectFinite(metrics: EarwaxMetrics): void {
  const samples = metrics
    .toPrometheus()
    .split('\n')
    .filter((line) => line !== '' && !line.startsWith('#'));
  expect(samples.length).toBeGreaterThan(20);
  for (const line of samples) {
    const value = Number(line.slice(line.lastIndexOf(' ') + 1));
    expect([line, Number.isFinite(value) && value >= 0]).toEqual([line, true]);
  }
  expect(metrics.toPrometheus()).not.toMatch(/NaN|Inf|reason="constructor"/);
}
