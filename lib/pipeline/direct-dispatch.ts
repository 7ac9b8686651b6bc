import { Logger } from '@nestjs/common';
import {
  type ApplicationConfig,
  MetadataScanner,
  type ModulesContainer,
} from '@nestjs/core';
import { catchError, isObservable, type Observable } from 'rxjs';
import { EARWAX_EVENTS_METADATA } from '../earwax.constants.js';
import { isThenable } from '../utils/is-thenable.js';
import {
  describeMissing,
  type ExecutionContextHostInstance,
  type NestInternals,
  type NestInternalsResult,
  nestInternalsNow,
} from './nest-internals.js';

/**
 * A handler called without Nest's generic pipeline: it returns the method's
 * own result (a value, a promise or an Observable), and what the method throws
 * or rejects with comes back as Nest's exception handler's Observable, as it
 * does from Nest's pipeline.
 *
 * @internal
 */
export type DirectHandler = (data: unknown, ctx: object) => unknown;

/** @internal What the binder hands the transport. */
export interface DirectDispatcher {
  /**
   * A direct handler for the `@EarwaxEvent` method `method`, or `undefined`
   * when Nest's pipeline has something to apply to it (or the method cannot
   * be told apart from another), so Nest's own handler must run.
   */
  compile(method: unknown): DirectHandler | undefined;
}

interface Candidate {
  readonly instance: object;
  readonly methodName: string;
  readonly isStatic: boolean;
}

/** One argument of the method, as Nest's `@Payload()`/`@Ctx()` give it. */
type Argument = (data: unknown, ctx: object) => unknown;

interface ParamMetadata {
  readonly index: number;
  readonly data?: unknown;
  readonly pipes?: readonly unknown[];
  readonly factory?: (
    data: unknown,
    context: ExecutionContextHostInstance,
  ) => unknown;
}

const PAYLOAD_ONLY: Argument = (payload) => payload;
const CTX_ONLY: Argument = (_payload, ctx) => ctx;
const UNSET: Argument = () => undefined;

/**
 * Where the dispatcher finds Nest's internals: their loading outcome, or
 * `undefined` while they are still loading.
 *
 * @internal
 */
export type NestInternalsSource = () => NestInternalsResult | undefined;

/**
 * Calls `@EarwaxEvent` methods directly when Nest's RPC pipeline would do
 * nothing to their call but await it.
 *
 * Nest's pipeline (`RpcContextCreator`) costs about ten promises per event even
 * when a handler has no guard, interceptor, pipe or filter: around 2 µs per
 * line, a sixth of what a plain Node echo server spends on it. For such a
 * handler this does what that pipeline does, without the promises: it builds
 * the same arguments (`@Payload()`, `@Ctx()`, custom parameter decorators),
 * calls the method synchronously, and hands an error to the same
 * `RpcExceptionsHandler` Nest would. Whenever an enhancer applies, global
 * (`useGlobal*()`, `APP_GUARD`...), on the class or on the method, or a
 * parameter has a pipe, or the controller is request-scoped, Nest's own
 * handler runs unchanged.
 *
 * A hybrid application's microservice may keep global enhancers of its own
 * (`connectMicroservice()` without `inheritAppConfig`), out of sight of the
 * application's configuration read here; its handlers all go through Nest.
 *
 * What it needs from inside Nest comes from `nest-internals.ts`. When one of
 * those cannot be loaded (a Nest release moved it), every handler goes
 * through Nest, and a warning naming the missing path is logged once.
 *
 * @internal
 */
export class NestDirectDispatcher implements DirectDispatcher {
  private index: Map<unknown, Candidate[]> | undefined;
  private toldMissing = false;
  private toldLoading = false;

  /**
   * @param modules The application's modules, to find each handler's
   *   controller.
   * @param config The application's configuration, for global enhancers.
   * @param isHybrid Whether the application is a hybrid one.
   * @param internals Nest's internals (the ones loaded once per process
   *   unless a test gives others).
   * @param logger Where the missing internals are reported.
   */
  constructor(
    private readonly modules: ModulesContainer,
    private readonly config: ApplicationConfig,
    private readonly isHybrid: () => boolean,
    private readonly internals: NestInternalsSource = nestInternalsNow,
    private readonly logger: Pick<Logger, 'warn' | 'debug'> = new Logger(
      'EarwaxTransport',
    ),
  ) {}

  compile(method: unknown): DirectHandler | undefined {
    if (typeof method !== 'function' || this.isHybrid()) return undefined;
    const internals = this.loadedInternals();
    if (internals === undefined) return undefined;
    if (this.hasGlobalEnhancers()) return undefined;
    // Built at the first call (at listen(), after Nest registered every
    // handler), so controllers are all instantiated.
    this.index ??= this.indexControllers();
    const candidates = this.index.get(method);
    // The same method on two controllers (a shared base class, a controller
    // in two modules): which one a handler calls cannot be told.
    if (candidates?.length !== 1) return undefined;
    const [{ instance, methodName, isStatic }] = candidates;
    if (!isStatic || hasEnhancers(internals, instance.constructor, method)) {
      return undefined;
    }
    const args = argumentsOf(internals, instance, methodName, method);
    if (args === undefined) return undefined;
    return directHandler(internals, instance, method as Method, args);
  }

  /**
   * Nest's internals, or `undefined` (said once) when they are missing or
   * not loaded yet: then every handler goes through Nest's own pipeline.
   */
  private loadedInternals(): NestInternals | undefined {
    const result = this.internals();
    if (result === undefined) {
      // Only when a transport listens outside Nest's init (which waits for
      // them, see NestInternalsReady).
      if (!this.toldLoading) {
        this.toldLoading = true;
        this.logger.debug(
          "Nest's internals are still loading: handlers go through Nest's pipeline.",
        );
      }
      return undefined;
    }
    if (!result.available) {
      if (!this.toldMissing) {
        this.toldMissing = true;
        this.logger.warn(
          `Cannot load ${describeMissing(result.missing)}: this Nest version moved an internal the direct dispatcher needs, so every @EarwaxEvent handler goes through Nest's pipeline (slower, same behaviour).`,
        );
      }
      return undefined;
    }
    return result.internals;
  }

  private hasGlobalEnhancers(): boolean {
    const config = this.config as ApplicationConfig & {
      // Nest 12 only.
      getGlobalPreRequestHooks?: () => readonly unknown[];
    };
    return (
      config.getGlobalGuards().length > 0 ||
      config.getGlobalInterceptors().length > 0 ||
      config.getGlobalPipes().length > 0 ||
      config.getGlobalFilters().length > 0 ||
      config.getGlobalRequestGuards().length > 0 ||
      config.getGlobalRequestInterceptors().length > 0 ||
      config.getGlobalRequestPipes().length > 0 ||
      config.getGlobalRequestFilters().length > 0 ||
      (config.getGlobalPreRequestHooks?.().length ?? 0) > 0
    );
  }

  /** Every controller method with an Earwax pattern, by its function. */
  private indexControllers(): Map<unknown, Candidate[]> {
    const index = new Map<unknown, Candidate[]>();
    const scanner = new MetadataScanner();
    for (const module of this.modules.values()) {
      for (const wrapper of module.controllers.values()) {
        const instance = wrapper.instance as object | null | undefined;
        if (!instance) continue;
        const prototype = Object.getPrototypeOf(instance) as object;
        for (const methodName of scanner.getAllMethodNames(prototype)) {
          const method = (prototype as Record<string, unknown>)[methodName];
          if (!isEarwaxHandler(method)) continue;
          const list = index.get(method) ?? [];
          list.push({
            instance,
            methodName,
            isStatic: wrapper.isDependencyTreeStatic(),
          });
          index.set(method, list);
        }
      }
    }
    return index;
  }
}

type Method = (...args: unknown[]) => unknown;

/** Whether `@EarwaxEvent` decorated the method (it records its events). */
function isEarwaxHandler(method: unknown): boolean {
  if (typeof method !== 'function') return false;
  const events: unknown = Reflect.getMetadata(EARWAX_EVENTS_METADATA, method);
  return Array.isArray(events) && events.length > 0;
}

/** Whether a guard, interceptor, pipe or filter is set on the class or method. */
function hasEnhancers(
  nest: NestInternals,
  type: object,
  method: object,
): boolean {
  for (const key of [
    nest.GUARDS_METADATA,
    nest.INTERCEPTORS_METADATA,
    nest.PIPES_METADATA,
    nest.EXCEPTION_FILTERS_METADATA,
  ]) {
    for (const target of [type, method]) {
      const list: unknown = Reflect.getMetadata(key, target);
      if (Array.isArray(list) ? list.length > 0 : list !== undefined) {
        return true;
      }
    }
  }
  return false;
}

/**
 * The method's arguments as Nest's `RpcContextCreator` builds them, or
 * `undefined` when one has a pipe or is of a kind this does not build.
 */
function argumentsOf(
  nest: NestInternals,
  instance: object,
  methodName: string,
  method: object,
): Argument[] | undefined {
  const { RpcParamtype, ExecutionContextHost } = nest;
  const metadata =
    (Reflect.getMetadata(
      nest.PARAM_ARGS_METADATA,
      instance.constructor,
      methodName,
    ) as Record<string, ParamMetadata> | undefined) ??
    // What Nest's microservices give a method without parameter decorators.
    ({ [`${RpcParamtype.PAYLOAD}:0`]: { index: 0 } } as Record<
      string,
      ParamMetadata
    >);
  const keys = Object.keys(metadata);
  const length = keys.reduce(
    (max, key) => Math.max(max, metadata[key].index + 1),
    0,
  );
  // Unset positions get `undefined`, as in Nest.
  const args: Argument[] = Array.from({ length }, () => UNSET);
  for (const key of keys) {
    const param = metadata[key];
    if (param.pipes !== undefined && param.pipes.length > 0) return undefined;
    const type = key.split(':')[0];
    const data = param.data;
    if (type.includes(nest.CUSTOM_ROUTE_ARGS_METADATA)) {
      const factory = param.factory;
      if (typeof factory !== 'function') {
        args[param.index] = () => null;
        continue;
      }
      const owner = instance.constructor as new () => unknown;
      args[param.index] = (payload, ctx) => {
        const host = new ExecutionContextHost(
          [payload, ctx],
          owner,
          method as Method,
        );
        host.setType('rpc');
        return factory(data, host);
      };
    } else if (Number(type) === Number(RpcParamtype.PAYLOAD)) {
      args[param.index] =
        data === undefined || data === null || data === ''
          ? PAYLOAD_ONLY
          : (payload) =>
              (payload as Record<string, unknown> | null | undefined)?.[
                data as string
              ];
    } else if (Number(type) === Number(RpcParamtype.CONTEXT)) {
      args[param.index] = CTX_ONLY;
    } else {
      return undefined;
    }
  }
  return args;
}

function directHandler(
  { ExecutionContextHost, RpcExceptionsHandler }: NestInternals,
  instance: object,
  method: Method,
  args: Argument[],
): DirectHandler {
  const exceptions = new RpcExceptionsHandler();
  const fail = (
    err: unknown,
    data: unknown,
    ctx: object,
  ): Observable<never> => {
    const host = new ExecutionContextHost([data, ctx]);
    host.setType('rpc');
    return exceptions.handle(err as Error, host) as Observable<never>;
  };
  const settle = (result: unknown, data: unknown, ctx: object): unknown =>
    isObservable(result)
      ? result.pipe(catchError((err: unknown) => fail(err, data, ctx)))
      : result;
  // The usual shapes called without an arguments array.
  const call = specialised(instance, method, args);
  return (data, ctx) => {
    let result: unknown;
    try {
      result = call(data, ctx);
    } catch (err) {
      return fail(err, data, ctx);
    }
    if (isThenable(result)) {
      return Promise.resolve(result).then(
        (value) => settle(value, data, ctx),
        (err: unknown) => fail(err, data, ctx),
      );
    }
    return settle(result, data, ctx);
  };
}

function specialised(
  instance: object,
  method: Method,
  args: Argument[],
): (data: unknown, ctx: object) => unknown {
  if (args.length === 0) return () => method.call(instance);
  const shape = args.map((arg) =>
    arg === PAYLOAD_ONLY ? 'p' : arg === CTX_ONLY ? 'c' : '?',
  );
  switch (shape.join('')) {
    case 'p':
      return (data) => method.call(instance, data);
    case 'pc':
      return (data, ctx) => method.call(instance, data, ctx);
    case 'cp':
      return (data, ctx) => method.call(instance, ctx, data);
    case 'c':
      return (_data, ctx) => method.call(instance, ctx);
    default:
      return (data, ctx) =>
        method.apply(
          instance,
          args.map((arg) => arg(data, ctx)),
        );
  }
}
