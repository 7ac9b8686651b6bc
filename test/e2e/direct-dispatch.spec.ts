import 'reflect-metadata';
import { afterEach, describe, expect, it } from '@jest/globals';
import {
  type ArgumentsHost,
  type CallHandler,
  Catch,
  type CanActivate,
  Controller,
  createParamDecorator,
  type ExceptionFilter,
  type ExecutionContext,
  type INestMicroservice,
  type ModuleMetadata,
  type NestInterceptor,
  type PipeTransform,
  Scope,
  UseFilters,
  UsePipes,
} from '@nestjs/common';
import {
  APP_INTERCEPTOR,
  ApplicationConfig,
  ModulesContainer,
} from '@nestjs/core';
import { Ctx, Payload, RpcException } from '@nestjs/microservices';
import { map, type Observable, of, throwError } from 'rxjs';
import {
  type ConnectionContext,
  EarwaxEvent,
  EarwaxModule,
  EVENT_HANDLED,
} from '../../lib/index.js';
import { NestDirectDispatcher } from '../../lib/pipeline/direct-dispatch.js';
import {
  loadNestInternals,
  nestInternals,
  type NestInternalsResult,
} from '../../lib/pipeline/nest-internals.js';
import { bootEarwax, type Booted } from '../support/boot.js';
import { LineClient } from '../support/line-client.js';

/** What a custom parameter decorator sees of Nest's execution context. */
const Seen = createParamDecorator((data: string, context: ExecutionContext) => {
  const ctx = context.switchToRpc().getContext<ConnectionContext>();
  return `${data}:${context.getType()}:${context.getClass().name}.${context.getHandler().name}:${typeof ctx.id}`;
});

/** Every kind of result and failure a handler can have, one per command. */
@Controller()
class ScriptedController {
  @EarwaxEvent('on_connect')
  greet(...args: unknown[]) {
    // No parameter decorator: Nest passes the payload alone.
    return `greet:${args.length}`;
  }

  @EarwaxEvent('on_data', { priority: 10 })
  command(
    @Payload() line: string,
    @Ctx() ctx: ConnectionContext,
    @Payload('length') length: number,
    @Seen('seen') seen: string,
  ): unknown {
    const [verb, rest = ''] = line.split(' ');
    switch (verb) {
      case 'sync':
        return rest;
      case 'async':
        return Promise.resolve(`async ${rest}`);
      case 'obs':
        return of(`obs ${rest}`, EVENT_HANDLED);
      case 'handled':
        ctx.sendString('stopping here');
        return EVENT_HANDLED;
      case 'meta':
        return `${length} ${seen}`;
      case 'throw':
        throw new Error('boom');
      case 'reject':
        return Promise.reject(new Error('async boom'));
      case 'rpc':
        throw new RpcException('refused politely');
      case 'obs-error':
        return throwError(() => new RpcException('observable failed'));
      case 'quit':
        ctx.disconnect();
        return EVENT_HANDLED;
      default:
        return undefined;
    }
  }

  @EarwaxEvent('on_data')
  tail(@Payload() line: string) {
    return `tail ${line}`;
  }
}

const SCRIPT = [
  'sync hello',
  'async hello',
  'obs hello',
  'handled',
  'meta',
  'throw',
  'reject',
  'rpc',
  'obs-error',
  'plain',
];

/** What a client sees for the script, through Nest or directly. */
const SCRIPT_LINES = [
  'greet:1',
  'hello',
  'tail sync hello',
  'async hello',
  'tail async hello',
  'obs hello',
  'stopping here',
  '4 seen:rpc:ScriptedController.command:string',
  'tail meta',
  'tail plain',
  'tail last',
];

/** The handler warnings the script logs, through Nest or directly. */
const SCRIPT_WARNINGS = [
  'ScriptedController.command failed on on_data: Internal server error',
  'ScriptedController.command failed on on_data: Internal server error',
  'ScriptedController.command failed on on_data: refused politely',
  'ScriptedController.command failed on on_data: observable failed',
];

/** What a client sees for the script, and the handler warnings logged. */
async function transcript(booted: Booted) {
  const client = await LineClient.connect(booted.port);
  await client.line(0);
  // One chunk: every command arrives in a single read.
  client.write(SCRIPT.map((line) => `${line}\r\n`).join(''));
  client.write('last\r\n');
  await client.until(
    () => client.lines.includes('tail last'),
    'the reply to the last line',
  );
  // Lines after a disconnect in the same chunk are dropped.
  client.write('quit\r\nsync never\r\n');
  await client.closed;
  const warnings = booted.logs
    .find(/failed on/, 'warn')
    .map((entry) => entry.message.replace(/^\[[^\]]+\] /, ''));
  return { lines: client.lines, warnings };
}

describe('handlers called directly when Nest has nothing to apply', () => {
  let booted: Booted | undefined;
  afterEach(async () => {
    await booted?.app.close();
    booted = undefined;
  });

  it('behave exactly as through Nest: arguments, results, stops, errors, disconnects', async () => {
    // Without EarwaxModule there is no dispatcher: Nest's own pipeline.
    booted = await bootEarwax(
      { controllers: [ScriptedController] },
      { encoding: 'utf8' },
    );
    expect(booted.logs.find('handles on_data directly')).toHaveLength(0);
    const throughNest = await transcript(booted);
    await booted.app.close();

    booted = await bootEarwax(
      {
        imports: [EarwaxModule.forRoot()],
        controllers: [ScriptedController],
      },
      { encoding: 'utf8' },
    );
    for (const handler of ['command', 'tail']) {
      expect(
        booted.logs.find(
          `ScriptedController.${handler} handles on_data directly`,
          'debug',
        ),
      ).toHaveLength(1);
    }
    const direct = await transcript(booted);

    expect(direct).toEqual(throughNest);
    // And what that is, so that a change to both at once is noticed too.
    expect(direct.lines).toEqual(SCRIPT_LINES);
    expect(direct.warnings).toEqual(SCRIPT_WARNINGS);
  });
});

describe("when Nest's internals cannot be loaded", () => {
  const MOVED = '@nestjs/core/helpers/execution-context-host.js';
  let booted: Booted | undefined;
  afterEach(async () => {
    await booted?.app.close();
    booted = undefined;
  });

  /** Boots the script with a dispatcher that finds `internals`. */
  function bootWith(internals: NestInternalsResult) {
    // No EarwaxModule: its dispatcher would find the real internals.
    return bootEarwax(
      { controllers: [ScriptedController] },
      { encoding: 'utf8' },
      (app, transport) =>
        transport.bind({
          registry: transport.connections,
          dispatcher: new NestDirectDispatcher(
            app.get(ModulesContainer),
            app.get(ApplicationConfig),
            () => false,
            () => internals,
          ),
        }),
    );
  }

  it("runs every handler through Nest's pipeline, and warns once naming the path", async () => {
    // The same dispatcher with the internals calls them directly.
    booted = await bootWith(await nestInternals());
    expect(booted.logs.find('handles on_data directly', 'debug')).toHaveLength(
      2,
    );
    await booted.app.close();

    booted = await bootWith(
      await loadNestInternals((specifier) =>
        specifier === MOVED
          ? Promise.reject(new Error(`Cannot find module '${specifier}'`))
          : import(specifier),
      ),
    );
    const warnings = booted.logs.find(`from ${MOVED}`, 'warn');
    expect(warnings).toHaveLength(1);
    expect(warnings[0].message).toContain(
      `ExecutionContextHost from ${MOVED} (Cannot find module '${MOVED}')`,
    );
    expect(booted.logs.find('directly', 'debug')).toHaveLength(0);
    for (const [event, handlers] of [
      ['on_connect', ['greet']],
      ['on_data', ['command', 'tail']],
    ] as const) {
      for (const handler of handlers) {
        expect(
          booted.logs.find(
            `ScriptedController.${handler} handles ${event} through Nest's pipeline`,
            'debug',
          ),
        ).toHaveLength(1);
      }
    }
    const throughNest = await transcript(booted);
    expect(throughNest.lines).toEqual(SCRIPT_LINES);
    expect(throughNest.warnings).toEqual(SCRIPT_WARNINGS);
    // Still once, after every handler ran.
    expect(booted.logs.find(`from ${MOVED}`, 'warn')).toHaveLength(1);
  });
});

class UpperPipe implements PipeTransform {
  transform(value: unknown) {
    return typeof value === 'string' ? value.toUpperCase() : value;
  }
}

class DenyQuiet implements CanActivate {
  canActivate(context: ExecutionContext): boolean {
    return context.switchToRpc().getData<string>() !== 'quiet';
  }
}

class Bracket implements NestInterceptor {
  intercept(
    _context: ExecutionContext,
    next: CallHandler,
  ): Observable<unknown> {
    return next.handle().pipe(map((value) => `[${String(value)}]`));
  }
}

@Catch()
class Apologise implements ExceptionFilter {
  catch(_exception: unknown, host: ArgumentsHost) {
    host.switchToRpc().getContext<ConnectionContext>().sendString('sorry');
    return of(EVENT_HANDLED);
  }
}

@Controller()
class EchoController {
  @EarwaxEvent('on_data')
  echo(@Payload() line: string) {
    if (line === 'fail') throw new Error('fail');
    return line;
  }
}

@Controller()
@UseFilters(Apologise)
class FilteredController {
  @EarwaxEvent('on_data')
  echo(@Payload() line: string) {
    if (line === 'fail') throw new Error('fail');
    return line;
  }
}

@Controller()
class MethodPipeController {
  @EarwaxEvent('on_data')
  @UsePipes(UpperPipe)
  echo(@Payload() line: string) {
    return line;
  }
}

@Controller()
class ParamPipeController {
  @EarwaxEvent('on_data')
  echo(@Payload(new UpperPipe()) line: string) {
    return line;
  }
}

@Controller({ scope: Scope.REQUEST })
class ScopedController {
  @EarwaxEvent('on_data')
  echo(@Payload() line: string) {
    return `scoped ${line}`;
  }
}

/** One decorated method, two controllers: which one a handler calls is Nest's to know. */
abstract class SharedEcho {
  @EarwaxEvent('on_data')
  echo(@Payload() line: string) {
    return `${this.constructor.name} ${line}`;
  }
}

@Controller()
class LeftController extends SharedEcho {}

@Controller()
class RightController extends SharedEcho {}

type Setup = (app: INestMicroservice) => void;

const ENHANCED: [
  string,
  ModuleMetadata,
  Setup | undefined,
  string,
  string,
  string,
][] = [
  [
    'a global guard',
    { controllers: [EchoController] },
    (app) => app.useGlobalGuards(new DenyQuiet()),
    'EchoController.echo',
    'quiet',
    'EchoController.echo failed on on_data: Forbidden resource',
  ],
  [
    'a global pipe',
    { controllers: [EchoController] },
    (app) => app.useGlobalPipes(new UpperPipe()),
    'EchoController.echo',
    'hello',
    'HELLO',
  ],
  [
    'an APP_INTERCEPTOR provider',
    {
      controllers: [EchoController],
      providers: [{ provide: APP_INTERCEPTOR, useClass: Bracket }],
    },
    undefined,
    'EchoController.echo',
    'hello',
    '[hello]',
  ],
  [
    'a filter on the class',
    { controllers: [FilteredController] },
    undefined,
    'FilteredController.echo',
    'fail',
    'sorry',
  ],
  [
    'a pipe on the method',
    { controllers: [MethodPipeController] },
    undefined,
    'MethodPipeController.echo',
    'hello',
    'HELLO',
  ],
  [
    'a pipe on a parameter',
    { controllers: [ParamPipeController] },
    undefined,
    'ParamPipeController.echo',
    'hello',
    'HELLO',
  ],
  [
    'a request-scoped controller',
    { controllers: [ScopedController] },
    undefined,
    'ScopedController.echo',
    'hello',
    'scoped hello',
  ],
];

describe('handlers Nest has something to apply to', () => {
  let booted: Booted | undefined;
  afterEach(async () => {
    await booted?.app.close();
    booted = undefined;
  });

  it.each(ENHANCED)(
    'with %s go through Nest, which applies it',
    async (_name, metadata, setup, origin, send, expected) => {
      booted = await bootEarwax(
        {
          ...metadata,
          imports: [EarwaxModule.forRoot(), ...(metadata.imports ?? [])],
        },
        { encoding: 'utf8' },
        setup,
      );
      expect(
        booted.logs.find(`${origin} handles on_data through Nest's pipeline`),
      ).toHaveLength(1);
      const client = await LineClient.connect(booted.port);
      client.send(send);
      client.send('after');
      if (expected.includes('failed on')) {
        await booted.logs.waitFor(expected, 'warn');
      } else {
        expect(await client.line(0)).toBe(expected);
      }
      await client.end();
    },
  );
});

describe('a method shared by two controllers', () => {
  it('goes through Nest for both, and each controller answers for itself', async () => {
    const booted = await bootEarwax(
      {
        imports: [EarwaxModule.forRoot()],
        controllers: [LeftController, RightController],
      },
      { encoding: 'utf8' },
    );
    try {
      expect(
        booted.logs.find("handles on_data through Nest's pipeline", 'debug'),
      ).toHaveLength(2);
      const client = await LineClient.connect(booted.port);
      client.send('hi');
      await client.until(
        () => client.lines.length >= 2,
        'a reply from each controller',
      );
      expect([...client.lines].sort()).toEqual([
        'LeftController hi',
        'RightController hi',
      ]);
      await client.end();
    } finally {
      await booted.app.close();
    }
  });
});
