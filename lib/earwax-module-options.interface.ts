import type {
  InjectionToken,
  ModuleMetadata,
  OptionalFactoryDependency,
  Type,
} from '@nestjs/common';
import type { EarwaxAdapter } from './cluster/earwax.adapter.js';
import type { ConnectionGuard } from './guard/connection.guard.js';
import type { EarwaxTransportOptions } from './transport/earwax-transport-options.interface.js';

/**
 * Transport options an `EarwaxModule` applies to every `EarwaxTransport` of
 * its application, under the options given to the transport's constructor.
 * Handy for limits read from a `ConfigService`. `tls` and `listeners` are
 * not among them: a transport's listeners are set up when it is
 * constructed.
 *
 * @publicApi
 */
export type EarwaxTransportDefaults = Omit<
  EarwaxTransportOptions,
  'guard' | 'registry' | 'tls' | 'listeners'
>;

/**
 * Options of `EarwaxModule.forRoot()`.
 *
 * @publicApi
 */
export interface EarwaxModuleOptions {
  /**
   * The `ConnectionGuard` class to provide, with its dependencies injected.
   * Leave it out to provide `ConnectionGuard` yourself (or to admit
   * everyone).
   */
  guard?: Type<ConnectionGuard>;
  /**
   * Modules that export what the guard injects (the guard is instantiated in
   * `EarwaxModule`, so its dependencies must be visible there).
   */
  imports?: ModuleMetadata['imports'];
  /** Defaults for every transport of the application. */
  transport?: EarwaxTransportDefaults;
  /**
   * What connects the registry and block list to the other processes of a
   * game (`RedisAdapter` of `nestjs-earwax/redis`). Without it, the
   * in-memory default: a single process, as before.
   */
  adapter?: EarwaxAdapter;
}

/**
 * How `EarwaxModule.forRootAsync()` builds the adapter: a factory whose
 * dependencies are injected (a `ConfigService` with the Redis address, say)
 * and must be visible through the module's `imports`.
 *
 * @publicApi
 */
export interface EarwaxAdapterFactory {
  /** Builds the adapter. */
  useFactory: (...args: never[]) => EarwaxAdapter | Promise<EarwaxAdapter>;
  /** What `useFactory` receives. */
  inject?: Array<InjectionToken | OptionalFactoryDependency>;
}

/**
 * What an options factory class of `EarwaxModule.forRootAsync({ useClass })`
 * implements.
 *
 * @publicApi
 */
export interface EarwaxOptionsFactory {
  /** Builds the transport defaults. */
  createEarwaxOptions():
    EarwaxTransportDefaults | Promise<EarwaxTransportDefaults>;
}

/**
 * Options of `EarwaxModule.forRootAsync()`: the guard is a class known up
 * front; the transport defaults come from a factory.
 *
 * @publicApi
 */
export interface EarwaxModuleAsyncOptions extends Pick<
  ModuleMetadata,
  'imports'
> {
  /**
   * The `ConnectionGuard` class to provide, as in `forRoot()`; `imports` must
   * make its dependencies visible, as well as the factory's.
   */
  guard?: Type<ConnectionGuard>;
  /** Builds the transport defaults from injected providers. */
  useFactory?: (
    ...args: never[]
  ) => EarwaxTransportDefaults | Promise<EarwaxTransportDefaults>;
  /** What `useFactory` receives. */
  inject?: Array<InjectionToken | OptionalFactoryDependency>;
  /** A class implementing {@link EarwaxOptionsFactory}, instantiated here. */
  useClass?: Type<EarwaxOptionsFactory>;
  /** An existing provider implementing {@link EarwaxOptionsFactory}. */
  useExisting?: Type<EarwaxOptionsFactory>;
  /**
   * The adapter, as in `forRoot()`, or a factory that builds it from
   * injected providers.
   */
  adapter?: EarwaxAdapter | EarwaxAdapterFactory;
}
