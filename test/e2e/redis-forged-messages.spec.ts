import 'reflect-metadata';
import { afterEach, describe, expect, it } from '@jest/globals';
import { Controller } from '@nestjs/common';
import { Ctx, Payload } from '@nestjs/microservices';
import { Redis } from 'ioredis';
import {
  ConnectionContext,
  EarwaxEvent,
  EarwaxMetrics,
  EarwaxModule,
} from '../../lib/index.js';
import { RedisAdapter } from '../../lib/redis/index.js';
import { type Booted, bootEarwax } from '../support/boot.js';
import { LineClient } from '../support/line-client.js';
import { useRedisServer } from '../support/redis-server.js';

/**
 * A live application on the Redis adapter, and a raw ioredis client that
 * publishes forged messages on the adapter's channels (as anything that can
 * reach Redis could): a kick with the reason `constructor` once made the
 * open-connections gauge and that reason's counter `NaN`. Each forgery must
 * be dropped and counted, the metrics must stay exact, and the game must
 * keep serving.
 */

@Controller()
class EchoController {
  @EarwaxEvent('on_connect')
  greet(@Ctx() ctx: ConnectionContext) {
    ctx.sendString(`id ${ctx.id}`);
  }

  @EarwaxEvent('on_data')
  echo(@Payload() line: string, @Ctx() ctx: ConnectionContext) {
    ctx.sendString(`echo ${line}`);
  }
}

describe('RedisAdapter against forged cluster messages', () => {
  const shared = useRedisServer();
  const apps: Booted[] = [];
  const clients: LineClient[] = [];
  const forgers: Redis[] = [];

  afterEach(async () => {
    for (const client of clients.splice(0)) client.socket.destroy();
    for (const forger of forgers.splice(0)) forger.disconnect();
    await Promise.all(apps.splice(0).map(({ app }) => app.close()));
  });

  async function player(port: number): Promise<[LineClient, string]> {
    const client = await LineClient.connect(port);
    clients.push(client);
    const greeting = await client.line(0);
    const id = /^id (\S+)$/.exec(greeting)?.[1];
    if (id === undefined) throw new Error(`Unexpected greeting ${greeting}`);
    return [client, id];
  }

  it('drops and counts them, keeps the metrics exact and finite, and keeps serving', async () => {
    const prefix = 'forged';
    const game = await bootEarwax(
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
              nodeId: 'game',
            }),
          }),
        ],
        controllers: [EchoController],
      },
      { encoding: 'utf8', connectionRate: false },
    );
    apps.push(game);
    const metrics = game.app.get(EarwaxMetrics);
    const forger = new Redis(shared.server.url);
    forgers.push(forger);
    const all = `{${prefix}}:all`;
    const mine = `{${prefix}}:node:game`;

    // Alice is the target of the forged kicks; Carol watches.
    const [alice, aliceId] = await player(game.port);
    const [carol] = await player(game.port);
    const kick = (id: string, reason: unknown) =>
      JSON.stringify({
        v: 1,
        kind: 'request',
        from: 'forger',
        id: `kick-${String(reason)}`,
        command: { type: 'disconnect', id, reason },
      });
    const forged: Array<[string, string]> = [
      [mine, kick(aliceId, 'constructor')],
      [mine, kick(aliceId, '__proto__')],
      [mine, kick(aliceId, 'toString')],
      [mine, kick(aliceId, 'valueOf')],
      [mine, kick(aliceId, 'not_a_reason')],
      [
        all,
        '{"v":1,"kind":"held","from":"forger","reset":false,"counts":{"__proto__":5}}',
      ],
      [
        all,
        '{"v":1,"kind":"held","from":"forger","reset":true,"counts":{"127.0.0.1":1e999}}',
      ],
      [
        all,
        '{"v":1,"kind":"held","from":"forger","reset":true,"counts":{"127.0.0.1":-9}}',
      ],
      [all, '{"v":1,"kind":"constructor","from":"forger"}'],
      [all, 'not json at all'],
      [
        all,
        JSON.stringify({
          v: 1,
          kind: 'broadcast',
          from: 'f'.repeat(50_000),
          broadcast: { text: 'spoofed' },
        }),
      ],
    ];
    for (const [channel, text] of forged) {
      expect(await forger.publish(channel, text)).toBe(1);
    }
    // A well-formed broadcast after them: pub/sub keeps the order, so once
    // Carol has it, every forgery has been handled.
    expect(
      await forger.publish(
        all,
        JSON.stringify({
          v: 1,
          kind: 'broadcast',
          from: 'forger',
          broadcast: { text: 'after the forgeries' },
        }),
      ),
    ).toBe(1);
    await carol.expectLine('after the forgeries');

    let s = metrics.snapshot();
    expect(s.openConnections).toBe(2);
    expect(s.disconnections).toEqual(
      Object.fromEntries(Object.keys(s.disconnections).map((r) => [r, 0])),
    );
    expect(Object.keys(s.disconnections)).not.toContain('constructor');
    let text = metrics.toPrometheus();
    expect(text).not.toMatch(/NaN|Inf|constructor|__proto__/);
    expect(text).toContain('\nearwax_open_connections 2\n');
    expect(alice.socket.destroyed).toBe(false);
    // Nothing forged was delivered either.
    expect(alice.lines).toEqual([`id ${aliceId}`, 'after the forgeries']);
    expect(carol.lines.slice(1)).toEqual(['after the forgeries']);
    expect(s.clusterMessagesRejected).toBe(forged.length);
    expect(text).toContain(
      `\nearwax_cluster_messages_rejected_total ${forged.length}\n`,
    );
    expect(game.logs.find(/^Dropped a malformed message on /)).toHaveLength(2);

    // The game keeps serving: the player is answered, a new one admitted.
    alice.send('still there?');
    expect(await alice.line(2)).toBe('echo still there?');
    const [bob] = await player(game.port);
    bob.send('hello');
    expect(await bob.line(1)).toBe('echo hello');

    // A well-formed kick works, and is counted under its reason.
    await forger.publish(mine, kick(aliceId, 'kicked'));
    await alice.expectClosedByServer();
    s = metrics.snapshot();
    expect(s.disconnections.kicked).toBe(1);
    expect(s.openConnections).toBe(2);
    expect(s.connectionsAdmitted).toBe(3);
    text = metrics.toPrometheus();
    expect(text).toContain('\nearwax_open_connections 2\n');
    expect(text).toContain(
      '\nearwax_disconnections_total{reason="kicked"} 1\n',
    );
    expect(text).not.toMatch(/NaN|Inf/);
  });
});
