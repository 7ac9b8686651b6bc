import 'reflect-metadata';
import { afterEach, describe, expect, it } from '@jest/globals';
import {
  type CallHandler,
  type CanActivate,
  Controller,
  type ExecutionContext,
  Inject,
  Injectable,
  Module,
  type NestInterceptor,
  type PipeTransform,
  Scope,
  UseGuards,
  UseInterceptors,
} from '@nestjs/common';
import { Ctx, EventPattern, Payload } from '@nestjs/microservices';
import { map, type Observable } from 'rxjs';
import {
  ConnectionContext,
  EarwaxEvent,
  EarwaxModule,
  EVENT_HANDLED,
} from '../../lib/index.js';
import { bootEarwax, type Booted } from '../support/boot.js';
import { Journal } from '../support/journal.js';
import { LineClient } from '../support/line-client.js';

const JOURNAL = 'JOURNAL';

/** Parses `verb args` into a command object. */
class ParseCommandPipe implements PipeTransform<
  string,
  { verb: string; args: string }
> {
  transform(line: string) {
    const [verb, ...args] = line.trim().split(/\s+/);
    return { verb: verb.toLowerCase(), args: args.join(' ') };
  }
}

/** Lets only "admin" connections (those that said `login admin`) through. */
@Injectable()
class AdminGuard implements CanActivate {
  static readonly admins = new WeakSet<ConnectionContext>();
  canActivate(context: ExecutionContext): boolean {
    const rpc = context.switchToRpc();
    return AdminGuard.admins.has(rpc.getContext<ConnectionContext>());
  }
}

/** Sends a handler's returned string to its connection and marks the event handled. */
@Injectable()
class ReplyInterceptor implements NestInterceptor {
  intercept(context: ExecutionContext, next: CallHandler): Observable<unknown> {
    const ctx = context.switchToRpc().getContext<ConnectionContext>();
    return next.handle().pipe(
      map((result: unknown) => {
        if (typeof result !== 'string') return result;
        ctx.sendString(result);
        return EVENT_HANDLED;
      }),
    );
  }
}

/** Upper-cases every string payload: registered as a global pipe. */
class ShoutPipe implements PipeTransform {
  transform(value: unknown) {
    return typeof value === 'string' ? value.toUpperCase() : value;
  }
}

@Controller()
class CommandController {
  constructor(@Inject(JOURNAL) private readonly journal: Journal) {}

  @EarwaxEvent('on_data', { priority: 10 })
  @UseInterceptors(ReplyInterceptor)
  command(
    @Payload(new ParseCommandPipe()) cmd: { verb: string; args: string },
    @Ctx() ctx: ConnectionContext,
  ) {
    this.journal.record(`command:${cmd.verb}:${cmd.args}`);
    if (cmd.verb === 'login' && cmd.args === 'admin') {
      AdminGuard.admins.add(ctx);
      return 'Welcome, admin.';
    }
    if (cmd.verb === 'look') return 'You see a room.';
    return undefined;
  }

  @EarwaxEvent('on_data')
  @UseGuards(AdminGuard)
  admin(@Payload() line: string, @Ctx() ctx: ConnectionContext) {
    this.journal.record(`admin:${line}`);
    ctx.sendString(`admin did ${line}`);
  }

  /** Meant for another transport: must never run here. */
  @EventPattern<string>('on_data')
  foreign() {
    this.journal.record('foreign');
  }
}

@Controller()
class ShoutController {
  @EarwaxEvent('on_data')
  echo(@Payload() line: string, @Ctx() ctx: ConnectionContext) {
    ctx.sendString(line);
  }
}

/** A request-scoped controller: Nest builds one instance per event. */
@Controller({ scope: Scope.REQUEST })
class ScopedController {
  static instances = 0;
  constructor() {
    ScopedController.instances++;
  }

  @EarwaxEvent('on_data')
  echo(@Payload() line: string, @Ctx() ctx: ConnectionContext) {
    ctx.sendString(`${line} #${ScopedController.instances}`);
  }
}

describe("Nest's pipeline on @EarwaxEvent handlers", () => {
  let booted: Booted | undefined;
  afterEach(async () => {
    await booted?.app.close();
    booted = undefined;
  });

  it('applies parameter pipes, guards and interceptors, and ignores foreign patterns', async () => {
    const journal = new Journal();
    booted = await bootEarwax(
      {
        imports: [EarwaxModule.forRoot()],
        controllers: [CommandController],
        providers: [{ provide: JOURNAL, useValue: journal }, AdminGuard],
      },
      { encoding: 'utf8' },
    );
    const client = await LineClient.connect(booted.port);
    client.send('LOOK');
    expect(await client.line(0)).toBe('You see a room.');
    // Not handled by the first handler; refused by the guard of the second.
    client.send('shutdown now');
    client.send('login admin');
    expect(await client.line(1)).toBe('Welcome, admin.');
    client.send('shutdown now');
    expect(await client.line(2)).toBe('admin did shutdown now');
    expect(journal.entries).toEqual([
      'command:look:',
      'command:shutdown:now',
      'command:login:admin',
      'command:shutdown:now',
      'admin:shutdown now',
    ]);
    expect(
      booted.logs.find(
        'CommandController.admin failed on on_data: Forbidden resource',
      ),
    ).toHaveLength(1);
    await client.end();
  });

  it('applies global pipes registered on the app', async () => {
    booted = await bootEarwax(
      { controllers: [ShoutController] },
      { encoding: 'utf8' },
      (app) => app.useGlobalPipes(new ShoutPipe()),
    );
    const client = await LineClient.connect(booted.port);
    client.send('quiet please');
    expect(await client.line(0)).toBe('QUIET PLEASE');
    await client.end();
  });

  it('calls the processing start and end hooks around every handler', async () => {
    const hooks = new Journal();
    booted = await bootEarwax(
      { controllers: [ShoutController] },
      { encoding: 'utf8' },
      (_app, transport) => {
        transport.setOnProcessingStartHook((transportId, context, done) => {
          hooks.record(
            `start:${String(transportId === transport.transportId)}:${context instanceof ConnectionContext}`,
          );
          return done();
        });
        transport.setOnProcessingEndHook(() => hooks.record('end'));
      },
    );
    const client = await LineClient.connect(booted.port);
    client.send('hi');
    expect(await client.line(0)).toBe('hi');
    await hooks.waitFor((es) => es.length >= 2);
    expect(hooks.entries).toEqual(['start:true:true', 'end']);
    await client.end();
  });

  it('applies transport defaults from EarwaxModule.forRootAsync under the constructor options', async () => {
    @Injectable()
    class GameConfig {
      readonly maxLineLength = 8;
    }
    @Module({ providers: [GameConfig], exports: [GameConfig] })
    class GameConfigModule {}
    booted = await bootEarwax(
      {
        imports: [
          EarwaxModule.forRootAsync({
            useFactory: (config: GameConfig) => ({
              maxLineLength: config.maxLineLength,
              messages: { lineTooLong: 'from config' },
              encoding: 'latin1',
            }),
            inject: [GameConfig],
            imports: [GameConfigModule],
          }),
        ],
        controllers: [ShoutController],
      },
      { encoding: 'utf8' },
    );
    // The constructor's encoding wins; the module's line limit and message apply.
    const client = await LineClient.connect(booted.port);
    client.send('é');
    expect(await client.line(0)).toBe('é');
    client.send('123456789');
    expect(await client.line(1)).toBe('from config');
    await client.closed;
  });

  it('runs handlers of request-scoped controllers, one instance per event', async () => {
    booted = await bootEarwax(
      { controllers: [ScopedController] },
      { encoding: 'utf8' },
    );
    const client = await LineClient.connect(booted.port);
    const before = ScopedController.instances;
    client.send('a');
    client.send('b');
    await client.waitForLines(2);
    expect(client.lines).toEqual([`a #${before + 1}`, `b #${before + 2}`]);
    await client.end();
  });
});
