/**
 * nestjs-earwax under benchmark: a Nest microservice on `EarwaxTransport`,
 * handlers as an application writes them (`@EarwaxEvent`, `@Payload()`,
 * `@Ctx()`), with no guard, interceptor, pipe or filter: the transport calls
 * them directly, as Nest's pipeline would have nothing to apply.
 *
 * Modes (`--mode`):
 * - `line`: line framing; `on_data` echoes with `ctx.sendBytes(line)`.
 * - `raw`: `framing: 'raw'`; `on_data` echoes with `ctx.sendRaw(chunk)`.
 * - `telnet`: as `line`, with `telnet: true` (input through the telnet
 *   codec, output IAC-escaped).
 * - `broadcast`: a line from any connection goes to every other one through
 *   the injected `ConnectionRegistry.broadcast()`.
 * - `turn`: `on_data` answers each line with five `ctx.sendString()` calls
 *   (a game's turn: the `TURN_LINES` and a prompt), as a game writes them.
 * - `room`: `join <room>` puts the connection in a room through the
 *   injected `ConnectionRegistry.join()`; then each `say <text>` is
 *   answered with three `ctx.sendString()` calls and one line to the rest of
 *   the room, `registry.broadcast(text, { room, except: ctx })`.
 * - `churn`: a `ConnectionGuard` checks a ban list, `on_connect` greets,
 *   `on_disconnect` counts.
 * - `flood`: a connection that sends `flood` gets lines through
 *   `ctx.sendString()` until the transport drops it (`maxOutputBuffer`,
 *   reason `slow_consumer`) or `--flood-ms` passes.
 */
import 'reflect-metadata';
import {
  Controller,
  Inject,
  Injectable,
  type ModuleMetadata,
  type Type,
} from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { Ctx, Payload } from '@nestjs/microservices';
import {
  BANNED_HOSTS,
  FLOOD_TEXT,
  FLOOD_TICK_MS,
  GREETING,
  ROOM_BROADCAST_PREFIX,
  ROOM_HEARD,
  TURN_LINES,
  serve,
  serverArgs,
  turnPrompt,
} from './control.js';
import { earwax, type EarwaxApi } from './earwax-package.js';
import { openTelemetryOption } from './otel.js';

const {
  ConnectionGuard,
  ConnectionRegistry,
  EarwaxEvent,
  EarwaxModule,
  EarwaxTransport,
} = earwax;
type ConnectionContext = EarwaxApi.ConnectionContext;

const args = serverArgs();
const extras = {
  floods: 0,
  floodMaxBuffered: 0,
  slowConsumerDrops: 0,
  disconnects: 0,
};

@Controller()
class LineEchoController {
  @EarwaxEvent('on_data')
  echo(@Payload() line: Buffer, @Ctx() ctx: ConnectionContext): void {
    ctx.sendBytes(line);
  }
}

@Controller()
class RawEchoController {
  @EarwaxEvent('on_data')
  echo(@Payload() chunk: Buffer, @Ctx() ctx: ConnectionContext): void {
    ctx.sendRaw(chunk);
  }
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

@Controller()
class TurnController {
  @EarwaxEvent('on_data')
  command(
    @Payload() _line: Buffer,
    @Ctx() ctx: EarwaxApi.ConnectionContext<{ turn?: number }>,
  ): void {
    const turn = (ctx.data.turn ?? 0) + 1;
    ctx.data.turn = turn;
    for (const line of TURN_LINES) ctx.sendString(line);
    ctx.sendString(turnPrompt(turn));
  }
}

/** A `room` player's state (`ctx.data`). */
interface Player {
  name?: string;
  room?: string;
  turn?: number;
}
let players = 0;

@Controller()
class RoomController {
  constructor(
    @Inject(ConnectionRegistry)
    private readonly registry: EarwaxApi.ConnectionRegistry,
  ) {}

  @EarwaxEvent('on_data')
  command(
    @Payload() data: Buffer,
    @Ctx() ctx: EarwaxApi.ConnectionContext<Player>,
  ): void {
    const line = data.toString();
    const player = ctx.data;
    if (player.room === undefined) {
      if (!line.startsWith('join ')) return;
      const room = line.slice(5);
      this.registry.join(ctx, room);
      player.room = room;
      player.name = `player${++players}`;
      ctx.sendString(`You join room ${room}.`);
      return;
    }
    const text = line.startsWith('say ') ? line.slice(4) : line;
    const turn = (player.turn ?? 0) + 1;
    player.turn = turn;
    ctx.sendString(`You say, '${text}'`);
    ctx.sendString(ROOM_HEARD);
    ctx.sendString(turnPrompt(turn));
    this.registry.broadcast(
      `${ROOM_BROADCAST_PREFIX}${player.name} says, '${text}'`,
      { room: player.room, except: ctx },
    );
  }
}

@Injectable()
class BanListGuard extends ConnectionGuard {
  override canConnect(ctx: ConnectionContext): boolean {
    return !BANNED_HOSTS.has(ctx.hostname);
  }
}

@Controller()
class ChurnController {
  @EarwaxEvent('on_connect')
  greet(@Ctx() ctx: ConnectionContext): void {
    ctx.sendString(GREETING);
  }

  @EarwaxEvent('on_disconnect')
  gone(): void {
    extras.disconnects++;
  }
}

@Controller()
class FloodController {
  @EarwaxEvent('on_data')
  flood(@Payload() line: Buffer, @Ctx() ctx: ConnectionContext): void {
    if (line.toString() !== 'flood') return;
    extras.floods++;
    const until = Date.now() + args.floodMs;
    const timer = setInterval(() => {
      if (!ctx.isOpen || Date.now() >= until) {
        clearInterval(timer);
        return;
      }
      for (let i = 0; i < args.floodLines; i++) {
        if (!ctx.sendString(FLOOD_TEXT)) break;
      }
      extras.floodMaxBuffered = Math.max(
        extras.floodMaxBuffered,
        ctx.socket.writableLength,
      );
    }, FLOOD_TICK_MS);
  }

  @EarwaxEvent('on_disconnect')
  gone(@Payload() reason: string): void {
    extras.disconnects++;
    if (reason === 'slow_consumer') extras.slowConsumerDrops++;
  }
}

const controllers: Record<string, Type<unknown>> = {
  line: LineEchoController,
  telnet: LineEchoController,
  raw: RawEchoController,
  turn: TurnController,
  room: RoomController,
  broadcast: BroadcastController,
  churn: ChurnController,
  flood: FloodController,
};
const controller = controllers[args.mode];
if (!controller) throw new Error(`earwax server: unknown mode ${args.mode}`);

const openTelemetry = await openTelemetryOption();
const transport = new EarwaxTransport({
  ...(openTelemetry === undefined ? {} : { openTelemetry }),
  host: '127.0.0.1',
  port: args.port,
  logConnections: false,
  framing: args.mode === 'raw' ? 'raw' : 'line',
  telnet: args.mode === 'telnet',
  // The limits stay on, so their cost is measured, but set far above what
  // the load generator does from its one address (builds without limits
  // ignore these options).
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
  imports: [
    EarwaxModule.forRoot(args.mode === 'churn' ? { guard: BanListGuard } : {}),
  ],
  controllers: [controller],
};

/** The transport's connections, live or ending (-1: not found). */
function tracked(of: EarwaxApi.EarwaxTransport): number {
  const hub = (
    of as unknown as { hub?: { live: Set<unknown>; ending: Set<unknown> } }
  ).hub;
  return hub ? hub.live.size + hub.ending.size : -1;
}

await serve(
  {
    listen: async () => {
      const app = await NestFactory.createMicroservice(appModule, {
        strategy: transport,
        logger: ['error', 'warn'],
      });
      await app.listen();
    },
    connections: () => transport.connections.size,
    extras: () => ({
      ...extras,
      // Connections the transport still tracks, live or ending (private;
      // read for the nothing-retained check only).
      liveContexts: tracked(transport),
    }),
    close: () => transport.close(),
  },
  args.port,
);
