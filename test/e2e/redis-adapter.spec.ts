import 'reflect-metadata';
import { afterEach, describe, expect, it } from '@jest/globals';
import { Controller, type INestMicroservice } from '@nestjs/common';
import { ConfigModule, ConfigService } from '@nestjs/config';
import { Ctx, Payload } from '@nestjs/microservices';
import { Test } from '@nestjs/testing';
import {
  BlockListService,
  ConnectionContext,
  ConnectionRegistry,
  EarwaxAdapter,
  EarwaxEvent,
  EarwaxMetrics,
  EarwaxModule,
  EarwaxTransport,
  type EarwaxTransportOptions,
} from '../../lib/index.js';
import { RedisAdapter } from '../../lib/redis/index.js';
import { LineClient } from '../support/line-client.js';
import { RecordingLogger } from '../support/recording-logger.js';
import { eventually } from '../support/redis-eventually.js';
import { useRedisServer } from '../support/redis-server.js';

/**
 * The Redis adapter in two Nest applications of this process (each its own
 * registry, adapter and Redis connections), for what is easier to see from
 * inside: configuration through forRootAsync, malformed messages, a start
 * while Redis is down, and nothing queued during an outage. The three-process
 * behaviour is in redis-cluster.spec.ts.
 */

@Controller()
class RelayController {
  constructor(private readonly registry: ConnectionRegistry) {}

  @EarwaxEvent('on_data')
  relay(@Payload() line: string, @Ctx() ctx: ConnectionContext) {
    this.registry.broadcast(line, { except: ctx });
  }
}

describe('RedisAdapter in Nest applications', () => {
  const shared = useRedisServer();
  const logs = new RecordingLogger();
  const apps: INestMicroservice[] = [];
  const clients: LineClient[] = [];
  let prefixes = 0;

  afterEach(async () => {
    for (const client of clients.splice(0)) client.socket.destroy();
    await Promise.all(apps.splice(0).map((app) => app.close()));
    if (!shared.server.running) await shared.server.restart();
  });

  /**
   * Boots an app whose adapter and transport defaults are built from
   * `@nestjs/config` settings. They are loaded under `game.` (not read from
   * the environment or a .env file), so nothing outside the test changes
   * them.
   */
  async function boot(
    settings: Record<string, string>,
    transportOptions: EarwaxTransportOptions = { connectionRate: false },
  ) {
    const moduleRef = await Test.createTestingModule({
      imports: [
        ConfigModule.forRoot({
          ignoreEnvFile: true,
          load: [() => ({ game: settings })],
        }),
        EarwaxModule.forRootAsync({
          imports: [ConfigModule],
          // The adapter is a provider of the module: the transport defaults
          // can use it (a connection rate counted across the cluster).
          inject: [ConfigService, EarwaxAdapter],
          useFactory: (config: ConfigService, adapter: RedisAdapter) => ({
            maxConnections: Number(config.getOrThrow('game.MAX_PLAYERS')),
            connectionRate: adapter.connectionRate({
              limit: Number(config.getOrThrow('game.RATE_LIMIT')),
            }),
          }),
          adapter: {
            inject: [ConfigService],
            useFactory: (config: ConfigService) =>
              new RedisAdapter({
                redis: {
                  port: Number(config.getOrThrow('game.REDIS_PORT')),
                  host: '127.0.0.1',
                  retryStrategy: () => 100,
                },
                prefix: config.getOrThrow<string>('game.REDIS_PREFIX'),
                nodeId: config.getOrThrow<string>('game.NODE_ID'),
                connectTimeout: Number(
                  config.get<string>('game.CONNECT_TIMEOUT') ?? 5000,
                ),
              }),
          },
        }),
      ],
      controllers: [RelayController],
    })
      .setLogger(logs)
      .compile();
    const transport = new EarwaxTransport({
      host: '127.0.0.1',
      port: 0,
      encoding: 'utf8',
      ...transportOptions,
    });
    const app = moduleRef.createNestMicroservice({
      strategy: transport,
      logger: logs,
    });
    app.useLogger(logs);
    apps.push(app);
    await app.listen();
    return { app, port: transport.address()?.port ?? 0 };
  }

  function settings(nodeId: string, prefix: string) {
    return {
      REDIS_PORT: String(shared.server.port),
      REDIS_PREFIX: prefix,
      NODE_ID: nodeId,
      MAX_PLAYERS: '100',
      RATE_LIMIT: '2',
    };
  }

  async function player(port: number): Promise<LineClient> {
    const client = await LineClient.connect(port);
    clients.push(client);
    return client;
  }

  function logged(pattern: RegExp): Promise<void> {
    return logs.journal.waitFor(
      () => logs.find(pattern).length > 0,
      `a log line matching ${String(pattern)}`,
    );
  }

  it('is configured through forRootAsync from injected settings, and relays between apps', async () => {
    const prefix = `async-${++prefixes}`;
    const one = await boot(settings('one', prefix));
    const two = await boot(settings('two', prefix));
    const adapter = one.app.get(EarwaxAdapter);
    expect(adapter).toBeInstanceOf(RedisAdapter);
    expect(adapter.available).toBe(true);
    expect(one.app.get(ConnectionRegistry).nodeId).toBe('one');
    // The settings came through the real ConfigService.
    expect(one.app.get(ConfigService).get('game.REDIS_PREFIX')).toBe(prefix);

    const a = await player(one.port);
    const b = await player(two.port);
    await eventually(
      () => one.app.get(ConnectionRegistry).countConnections(),
      (n) => n === 2,
      'both players counted',
    );
    a.send('hello from one');
    expect(await b.line(0)).toBe('hello from one');
    expect(await shared.inspect.zrange(`{${prefix}}:nodes`, '0', '-1')).toEqual(
      expect.arrayContaining(['one', 'two']),
    );
  });

  it('drops a malformed message with a warning and keeps going', async () => {
    const prefix = `malformed-${++prefixes}`;
    const one = await boot(settings('one', prefix));
    const metrics = one.app.get(EarwaxMetrics);
    const b = await player(one.port);
    const publish = (message: string | object) =>
      shared.inspect.publish(
        `{${prefix}}:all`,
        typeof message === 'string' ? message : JSON.stringify(message),
      );
    const relayed = async (text: string) => {
      const index = b.lines.length;
      await publish({
        v: 1,
        kind: 'broadcast',
        from: 'elsewhere',
        broadcast: { text },
      });
      expect(await b.line(index)).toBe(text);
    };
    await publish('{"v":1,"kind":"broadcast"}');
    await publish('garbage');
    // A ban with a target that is not an address is malformed too.
    await publish({
      v: 1,
      kind: 'bans',
      from: 'elsewhere',
      change: {
        type: 'ban',
        ban: {
          kick: true,
          entry: { target: 'nonsense', family: 'ipv4', createdAt: 1 },
        },
      },
    });
    // Pub/sub keeps the order: once this arrives, the three were handled.
    await relayed('still here');
    expect(metrics.snapshot().clusterMessagesRejected).toBe(3);
    // One warning per window; the others are summed up when it ends.
    expect(logs.find(/Dropped a malformed message/)).toEqual([
      expect.objectContaining({
        level: 'warn',
        message: expect.stringMatching(
          /^Dropped a malformed message on \{malformed-\d+\}:all: message\.from is missing$/,
        ),
      }),
    ]);
    expect(logs.find(/Could not apply/)).toEqual([]);
    expect(one.app.get(BlockListService).size).toBe(0);
    expect(b.socket.destroyed).toBe(false);
  });

  it('starts while Redis is down, serves its own players, and joins once Redis answers', async () => {
    const prefix = `late-${++prefixes}`;
    await shared.server.kill();
    const one = await boot({
      ...settings('late-one', prefix),
      CONNECT_TIMEOUT: '300',
    });
    await logged(
      /Redis did not answer within 300 ms: serving this process's players only/,
    );
    const adapter = one.app.get(EarwaxAdapter);
    expect(adapter.available).toBe(false);
    const registry = one.app.get(ConnectionRegistry);
    await expect(registry.countConnections()).rejects.toThrow(
      'countConnections: the other processes cannot be reached',
    );
    const [a, b] = [await player(one.port), await player(one.port)];
    a.send('local only');
    expect(await b.line(0)).toBe('local only');

    await shared.server.restart();
    await logged(
      /Joined the cluster as late-one \(Redis answered after [\d.]+ s\): 2 connection\(s\)/,
    );
    expect(adapter.available).toBe(true);
    expect(await shared.inspect.hlen(`{${prefix}}:presence:late-one`)).toBe(2);
  });

  it('queues nothing while Redis is down: what was sent meanwhile is dropped and counted', async () => {
    const prefix = `outage-${++prefixes}`;
    const one = await boot(settings('out-one', prefix));
    const two = await boot(settings('out-two', prefix));
    const a = await player(one.port);
    const b = await player(two.port);
    const registry = one.app.get(ConnectionRegistry);
    await eventually(
      () => registry.countConnections(),
      (n) => n === 2,
      'both players counted',
    );
    const lost = logs.find(/Lost Redis/).length;
    await shared.server.kill();
    await logs.journal.waitFor(
      () => logs.find(/Lost Redis/).length >= lost + 2,
      'both apps to report the outage',
    );
    for (let i = 0; i < 1000; i++) registry.broadcast(`during ${i}`);
    expect(registry.serverSideEmit('during')).toBe(false);

    const back = logs.find(/Redis is back/).length;
    await shared.server.restart();
    await logs.journal.waitFor(
      () => logs.find(/Redis is back/).length >= back + 2,
      'both apps to resync',
    );
    expect(
      logs.find(
        /Redis is back after [\d.]+ s: resynced 1 connection\(s\) and 0 ban\(s\); 1001 cluster message\(s\) were not sent meanwhile/,
      ),
    ).toHaveLength(1);
    a.send('after');
    expect(await b.line(0)).toBe('after');
    // Nothing from the outage was held back and replayed.
    expect(b.lines).toEqual(['after']);
  });

  it('counts connections per address across the cluster, without the accept path waiting for Redis', async () => {
    const prefix = `rate-${++prefixes}`;
    // The shared limiter from the module defaults: 2 a window per address.
    const one = await boot(settings('rate-one', prefix), {});
    const two = await boot(settings('rate-two', prefix), {});
    const admitted = (client: LineClient) =>
      logs.journal.waitFor(
        () =>
          logs.journal.entries.some(
            (e) =>
              e.context === `127.0.0.3:${client.socket.localPort}` &&
              e.message === 'Connection established.',
          ),
        `the connection from port ${client.socket.localPort} to be admitted`,
      );
    const refused = async (client: LineClient) => {
      await client.expectClosedByServer();
      expect(client.lines).toEqual([
        'Too many connection attempts; please wait a moment.',
      ]);
    };
    const from = async (port: number) => {
      const client = await LineClient.connect(port, '127.0.0.3');
      clients.push(client);
      return client;
    };

    const key = `{${prefix}}:rate:127.0.0.3`;
    await admitted(await from(one.port));
    await admitted(await from(one.port));
    // Admission did not wait for Redis: the count there follows.
    await eventually(
      () => shared.inspect.get(key),
      (count) => count === '2',
      'Redis to count the first two connections',
    );
    // Two's own count lets the third in; the cluster's count, which it
    // learns in the background, then closes the address on two as well.
    await admitted(await from(two.port));
    await logged(
      /127\.0\.0\.3 opened more than 2 connection\(s\) in 10 s across the cluster: refused here for \d+ s/,
    );
    await refused(await from(two.port));
    await refused(await from(one.port));
    expect(Number(await shared.inspect.get(key))).toBeGreaterThanOrEqual(4);
    // Its own window ends it: nothing is left behind for good.
    const ttl = await shared.inspect.pttl(key);
    expect(ttl).toBeGreaterThan(0);
    expect(ttl).toBeLessThanOrEqual(10_000);
  });

  it('shares a process’s configured bans, and serves again after its application closed', async () => {
    const prefix = `reuse-${++prefixes}`;
    const adapter = new RedisAdapter({
      redis: {
        port: shared.server.port,
        host: '127.0.0.1',
        retryStrategy: () => 100,
      },
      prefix,
      nodeId: 'reused',
    });
    const bootWith = async (options: EarwaxTransportOptions) => {
      const moduleRef = await Test.createTestingModule({
        imports: [EarwaxModule.forRoot({ adapter })],
      })
        .setLogger(logs)
        .compile();
      const app = moduleRef.createNestMicroservice({
        strategy: new EarwaxTransport({
          host: '127.0.0.1',
          port: 0,
          ...options,
        }),
        logger: logs,
      });
      app.useLogger(logs);
      apps.push(app);
      await app.listen();
      return app;
    };
    const other = await boot(settings('other', prefix));
    const first = await bootWith({ blockList: ['198.51.100.0/24'] });
    expect(adapter.available).toBe(true);
    // The transport's configured ban, made before the adapter started, is
    // the cluster's.
    await eventually(
      async () => other.app.get(BlockListService).isBlocked('198.51.100.7'),
      (blocked) => blocked,
      'the configured ban to reach the other process',
    );
    await first.close();
    apps.splice(apps.indexOf(first), 1);
    expect(adapter.available).toBe(false);
    await bootWith({});
    expect(adapter.available).toBe(true);
    expect(logs.find('Joined the cluster as reused')).toHaveLength(2);
    await eventually(
      () => other.app.get(ConnectionRegistry).fetchConnections(),
      (all) => all.length === 0,
      'presence to be readable again',
    );
    expect(
      await shared.inspect
        .zrange(`{${prefix}}:nodes`, '0', '-1')
        .then((n) => n.sort()),
    ).toEqual(['other', 'reused']);
  });
});
