import {
  type DynamicModule,
  Global,
  Module,
  type Provider,
} from '@nestjs/common';
import { BlockListService } from './block-list.service.js';
import { EARWAX_MODULE_OPTIONS } from './constants.js';
import { ConnectionGuard } from './connection.guard.js';
import { ConnectionRegistry } from './connection.registry.js';
import { EarwaxBinder } from './earwax.binder.js';
import type {
  EarwaxModuleAsyncOptions,
  EarwaxModuleOptions,
  EarwaxOptionsFactory,
  EarwaxTransportDefaults,
} from './interfaces/earwax-module-options.interface.js';

/**
 * Connects Earwax to dependency injection: provides the
 * `ConnectionRegistry` (connections and rooms) and the `BlockListService`
 * (bans) everywhere, and hands them, with the application's
 * `ConnectionGuard`, to every `EarwaxTransport` the application runs. Import
 * it once, in the root module; it is global.
 *
 * @example
 * ```ts
 * @Module({
 *   imports: [EarwaxModule.forRoot({ guard: BlockListGuard })],
 *   providers: [BanService],
 *   controllers: [GameController],
 * })
 * export class AppModule {}
 * ```
 *
 * @publicApi
 */
@Global()
@Module({})
export class EarwaxModule {
  /**
   * Registers the module with static options.
   *
   * @param options The guard class and transport defaults.
   */
  static forRoot(options: EarwaxModuleOptions = {}): DynamicModule {
    return {
      ...EarwaxModule.build(options.guard, [], {
        provide: EARWAX_MODULE_OPTIONS,
        useValue: options.transport ?? null,
      }),
      imports: options.imports ?? [],
    };
  }

  /**
   * Registers the module with transport defaults built by a factory (from a
   * `ConfigService`, say).
   *
   * @param options The guard class and how to build the transport defaults.
   */
  static forRootAsync(options: EarwaxModuleAsyncOptions): DynamicModule {
    const extra: Provider[] = [];
    let optionsProvider: Provider;
    if (options.useFactory) {
      optionsProvider = {
        provide: EARWAX_MODULE_OPTIONS,
        useFactory: options.useFactory,
        inject: options.inject ?? [],
      };
    } else {
      const factoryClass = options.useClass ?? options.useExisting;
      if (!factoryClass) {
        throw new TypeError(
          'EarwaxModule.forRootAsync() needs useFactory, useClass or useExisting.',
        );
      }
      if (options.useClass) extra.push(options.useClass);
      optionsProvider = {
        provide: EARWAX_MODULE_OPTIONS,
        useFactory: (factory: EarwaxOptionsFactory) =>
          factory.createEarwaxOptions(),
        inject: [factoryClass],
      };
    }
    return {
      ...EarwaxModule.build(options.guard, extra, optionsProvider),
      imports: options.imports ?? [],
    };
  }

  private static build(
    guard: EarwaxModuleOptions['guard'],
    extra: Provider[],
    optionsProvider: Provider<EarwaxTransportDefaults | null>,
  ): DynamicModule {
    const providers: Provider[] = [
      ConnectionRegistry,
      BlockListService,
      EarwaxBinder,
      optionsProvider,
      ...extra,
    ];
    const exports: Array<Provider | typeof ConnectionGuard> = [
      ConnectionRegistry,
      BlockListService,
    ];
    if (guard) {
      providers.push({ provide: ConnectionGuard, useClass: guard });
      exports.push(ConnectionGuard);
    }
    return { module: EarwaxModule, global: true, providers, exports };
  }
}
