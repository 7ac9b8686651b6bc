import 'reflect-metadata';
import { createRequire } from 'node:module';
import { beforeAll, describe, expect, it } from '@jest/globals';
import {
  type ArgumentsHost,
  type CallHandler,
  type CanActivate,
  Catch,
  createParamDecorator,
  type ExceptionFilter,
  type NestInterceptor,
  type PipeTransform,
  UseFilters,
  UseGuards,
  UseInterceptors,
  UsePipes,
} from '@nestjs/common';
import { ApplicationConfig, ModulesContainer } from '@nestjs/core';
import { Ctx, Payload, RpcException } from '@nestjs/microservices';
import { firstValueFrom } from 'rxjs';
import { NestDirectDispatcher } from '../../lib/pipeline/direct-dispatch.js';
import {
  describeMissing,
  loadNestInternals,
  type ModuleImporter,
  NEST_INTERNAL_PATHS,
  type NestInternals,
  type NestInternalsResult,
} from '../../lib/pipeline/nest-internals.js';

const nestVersion = (
  createRequire(import.meta.url)('@nestjs/core/package.json') as {
    version: string;
  }
).version;

const EXECUTION_CONTEXT_HOST = '@nestjs/core/helpers/execution-context-host.js';

/** `import()`, except that `path` cannot be found. */
function without(path: string): ModuleImporter {
  return (specifier) =>
    specifier === path
      ? Promise.reject(
          new Error(`Cannot find module '${specifier}' imported from here`),
        )
      : import(specifier);
}

describe(`The deep paths, in the installed Nest ${nestVersion}`, () => {
  // A path that moved fails here, alone and named.
  it.each(NEST_INTERNAL_PATHS.map((path) => [path]))(
    '%s still loads',
    async (path) => {
      await expect(import(path)).resolves.toBeDefined();
    },
  );
});

describe(`Nest's internals, as the dispatcher uses them, in Nest ${nestVersion}`, () => {
  let nest: NestInternals;
  beforeAll(async () => {
    const result = await loadNestInternals();
    if (!result.available) {
      throw new Error(
        `Nest ${nestVersion} moved what the direct dispatcher needs: ${describeMissing(result.missing)}`,
      );
    }
    nest = result.internals;
  });

  it('has the metadata keys Nest enhancer decorators write', () => {
    class Guard implements CanActivate {
      canActivate() {
        return true;
      }
    }
    class Interceptor implements NestInterceptor {
      intercept(_context: unknown, next: CallHandler) {
        return next.handle();
      }
    }
    class Pipe implements PipeTransform {
      transform(value: unknown) {
        return value;
      }
    }
    @Catch()
    class Filter implements ExceptionFilter {
      catch() {}
    }
    @UseGuards(Guard)
    @UseInterceptors(Interceptor)
    class Enhanced {
      @UsePipes(Pipe)
      @UseFilters(Filter)
      handle() {}
    }
    expect(Reflect.getMetadata(nest.GUARDS_METADATA, Enhanced)).toEqual([
      Guard,
    ]);
    expect(Reflect.getMetadata(nest.INTERCEPTORS_METADATA, Enhanced)).toEqual([
      Interceptor,
    ]);
    const method = Enhanced.prototype.handle;
    expect(Reflect.getMetadata(nest.PIPES_METADATA, method)).toEqual([Pipe]);
    expect(
      Reflect.getMetadata(nest.EXCEPTION_FILTERS_METADATA, method),
    ).toEqual([Filter]);
  });

  it('reads parameter decorators as @Payload(), @Ctx() and custom ones write them', () => {
    const Custom = createParamDecorator((data: string) => data);
    class Pipe implements PipeTransform {
      transform(value: unknown) {
        return value;
      }
    }
    class Handler {
      handle(
        @Payload() payload: unknown,
        @Ctx() ctx: unknown,
        @Custom('x') custom: unknown,
        @Payload('field', new Pipe()) field: unknown,
      ) {
        return [payload, ctx, custom, field];
      }
    }
    const metadata = Reflect.getMetadata(
      nest.PARAM_ARGS_METADATA,
      Handler,
      'handle',
    ) as Record<
      string,
      { index: number; data?: unknown; pipes?: unknown[]; factory?: unknown }
    >;
    expect(metadata).toBeDefined();
    const byIndex = new Map(
      Object.entries(metadata).map(([key, param]) => [param.index, key]),
    );
    expect(byIndex.get(0)).toBe(`${nest.RpcParamtype.PAYLOAD}:0`);
    expect(byIndex.get(1)).toBe(`${nest.RpcParamtype.CONTEXT}:1`);
    const custom = byIndex.get(2) as string;
    expect(custom.split(':')[0]).toContain(nest.CUSTOM_ROUTE_ARGS_METADATA);
    expect(typeof metadata[custom].factory).toBe('function');
    expect(metadata[custom].data).toBe('x');
    expect(byIndex.get(3)).toBe(`${nest.RpcParamtype.PAYLOAD}:3`);
    expect(metadata[`${nest.RpcParamtype.PAYLOAD}:3`]).toMatchObject({
      data: 'field',
      pipes: [expect.any(Pipe)],
    });
  });

  it('builds an ExecutionContextHost as custom parameter decorators read it', () => {
    class Owner {
      handle() {}
    }
    const payload = { line: 'hi' };
    const ctx = { id: 'c1' };
    const host = new nest.ExecutionContextHost(
      [payload, ctx],
      Owner,
      Owner.prototype.handle,
    );
    host.setType('rpc');
    expect(host.getType()).toBe('rpc');
    expect(host.getClass()).toBe(Owner);
    expect(host.getHandler()).toBe(Owner.prototype.handle);
    expect(host.getArgs()).toEqual([payload, ctx]);
    expect(host.switchToRpc().getData()).toBe(payload);
    expect(host.switchToRpc().getContext()).toBe(ctx);
  });

  it("turns the root package's RpcException into Nest's error result", async () => {
    const host = new nest.ExecutionContextHost([undefined, {}]);
    host.setType('rpc');
    const handled = new nest.RpcExceptionsHandler().handle(
      new RpcException('refused politely'),
      host as ArgumentsHost,
    );
    // The same RpcException class as the package root's, or every
    // RpcException a handler throws would read as an unknown error.
    await expect(firstValueFrom(handled)).rejects.toEqual({
      status: 'error',
      message: 'refused politely',
    });
  });
});

describe('loadNestInternals, when a path moved', () => {
  it('says which internal is missing, from which path, and why', async () => {
    const result = await loadNestInternals(without(EXECUTION_CONTEXT_HOST));
    expect(result).toEqual({
      available: false,
      missing: [
        {
          name: 'ExecutionContextHost',
          path: EXECUTION_CONTEXT_HOST,
          reason: `Cannot find module '${EXECUTION_CONTEXT_HOST}' imported from here`,
        },
      ],
    });
  });

  it('lists an export that is absent or not of the expected kind', async () => {
    const result = await loadNestInternals((specifier) =>
      specifier.endsWith('/rpc-paramtype.enum.js')
        ? Promise.resolve({ RpcParamtype: { PAYLOAD: '3' } })
        : specifier.endsWith('/rpc-exceptions-handler.js')
          ? Promise.resolve({})
          : import(specifier),
    );
    expect(result.available).toBe(false);
    expect(
      describeMissing(
        (result as Extract<NestInternalsResult, { available: false }>).missing,
      ),
    ).toBe(
      'RpcParamtype from @nestjs/microservices/enums/rpc-paramtype.enum.js (RpcParamtype has no numeric PAYLOAD member); ' +
        'RpcExceptionsHandler from @nestjs/microservices/exceptions/rpc-exceptions-handler.js (RpcExceptionsHandler is undefined, not a class)',
    );
  });

  it("finds a CommonJS module's export on its default export too", async () => {
    const result = await loadNestInternals(async (specifier) => {
      const namespace = (await import(specifier)) as Record<string, unknown>;
      // As Node shows a CommonJS module whose exports it could not analyse.
      return { default: { ...namespace } };
    });
    expect(result.available).toBe(true);
  });
});

describe('NestDirectDispatcher without the internals', () => {
  function recordingLogger() {
    const warnings: string[] = [];
    const debugs: string[] = [];
    return {
      warnings,
      debugs,
      logger: {
        warn: (message: unknown) => void warnings.push(String(message)),
        debug: (message: unknown) => void debugs.push(String(message)),
      },
    };
  }

  it('declines every handler and warns once, naming the missing path', async () => {
    const missing = await loadNestInternals(without(EXECUTION_CONTEXT_HOST));
    const { warnings, logger } = recordingLogger();
    const dispatcher = new NestDirectDispatcher(
      new ModulesContainer(),
      new ApplicationConfig(),
      () => false,
      () => missing,
      logger,
    );
    expect(dispatcher.compile(() => 'one')).toBeUndefined();
    expect(dispatcher.compile(() => 'two')).toBeUndefined();
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toContain(
      `ExecutionContextHost from ${EXECUTION_CONTEXT_HOST}`,
    );
    expect(warnings[0]).toContain("goes through Nest's pipeline");
  });

  it('declines every handler while they are still loading, and says so once', () => {
    const { warnings, debugs, logger } = recordingLogger();
    const dispatcher = new NestDirectDispatcher(
      new ModulesContainer(),
      new ApplicationConfig(),
      () => false,
      () => undefined,
      logger,
    );
    expect(dispatcher.compile(() => 'one')).toBeUndefined();
    expect(dispatcher.compile(() => 'two')).toBeUndefined();
    expect(warnings).toEqual([]);
    expect(debugs).toHaveLength(1);
  });
});
