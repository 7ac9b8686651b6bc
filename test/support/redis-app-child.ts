/**
 * One process of a clustered game, run as a child by the Redis specs (as
 * `test/support/redis-app-process.ts` starts it, through the loader hooks of
 * shutdown-child-hooks.mjs): an Earwax app with a `RedisAdapter`, played
 * over TCP with one command a line, so a test drives the cluster as players
 * and admins would.
 *
 * Environment: `REDIS_URL`, `REDIS_PREFIX`, `NODE_ID`, and optionally
 * `HEARTBEAT_MS`, `PRESENCE_TTL_MS`, `REQUEST_TIMEOUT_MS`.
 *
 * On stdout, one line each: `port:<n>` once listening; `log:<level>:<context>:
 * <message>` for every log line (so a test can await "Lost Redis");
 * `shutdown` when Nest's shutdown hooks have run.
 *
 * Commands (each answered with one line):
 * - `join <room>`, `leave <room>`: this connection's rooms.
 * - `say <room> <text>`: `[<room>] <text>` to the room's other members.
 * - `all <text>`: `<text>` to everyone; `others <text>`: everyone but me.
 * - `kick <id>`, `pull <id> <room>`, `push <id> <room>`: on any process.
 * - `ban <target> [<ms>]`, `unban <target>`, `clear`, `bans`: the shared
 *   block list.
 * - `count [<room>]`, `who [<room>]`: cluster-wide presence.
 * - `name <name>`: shares `{ name }`; `names`: every shared name.
 * - `emit <event> <json>`: a server-side event; each process announces the
 *   events it receives to its players as `event <name> <json> from <node>`.
 */
import 'reflect-metadata';
import {
  Controller,
  type LoggerService,
  Module,
  type OnApplicationShutdown,
} from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { Ctx, Payload } from '@nestjs/microservices';
import {
  BlockListService,
  ClusterUnavailableError,
  ConnectionContext,
  ConnectionRegistry,
  EarwaxEvent,
  EarwaxModule,
  EarwaxTransport,
  type JsonValue,
} from '../../lib/index.js';
import { RedisAdapter } from '../../lib/redis/index.js';

// The test may stop reading before this process has ended.
process.stdout.on('error', () => undefined);

function report(line: string): void {
  // Synchronous for pipes on Linux: nothing is lost when the process ends.
  process.stdout.write(`${line.replace(/\n/g, ' ')}\n`);
}

class StdoutLogger implements LoggerService {
  private write(level: string, message: unknown, rest: unknown[]): void {
    const context = rest.length > 0 ? String(rest[rest.length - 1]) : '';
    report(`log:${level}:${context}:${String(message)}`);
  }
  log(message: unknown, ...rest: unknown[]): void {
    this.write('log', message, rest);
  }
  warn(message: unknown, ...rest: unknown[]): void {
    this.write('warn', message, rest);
  }
  error(message: unknown, ...rest: unknown[]): void {
    this.write('error', message, rest);
  }
}

function number(name: string): number | undefined {
  const value = process.env[name];
  return value === undefined ? undefined : Number(value);
}

@Controller()
class ClusterGameController implements OnApplicationShutdown {
  constructor(
    private readonly registry: ConnectionRegistry,
    private readonly blockList: BlockListService,
  ) {
    registry.serverEvents$.subscribe(({ event, data, node }) => {
      registry.broadcast(
        `event ${event} ${JSON.stringify(data)} from ${node}`,
        {
          local: true,
        },
      );
    });
  }

  @EarwaxEvent('on_connect')
  connected(@Ctx() ctx: ConnectionContext) {
    ctx.sendString(`id ${ctx.id} ${this.registry.nodeId}`);
  }

  @EarwaxEvent('on_data')
  async command(@Payload() line: string, @Ctx() ctx: ConnectionContext) {
    const [verb, ...args] = line.split(' ');
    try {
      ctx.sendString(await this.run(verb, args, ctx));
    } catch (err) {
      ctx.sendString(
        err instanceof ClusterUnavailableError
          ? `unavailable ${verb}`
          : `error ${verb}: ${(err as Error).message}`,
      );
    }
  }

  onApplicationShutdown() {
    report('shutdown');
  }

  private async run(
    verb: string,
    args: string[],
    ctx: ConnectionContext,
  ): Promise<string> {
    const registry = this.registry;
    const rest = args.slice(1).join(' ');
    switch (verb) {
      case 'join':
        return `joined ${args[0]} ${ctx.join(args[0])}`;
      case 'leave':
        return `left ${args[0]} ${ctx.leave(args[0])}`;
      case 'say':
        registry.broadcast(`[${args[0]}] ${rest}`, {
          room: args[0],
          except: ctx,
        });
        return `said ${args[0]}`;
      case 'all':
        registry.broadcast(args.join(' '));
        return 'sent all';
      case 'others':
        registry.broadcast(args.join(' '), { except: ctx });
        return 'sent others';
      case 'kick':
        return `kick ${await registry.disconnectById(args[0])}`;
      case 'pull':
        return `pull ${await registry.joinById(args[0], args[1])}`;
      case 'push':
        return `push ${await registry.leaveById(args[0], args[1])}`;
      case 'ban': {
        const duration = args[1] === undefined ? undefined : Number(args[1]);
        return `banned ${this.blockList.ban(args[0], { duration }).target}`;
      }
      case 'unban':
        return `unbanned ${this.blockList.unban(args[0])}`;
      case 'clear':
        this.blockList.clear();
        return 'cleared';
      case 'bans':
        return `bans ${
          this.blockList
            .list()
            .map((entry) => entry.target)
            .sort()
            .join(',') || '-'
        }`;
      case 'count':
        return `count ${await registry.countConnections(
          args[0] === undefined ? {} : { room: args[0] },
        )}`;
      case 'who': {
        const all = await registry.fetchConnections(
          args[0] === undefined ? {} : { room: args[0] },
        );
        return `who ${
          all
            .map((p) => p.id)
            .sort()
            .join(',') || '-'
        }`;
      }
      case 'name':
        return `named ${registry.share(ctx, { name: args[0] })}`;
      case 'names': {
        const all = await registry.fetchConnections();
        return `names ${all
          .map((p) => String(p.shared?.name ?? '?'))
          .sort()
          .join(',')}`;
      }
      case 'emit':
        return `emitted ${registry.serverSideEmit(args[0], JSON.parse(rest) as JsonValue)}`;
      default:
        return `unknown ${verb}`;
    }
  }
}

@Module({
  imports: [
    EarwaxModule.forRoot({
      adapter: new RedisAdapter({
        redis: {
          ...(process.env.REDIS_URL === undefined
            ? {}
            : { port: Number(new URL(process.env.REDIS_URL).port) }),
          host: '127.0.0.1',
          // Reconnect quickly: the specs stop and restart Redis.
          retryStrategy: () => 100,
        },
        prefix: process.env.REDIS_PREFIX ?? 'earwax-test',
        nodeId: process.env.NODE_ID,
        heartbeatInterval: number('HEARTBEAT_MS'),
        presenceTtl: number('PRESENCE_TTL_MS'),
        requestTimeout: number('REQUEST_TIMEOUT_MS'),
      }),
    }),
  ],
  controllers: [ClusterGameController],
})
class ClusterGameModule {}

const logger = new StdoutLogger();
const transport = new EarwaxTransport({
  host: '127.0.0.1',
  port: 0,
  encoding: 'utf8',
  // The specs connect many times from one address.
  connectionRate: false,
});
const app = await NestFactory.createMicroservice(ClusterGameModule, {
  strategy: transport,
  logger,
});
app.enableShutdownHooks();
await app.listen();
report(`port:${transport.address()?.port}`);
