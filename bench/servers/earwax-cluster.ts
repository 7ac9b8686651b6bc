/**
 * nestjs-earwax in the cluster-broadcast scenario: the broadcast server of
 * `earwax.ts` (a line from any connection goes to every other one through
 * the injected `ConnectionRegistry.broadcast()`), run either alone or as
 * one of several processes joined by the Redis adapter.
 *
 * Modes (`--mode`):
 * - `single`: one process, no adapter: the baseline.
 * - `cluster`: with `RedisAdapter` on `REDIS_URL` (from the environment, as
 *   the shared command line has no option for it), prefix `bench`; a
 *   broadcast reaches the connections of every process.
 */
import 'reflect-metadata';
import { Controller, Inject, type ModuleMetadata } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { Ctx, Payload } from '@nestjs/microservices';
import { serve, serverArgs } from './control.js';
import { earwax, type EarwaxApi } from './earwax-package.js';
import type * as EarwaxRedisApi from '../../lib/redis/index.js';

const { ConnectionRegistry, EarwaxEvent, EarwaxModule, EarwaxTransport } =
  earwax;
type ConnectionContext = EarwaxApi.ConnectionContext;

const args = serverArgs();
if (args.mode !== 'single' && args.mode !== 'cluster') {
  throw new Error(`earwax-cluster server: unknown mode ${args.mode}`);
}
const redisUrl = process.env.REDIS_URL;
if (args.mode === 'cluster' && !redisUrl) {
  throw new Error('earwax-cluster server: --mode=cluster needs REDIS_URL.');
}

@Controller()
class BroadcastController {
  // Explicit token: the class is a run-time value of the dynamically loaded
  // package, so decorator metadata cannot name it.
  constructor(
    @Inject(ConnectionRegistry)
    private readonly registry: EarwaxApi.ConnectionRegistry,
  ) {}

  @EarwaxEvent('on_data')
  trigger(@Payload() line: Buffer, @Ctx() ctx: ConnectionContext): void {
    this.registry.broadcast(line.toString(), { except: ctx });
  }
}

let adapter: EarwaxApi.EarwaxAdapter | undefined;
if (args.mode === 'cluster') {
  // The Redis entry point of the same build, by the package's own name (a
  // variable, so that type-checking does not need dist/).
  const specifier: string = 'nestjs-earwax/redis';
  const { RedisAdapter } = (await import(specifier)) as typeof EarwaxRedisApi;
  adapter = new RedisAdapter({
    redis: redisUrl,
    prefix: 'bench',
    nodeId: `bench-${args.port}`,
  });
}

const transport = new EarwaxTransport({
  host: '127.0.0.1',
  port: args.port,
  logConnections: false,
  // As in earwax.ts: the limits on, far above the load.
  maxConnections: 1_000_000,
  maxConnectionsPerIp: 1_000_000,
  connectionRate: { limit: 1_000_000_000, windowMs: 1000 },
  inputRate: {
    linesPerSecond: 1_000_000_000,
    lineBurst: 1_000_000_000,
    bytesPerSecond: 1_000_000_000_000,
    byteBurst: 1_000_000_000_000,
  },
});
const appModule: ModuleMetadata = {
  imports: [EarwaxModule.forRoot(adapter ? { adapter } : {})],
  controllers: [BroadcastController],
};

await serve(
  {
    listen: async () => {
      const app = await NestFactory.createMicroservice(appModule, {
        strategy: transport,
        logger: ['error', 'warn'],
      });
      await app.listen();
      if (adapter && !adapter.available) {
        throw new Error(`Redis at ${redisUrl} did not answer.`);
      }
    },
    connections: () => transport.connections.size,
    extras: () => ({ clusterAvailable: adapter?.available === false ? 0 : 1 }),
    close: () => transport.close(),
  },
  args.port,
);
