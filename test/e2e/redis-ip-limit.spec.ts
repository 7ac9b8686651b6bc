import 'reflect-metadata';
import { afterEach, describe, expect, it } from '@jest/globals';
import { Controller } from '@nestjs/common';
import { Ctx } from '@nestjs/microservices';
import {
  ConnectionContext,
  ConnectionRegistry,
  EarwaxEvent,
  EarwaxModule,
} from '../../lib/index.js';
import { RedisAdapter } from '../../lib/redis/index.js';
import { type Booted, bootEarwax } from '../support/boot.js';
import { LineClient } from '../support/line-client.js';
import { AppProcess } from '../support/redis-app-process.js';
import { eventually } from '../support/redis-eventually.js';
import { useRedisServer } from '../support/redis-server.js';

/**
 * `maxConnectionsPerIp` across the processes of a cluster: three Nest
 * applications (each its own RedisAdapter, Redis connections and node id)
 * with `maxConnectionsPerIp: 2`, over a real redis-server, and a separate
 * child process for a crash. Each process decides from memory (its own
 * count plus its cache of the others'), so the tests await the caches
 * catching up, then check who is admitted.
 */

const HEARTBEAT_MS = 300;
const PRESENCE_TTL_MS = 1200;
const TOO_MANY = 'Too many connections from your address.';

@Controller()
class GreetingController {
  constructor(private readonly registry: ConnectionRegistry) {}

  @EarwaxEvent('on_connect')
  greet(@Ctx() ctx: ConnectionContext) {
    ctx.sendString(`welcome ${this.registry.nodeId}`);
  }
}

describe('maxConnectionsPerIp across a cluster', () => {
  const shared = useRedisServer();
  const apps: Booted[] = [];
  const children: AppProcess[] = [];
  const clients: LineClient[] = [];
  let prefixes = 0;

  afterEach(async () => {
    for (const client of clients.splice(0)) client.socket.destroy();
    await Promise.all(apps.splice(0).map(({ app }) => app.close()));
    await Promise.all(children.splice(0).map((child) => child.kill()));
  });

  /** One process of the game: limit 2 per address, counted cluster-wide. */
  async function boot(prefix: string, nodeId: string): Promise<Booted> {
    const booted = await bootEarwax(
      {
        imports: [
          EarwaxModule.forRoot({
            adapter: new RedisAdapter({
              redis: {
                port: shared.server.port,
                host: '127.0.0.1',
                retryStrategy: () => 100,
              },
              prefix,
              nodeId,
              heartbeatInterval: HEARTBEAT_MS,
              presenceTtl: PRESENCE_TTL_MS,
            }),
          }),
        ],
        controllers: [GreetingController],
      },
      { encoding: 'utf8', maxConnectionsPerIp: 2, connectionRate: false },
    );
    apps.push(booted);
    return booted;
  }

  async function connect(app: Booted, from: string): Promise<LineClient> {
    const client = await LineClient.connect(app.port, from);
    clients.push(client);
    return client;
  }

  async function admitted(app: Booted, from: string): Promise<LineClient> {
    const client = await connect(app, from);
    expect(await client.line(0)).toMatch(/^welcome /);
    return client;
  }

  async function refused(app: Booted, from: string): Promise<void> {
    const client = await connect(app, from);
    await client.expectClosedByServer();
    expect(client.lines).toEqual([TOO_MANY]);
  }

  /** Waits until `app` counts `expected` sockets of `from` elsewhere. */
  function seesElsewhere(app: Booted, from: string, expected: number) {
    const registry = app.app.get(ConnectionRegistry);
    // In-memory state fed by pub/sub: it announces nothing to await.
    return eventually(
      async () => registry.heldElsewhere(from),
      (held) => held === expected,
      `${registry.nodeId} to count ${expected} socket(s) of ${from} elsewhere`,
      10,
    );
  }

  it('refuses an address on one process once it holds the limit on another, and admits it again when one leaves', async () => {
    const prefix = `ip-limit-${++prefixes}`;
    const [a, b, c] = [
      await boot(prefix, 'A'),
      await boot(prefix, 'B'),
      await boot(prefix, 'C'),
    ];
    const first = await admitted(a, '127.0.0.2');
    await admitted(a, '127.0.0.2');
    // Admission on A did not wait for anyone: the others learn of it.
    await seesElsewhere(b, '127.0.0.2', 2);
    await seesElsewhere(c, '127.0.0.2', 2);
    expect(await shared.inspect.hgetall(`{${prefix}}:held:A`)).toEqual({
      '127.0.0.2': '2',
    });

    await refused(b, '127.0.0.2');
    // B's refusal counts A's two (a connection's logger writes to whichever
    // application set Nest's logger last, so every app's logs are searched).
    expect(
      apps.flatMap(({ logs }) =>
        logs.find(
          'Connection refused (too_many_connections): 2 held from 127.0.0.2, at most 2.',
        ),
      ),
    ).toHaveLength(1);
    await refused(c, '127.0.0.2');
    // Another address is not affected.
    await admitted(b, '127.0.0.3');
    await admitted(c, '127.0.0.3');
    // A counts B's and C's sockets of 127.0.0.3 as well.
    await seesElsewhere(a, '127.0.0.3', 2);
    await refused(a, '127.0.0.3');

    // One of the two leaves: the address gets in again, on another process.
    await first.end();
    await seesElsewhere(b, '127.0.0.2', 1);
    const back = await admitted(b, '127.0.0.2');
    expect(back.lines).toEqual(['welcome B']);
    // Now 2 again, across A and B: C refuses the next one.
    await seesElsewhere(c, '127.0.0.2', 2);
    await refused(c, '127.0.0.2');
  }, 20_000);

  it('leaves no count behind once the players have left and the processes have closed', async () => {
    const prefix = `ip-keys-${++prefixes}`;
    const [a, b] = [await boot(prefix, 'A'), await boot(prefix, 'B')];
    const players = [
      await admitted(a, '127.0.0.2'),
      await admitted(b, '127.0.0.2'),
    ];
    await seesElsewhere(a, '127.0.0.2', 1);
    expect((await shared.inspect.keys(`{${prefix}}:held:*`)).sort()).toEqual([
      `{${prefix}}:held:A`,
      `{${prefix}}:held:B`,
    ]);
    // Held while it lives: it expires with the heartbeat if the process dies.
    expect(await shared.inspect.pttl(`{${prefix}}:held:A`)).toBeGreaterThan(0);

    await Promise.all(players.map((player) => player.end()));
    await seesElsewhere(a, '127.0.0.2', 0);
    // A process that holds nothing keeps no hash.
    await eventually(
      () => shared.inspect.keys(`{${prefix}}:held:*`),
      (keys) => keys.length === 0,
      'the held hashes to be deleted',
    );
    await Promise.all(apps.splice(0).map(({ app }) => app.close()));
    expect(await shared.inspect.keys(`{${prefix}}*`)).toEqual([]);
  }, 20_000);

  it('drops malformed held counts with a warning, and still counts what is well formed', async () => {
    const prefix = `ip-bad-${++prefixes}`;
    const [a, b] = [await boot(prefix, 'A'), await boot(prefix, 'B')];
    await shared.inspect.publish(
      `{${prefix}}:all`,
      JSON.stringify({
        v: 1,
        kind: 'held',
        from: 'rogue',
        counts: { '127.0.0.2': -3 },
        reset: false,
      }),
    );
    const dropped = () =>
      apps.some(
        ({ logs }) =>
          logs.find(
            /Dropped a malformed message on \{ip-bad-\d+\}:all: message\.counts\["127\.0\.0\.2"\] is not a whole number from 0 to \d+: -3/,
          ).length > 0,
      );
    // Nest's static loggers write to the application booted last: b.
    await b.logs.journal.waitFor(
      dropped,
      'the malformed held counts to be dropped',
    );
    expect(b.app.get(ConnectionRegistry).heldElsewhere('127.0.0.2')).toBe(0);
    await admitted(a, '127.0.0.2');
    await seesElsewhere(b, '127.0.0.2', 1);
  }, 20_000);

  it('forgets the counts of a process that crashed once its heartbeat stops', async () => {
    const prefix = `ip-crash-${++prefixes}`;
    const b = await boot(prefix, 'B');
    // A real process (its default maxConnectionsPerIp of 50 shares counts).
    const doomed = await AppProcess.start({
      redisUrl: shared.server.url,
      prefix,
      nodeId: 'doomed',
      heartbeatMs: HEARTBEAT_MS,
      presenceTtlMs: PRESENCE_TTL_MS,
    });
    children.push(doomed);
    await doomed.waitFor(/RedisAdapter:Joined the cluster as doomed/);
    for (let i = 0; i < 2; i++) {
      const player = await LineClient.connect(doomed.port, '127.0.0.4');
      clients.push(player);
      expect(await player.line(0)).toMatch(/^id \S+ doomed$/);
    }
    await seesElsewhere(b, '127.0.0.4', 2);
    await refused(b, '127.0.0.4');

    await doomed.kill();
    // Nothing announced its end: the next reads after its TTL drop it.
    await seesElsewhere(b, '127.0.0.4', 0);
    await admitted(b, '127.0.0.4');
    await eventually(
      () => shared.inspect.exists(`{${prefix}}:held:doomed`),
      (exists) => exists === 0,
      'the crashed process’s hash to expire',
    );
  }, 45_000);
});
