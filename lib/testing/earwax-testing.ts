import type {
  DynamicModule,
  INestMicroservice,
  LoggerService,
  ModuleMetadata,
  Type,
} from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import type { CustomTransportStrategy } from '@nestjs/microservices';
import { EarwaxTransport } from '../transport/earwax.transport.js';
import { EarwaxTestLogger } from './earwax-test-logger.js';
import { EarwaxTestServer } from './earwax-test-server.js';
import type { EarwaxTestServerOptions } from './interfaces/earwax-test-server-options.interface.js';

/**
 * Anything that builds a microservice from a compiled module: a
 * `TestingModule` from `Test.createTestingModule(...).compile()` (of
 * `@nestjs/testing`, which this kit does not need otherwise).
 *
 * @publicApi
 */
export interface EarwaxMicroserviceFactory {
  createNestMicroservice(options: {
    strategy: CustomTransportStrategy;
    logger: LoggerService;
  }): INestMicroservice;
}

/**
 * What `EarwaxTesting.createServer()` boots: the game's root module class,
 * a dynamic module, plain module metadata (`{ imports, controllers,
 * providers }`), or a compiled `TestingModule` (so a test can
 * `overrideProvider()` first).
 *
 * @publicApi
 */
export type EarwaxTestTarget =
  Type<unknown> | DynamicModule | ModuleMetadata | EarwaxMicroserviceFactory;

/**
 * The entry point of the testing kit (`nestjs-earwax/testing`), in the
 * manner of `@nestjs/testing`'s `Test`: boots a game on a real
 * `EarwaxTransport`, on 127.0.0.1 and a free port, and hands back an
 * {@link EarwaxTestServer} to connect players to.
 *
 * @example
 * ```ts
 * import 'reflect-metadata';
 * import { afterEach, expect, it } from '@jest/globals';
 * import { EarwaxTesting, type EarwaxTestServer } from 'nestjs-earwax/testing';
 * import { AppModule } from '../src/app.module.js';
 *
 * let server: EarwaxTestServer;
 * afterEach(() => server.close());
 *
 * it('greets a player', async () => {
 *   server = await EarwaxTesting.createServer(AppModule, {
 *     transport: { encoding: 'utf8' },
 *   });
 *   const player = await server.connect();
 *   await player.expectLine(/^Welcome/);
 *   player.send('look');
 *   expect(await player.readLine()).toBe('A dark room.');
 * });
 * ```
 *
 * @publicApi
 */
export class EarwaxTesting {
  /**
   * Creates the application with an `EarwaxTransport`, runs `configure`,
   * and listens. A failure anywhere (a module that cannot be built, a
   * handler naming an unregistered event, a port in use) closes what was
   * created and rejects with the original error.
   *
   * @param target The module to boot, its metadata, or a compiled
   *   `TestingModule`.
   * @param options The transport's options, a hook run before listening,
   *   and which log levels to print.
   * @returns The listening server; close it with `server.close()`.
   */
  static async createServer(
    target: EarwaxTestTarget,
    options: EarwaxTestServerOptions = {},
  ): Promise<EarwaxTestServer> {
    const logs = new EarwaxTestLogger({ print: options.printLogs });
    const given = options.transport ?? {};
    const transport = new EarwaxTransport({
      host: '127.0.0.1',
      // With `listeners`, each listener has its own port.
      ...(given.listeners === undefined ? { port: 0 } : {}),
      ...given,
    });
    const appOptions = { strategy: transport, logger: logs };
    let app: INestMicroservice | undefined;
    try {
      app = isFactory(target)
        ? target.createNestMicroservice(appOptions)
        : await NestFactory.createMicroservice(rootModule(target), {
            ...appOptions,
            // Thrown to the test, never a process.abort().
            abortOnError: false,
          });
      app.useLogger(logs);
      await options.configure?.(app, transport);
      await app.listen();
      return new EarwaxTestServer(app, transport, logs);
    } catch (err) {
      // What was created is closed; the original error is what the test sees.
      await (app ? app.close() : transport.close()).catch(() => undefined);
      throw err;
    }
  }
}

function isFactory(
  target: EarwaxTestTarget,
): target is EarwaxMicroserviceFactory {
  return (
    typeof target === 'object' &&
    target !== null &&
    typeof (target as Partial<EarwaxMicroserviceFactory>)
      .createNestMicroservice === 'function'
  );
}

/**
 * A module class or dynamic module as it is; plain metadata as a dynamic
 * module of a fresh class (Nest 11's factory does not take metadata).
 */
function rootModule(
  target: Type<unknown> | DynamicModule | ModuleMetadata,
): Type<unknown> | DynamicModule {
  if (typeof target === 'function' || 'module' in target) return target;
  return { module: class EarwaxTestingModule {}, ...target };
}
