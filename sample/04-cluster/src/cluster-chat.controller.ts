import { Controller, type OnApplicationBootstrap } from '@nestjs/common';
import { Ctx, Payload } from '@nestjs/microservices';
import {
  ClusterUnavailableError,
  ConnectionContext,
  ConnectionRegistry,
  EarwaxEvent,
  type ConnectionPresence,
} from '../../../lib/index.js';

/** What a player's connection holds. */
interface ChatSession {
  name: string;
}

const NAME = /^[A-Za-z0-9]{2,16}$/;

/**
 * A chat across every worker: what one player says reaches everyone, on
 * whichever worker (or host) they are, through `registry.broadcast()` and
 * the Redis adapter; `/who` lists the whole cluster from shared presence.
 */
@Controller()
export class ClusterChatController implements OnApplicationBootstrap {
  constructor(private readonly registry: ConnectionRegistry) {
    // Game logic between processes: a worker tells the others it started.
    registry.serverEvents$.subscribe(({ event, data }) => {
      if (event === 'worker-up') {
        registry.broadcast(
          `A new worker (pid ${JSON.stringify(data)}) is serving players.`,
          { local: true },
        );
      }
    });
  }

  onApplicationBootstrap() {
    this.registry.serverSideEmit('worker-up', process.pid);
  }

  @EarwaxEvent('on_connect')
  welcome(@Ctx() ctx: ConnectionContext<ChatSession>) {
    ctx.data.name = `guest${ctx.id.slice(0, 4)}`;
    this.share(ctx);
    ctx.sendString(
      `Welcome, ${ctx.data.name}: worker ${process.pid} serves you. ` +
        '/name <name> to be called something else, /who to see everyone, /quit to leave.',
    );
  }

  @EarwaxEvent('on_data')
  async say(
    @Payload() line: string,
    @Ctx() ctx: ConnectionContext<ChatSession>,
  ) {
    const [verb, ...rest] = line.trim().split(/\s+/);
    switch (verb) {
      case '/quit':
        return ctx.disconnect('quit');
      case '/name':
        return this.rename(ctx, rest[0] ?? '');
      case '/who':
        return this.who();
      default:
        if (verb === '') return;
        // A mistyped command is not chat: it stays with who typed it.
        if (verb.startsWith('/')) {
          return `Unknown command ${verb}; the commands are /name, /who and /quit.`;
        }
        this.registry.broadcast(`${ctx.data.name}: ${line}`, { except: ctx });
    }
  }

  @EarwaxEvent('on_disconnect')
  farewell(@Ctx() ctx: ConnectionContext<ChatSession>) {
    this.registry.broadcast(`${ctx.data.name} has left.`);
  }

  private rename(ctx: ConnectionContext<ChatSession>, name: string): string {
    if (!NAME.test(name)) return 'A name is 2 to 16 letters or digits.';
    const old = ctx.data.name;
    ctx.data.name = name;
    this.share(ctx);
    this.registry.broadcast(`${old} is now ${name}.`, { except: ctx });
    return `You are ${name}.`;
  }

  private async who(): Promise<string> {
    let everyone: ConnectionPresence[];
    try {
      everyone = await this.registry.fetchConnections();
    } catch (err) {
      if (!(err instanceof ClusterUnavailableError)) throw err;
      // Redis is down: this worker still knows its own players.
      const here = [...this.registry].map((ctx) =>
        String(this.registry.sharedState(ctx)?.name),
      );
      return `Only this worker can be reached: ${here.sort().join(', ')}.`;
    }
    return `${everyone.length} online: ${describe(everyone)}.`;
  }

  private share(ctx: ConnectionContext<ChatSession>): void {
    this.registry.share(ctx, { name: ctx.data.name, worker: process.pid });
  }
}

function describe(everyone: ConnectionPresence[]): string {
  return everyone
    .map(
      (p) => `${String(p.shared?.name)} (worker ${String(p.shared?.worker)})`,
    )
    .sort()
    .join(', ');
}
