import {
  type DynamicModule,
  Global,
  Module,
  type Provider,
} from '@nestjs/common';
import { ClusterLifecycle } from './cluster/cluster.lifecycle.js';
import { EarwaxAdapter } from './cluster/earwax.adapter.js';
import { BlockListService } from './block-list/block-list.service.js';
import { EARWAX_MODULE_OPTIONS } from './earwax.constants.js';
import { ConnectionGuard } from './guard/connection.guard.js';
import { ConnectionRegistry } from './registry/connection.registry.js';
import { EarwaxBinder, EarwaxTransports } from './earwax.binder.js';
import { EarwaxMetrics } from './metrics/earwax-metrics.js';
import { NestInternalsReady } from './pipeline/nest-internals.js';
import type {
  EarwaxModuleAsyncOptions,
  EarwaxModuleOptions,
  EarwaxOptionsFactory,
  EarwaxTransportDefaults,
} from './earwax-module-options.interface.js';

/**
 * Connects Earwax to dependency injection: provides the
 * `ConnectionRegistry` (connections and rooms) and the `BlockListService`
 * (bans) everywhere, and hands them, with the application's
 * `ConnectionGuard`, to every `EarwaxTransport` the application runs. Import
 * it once, in the root module; it is global. With an `adapter`, the registry
 * and block list span every process of the game (see `EarwaxAdapter`).
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
   * @param options The guard class, transport defaults, and the cluster
   *   adapter (a `RedisAdapter`) for a game that runs in several processes.
   */
  static forRoot(options: EarwaxModuleOptions = {}): DynamicModule {
    return {
      ...EarwaxModule.build(options.guard, adapterProviders(options.adapter), {
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
   * @param options The guard class, and how to build the transport defaults
   *   and the cluster adapter.
   */
  static forRootAsync(options: EarwaxModuleAsyncOptions): DynamicModule {
    const extra: Provider[] = adapterProviders(options.adapter);
    let optionsProvider: Provider;
    if (options.useFactory) {
      optionsProvider = {
        provide: EARWAX_MODULE_OPTIONS,
        useFactory: options.useFactory,
        inject: options.inject ?? [],
      };
    } else {
      const factoryClass = options.useClass ?? options.useExisting;
      if (!factoryClass && options.adapter !== undefined) {
        // Only the adapter is built asynchronously: no transport defaults.
        return {
          ...EarwaxModule.build(options.guard, extra, {
            provide: EARWAX_MODULE_OPTIONS,
            useValue: null,
          }),
          imports: options.imports ?? [],
        };
      }
      if (!factoryClass) {
        throw new TypeError(
          'EarwaxModule.forRootAsync() needs useFactory, useClass, useExisting or adapter.',
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
      EarwaxMetrics,
      EarwaxTransports,
      EarwaxBinder,
      ClusterLifecycle,
      // The direct dispatcher's Nest internals, loaded before any listen().
      NestInternalsReady,
      optionsProvider,
      ...extra,
    ];
    const exports: Array<
      Provider | typeof ConnectionGuard | typeof EarwaxAdapter
    > = [
      ConnectionRegistry,
      BlockListService,
      EarwaxMetrics,
      // For EarwaxHealthIndicator (nestjs-earwax/terminus).
      EarwaxTransports,
    ];
    if (guard) {
      providers.push({ provide: ConnectionGuard, useClass: guard });
      exports.push(ConnectionGuard);
    }
    if (extra.some((provider) => isAdapterProvider(provider))) {
      exports.push(EarwaxAdapter);
    }
    return { module: EarwaxModule, global: true, providers, exports };
  }
}

/** The provider of the adapter, if one is given. */
function adapterProviders(
  adapter: EarwaxModuleAsyncOptions['adapter'],
): Provider[] {
  if (adapter === undefined) return [];
  if (adapter instanceof EarwaxAdapter) {
    return [{ provide: EarwaxAdapter, useValue: adapter }];
  }
  if (typeof adapter?.useFactory !== 'function') {
    throw new TypeError(
      'EarwaxModule: "adapter" must be an EarwaxAdapter (such as a RedisAdapter) or { useFactory, inject }.',
    );
  }
  return [
    {
      provide: EarwaxAdapter,
      useFactory: adapter.useFactory,
      inject: adapter.inject ?? [],
    },
  ];
}

function isAdapterProvider(provider: Provider): boolean {
  return (
    typeof provider === 'object' &&
    'provide' in provider &&
    provider.provide === EarwaxAdapter
  );
}
