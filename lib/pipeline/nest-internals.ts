/**
 * The only place in `lib/` that reaches inside Nest's packages.
 *
 * `NestDirectDispatcher` does what Nest's RPC pipeline does for a handler
 * with no enhancer, and for that it needs a few things Nest exports from no
 * package root, in Nest 11 or in Nest 12: the metadata keys its decorators
 * write, its RPC parameter types, the `ExecutionContext` class it builds for
 * a call and the handler that turns an error into its result. They live at
 * file paths inside the packages, which a minor release may move.
 *
 * A static `import` of a moved path would fail the whole application at
 * import time, so these are loaded with dynamic `import()` (Nest 12 is ESM
 * only: `require()` cannot load it under Jest or before Node 20.19), each
 * checked for the shape the dispatcher relies on. The outcome is a value, never
 * a throw: either every internal, or which are missing and why, in which case
 * every handler goes through Nest's own pipeline.
 *
 * `test/unit/nest-internals.spec.ts` loads them against the installed Nest
 * (CI runs it against Nest 11 and Nest 12) and fails naming the path.
 */
import {
  type ArgumentsHost,
  type ExecutionContext,
  Injectable,
  type OnModuleInit,
  type Type,
} from '@nestjs/common';
import type { Observable } from 'rxjs';
import { loadModule } from '../utils/load-module.js';

/** Nest's `ExecutionContextHost`, as the dispatcher uses it. */
export interface ExecutionContextHostInstance extends ExecutionContext {
  /** Sets what `getType()` returns (`'rpc'` for a microservice handler). */
  setType(type: string): void;
}

/** The `ExecutionContextHost` class: `new (args, class?, handler?)`. */
export type ExecutionContextHostClass = new (
  args: unknown[],
  constructorRef?: Type<unknown> | null,
  handler?: ((...args: never[]) => unknown) | null,
) => ExecutionContextHostInstance;

/** Nest's `RpcExceptionsHandler`, as the dispatcher uses it (no filters). */
export interface RpcExceptionsHandlerInstance {
  /** The Observable Nest's pipeline returns for `exception`. */
  handle(exception: Error, host: ArgumentsHost): Observable<unknown>;
}

/** The `RpcExceptionsHandler` class. */
export type RpcExceptionsHandlerClass = new () => RpcExceptionsHandlerInstance;

/** Nest's `PatternHandler` enum. */
export interface PatternHandlerEnum {
  readonly MESSAGE: number;
  readonly EVENT: number;
}

/** Nest's `RpcParamtype` enum: the members `@Payload()` and `@Ctx()` write. */
export interface RpcParamtypeEnum {
  readonly PAYLOAD: number;
  readonly CONTEXT: number;
}

/**
 * What the direct dispatcher needs from inside Nest, under Nest's own names.
 *
 * @internal
 */
export interface NestInternals {
  /** Key of `@UseGuards()` metadata on a class or method. */
  readonly GUARDS_METADATA: string;
  /** Key of `@UseInterceptors()` metadata. */
  readonly INTERCEPTORS_METADATA: string;
  /** Key of `@UsePipes()` metadata. */
  readonly PIPES_METADATA: string;
  /** Key of `@UseFilters()` metadata. */
  readonly EXCEPTION_FILTERS_METADATA: string;
  /** Marks a `createParamDecorator()` parameter in its metadata key. */
  readonly CUSTOM_ROUTE_ARGS_METADATA: string;
  /** Key of the parameter decorators' metadata of a microservice handler. */
  readonly PARAM_ARGS_METADATA: string;
  /** Key of `@MessagePattern`/`@EventPattern` patterns on a method. */
  readonly PATTERN_METADATA: string;
  /** Key of the transport a pattern decorator is bound to. */
  readonly TRANSPORT_METADATA: string;
  /** Key telling `@MessagePattern` from `@EventPattern` (a `PatternHandler`). */
  readonly PATTERN_HANDLER_METADATA: string;
  /** Nest's `PatternHandler` enum: the values under that key. */
  readonly PatternHandler: PatternHandlerEnum;
  readonly RpcParamtype: RpcParamtypeEnum;
  readonly ExecutionContextHost: ExecutionContextHostClass;
  readonly RpcExceptionsHandler: RpcExceptionsHandlerClass;
}

/** One internal that could not be loaded. */
export interface MissingInternal {
  /** Its name in Nest (`ExecutionContextHost`). */
  readonly name: keyof NestInternals;
  /** The module it was looked for in. */
  readonly path: string;
  /** What went wrong: the import's error, or what the export looks like. */
  readonly reason: string;
}

/**
 * The outcome of loading Nest's internals: all of them, or what is missing.
 *
 * @internal
 */
export type NestInternalsResult =
  | { readonly available: true; readonly internals: NestInternals }
  | { readonly available: false; readonly missing: readonly MissingInternal[] };

/** Loads a module by specifier, as `import()` does. */
export type ModuleImporter = (specifier: string) => Promise<unknown>;

/** Says what is wrong with a value, or `undefined` when it fits. */
type Check = (value: unknown) => string | undefined;

const COMMON_CONSTANTS = '@nestjs/common/constants.js';
const MICROSERVICES_CONSTANTS = '@nestjs/microservices/constants.js';
const RPC_PARAMTYPE = '@nestjs/microservices/enums/rpc-paramtype.enum.js';
const PATTERN_HANDLER = '@nestjs/microservices/enums/pattern-handler.enum.js';
const EXECUTION_CONTEXT_HOST = '@nestjs/core/helpers/execution-context-host.js';
const RPC_EXCEPTIONS_HANDLER =
  '@nestjs/microservices/exceptions/rpc-exceptions-handler.js';

const metadataKey: Check = (value) =>
  typeof value === 'string' && value.length > 0
    ? undefined
    : `is ${kindOf(value)}, not a metadata key`;

/** An enum with two distinct numeric members. */
const enumOf =
  (first: string, second: string): Check =>
  (value) => {
    if (typeof value !== 'object' || value === null) {
      return `is ${kindOf(value)}, not an enum`;
    }
    const members = value as Record<string, unknown>;
    for (const member of [first, second]) {
      if (typeof members[member] !== 'number') {
        return `has no numeric ${member} member`;
      }
    }
    return members[first] === members[second]
      ? `has ${first} equal to ${second}`
      : undefined;
  };

/** A class whose prototype has each of `methods`. */
const classWith =
  (...methods: string[]): Check =>
  (value) => {
    if (typeof value !== 'function') return `is ${kindOf(value)}, not a class`;
    const prototype = (value as { prototype?: Record<string, unknown> })
      .prototype;
    const absent = methods.filter(
      (method) => typeof prototype?.[method] !== 'function',
    );
    return absent.length === 0 ? undefined : `has no ${absent.join(', ')}`;
  };

/**
 * Each internal, where it lives (the same path in Nest 11 and Nest 12; none
 * is exported from a package root in either), and what it must look like.
 */
const WANTED: readonly {
  readonly name: keyof NestInternals;
  readonly path: string;
  readonly check: Check;
}[] = [
  { name: 'GUARDS_METADATA', path: COMMON_CONSTANTS, check: metadataKey },
  { name: 'INTERCEPTORS_METADATA', path: COMMON_CONSTANTS, check: metadataKey },
  { name: 'PIPES_METADATA', path: COMMON_CONSTANTS, check: metadataKey },
  {
    name: 'EXCEPTION_FILTERS_METADATA',
    path: COMMON_CONSTANTS,
    check: metadataKey,
  },
  {
    name: 'CUSTOM_ROUTE_ARGS_METADATA',
    path: COMMON_CONSTANTS,
    check: metadataKey,
  },
  {
    name: 'PARAM_ARGS_METADATA',
    path: MICROSERVICES_CONSTANTS,
    check: metadataKey,
  },
  {
    name: 'PATTERN_METADATA',
    path: MICROSERVICES_CONSTANTS,
    check: metadataKey,
  },
  {
    name: 'TRANSPORT_METADATA',
    path: MICROSERVICES_CONSTANTS,
    check: metadataKey,
  },
  {
    name: 'PATTERN_HANDLER_METADATA',
    path: MICROSERVICES_CONSTANTS,
    check: metadataKey,
  },
  {
    name: 'RpcParamtype',
    path: RPC_PARAMTYPE,
    check: enumOf('PAYLOAD', 'CONTEXT'),
  },
  {
    name: 'PatternHandler',
    path: PATTERN_HANDLER,
    check: enumOf('MESSAGE', 'EVENT'),
  },
  {
    name: 'ExecutionContextHost',
    path: EXECUTION_CONTEXT_HOST,
    check: classWith(
      'setType',
      'getType',
      'getArgs',
      'getClass',
      'getHandler',
      'switchToRpc',
    ),
  },
  {
    name: 'RpcExceptionsHandler',
    path: RPC_EXCEPTIONS_HANDLER,
    check: classWith('handle'),
  },
];

/**
 * Every deep module path this file loads, for tests and messages.
 *
 * @internal
 */
export const NEST_INTERNAL_PATHS: readonly string[] = [
  ...new Set(WANTED.map((wanted) => wanted.path)),
];

/**
 * Loads and checks every internal. Never rejects: a path that does not load,
 * or an export that is absent or of the wrong kind, is listed as missing.
 *
 * @param load How a module is loaded (`loadModule` unless a test says
 *   otherwise).
 *
 * @internal
 */
export async function loadNestInternals(
  load: ModuleImporter = loadModule,
): Promise<NestInternalsResult> {
  const modules = new Map<string, Promise<ModuleOutcome>>();
  for (const path of NEST_INTERNAL_PATHS) {
    modules.set(path, loadFrom(load, path));
  }
  const found: Record<string, unknown> = {};
  const missing: MissingInternal[] = [];
  for (const { name, path, check } of WANTED) {
    const outcome = await (modules.get(path) as Promise<ModuleOutcome>);
    if (!outcome.loaded) {
      missing.push({ name, path, reason: outcome.reason });
      continue;
    }
    const value = exportOf(outcome.namespace, name);
    const wrong = check(value);
    if (wrong === undefined) {
      found[name] = value;
    } else {
      missing.push({ name, path, reason: `${name} ${wrong}` });
    }
  }
  if (missing.length > 0) return { available: false, missing };
  // Every name of NestInternals was found and checked just above.
  return { available: true, internals: found as unknown as NestInternals };
}

/**
 * One line naming what is missing and where it was looked for, for a log.
 *
 * @internal
 */
export function describeMissing(missing: readonly MissingInternal[]): string {
  return missing
    .map(({ name, path, reason }) => `${name} from ${path} (${reason})`)
    .join('; ');
}

let shared: Promise<NestInternalsResult> | undefined;
let settled: NestInternalsResult | undefined;

/**
 * The internals, loaded once per process (started at the first call).
 *
 * @internal
 */
export function nestInternals(): Promise<NestInternalsResult> {
  shared ??= loadNestInternals().then((result) => (settled = result));
  return shared;
}

/**
 * The internals if loading has finished, else `undefined` (and loading is
 * started). `NestInternalsReady` makes sure it has finished before a
 * microservice listens.
 *
 * @internal
 */
export function nestInternalsNow(): NestInternalsResult | undefined {
  void nestInternals();
  return settled;
}

/**
 * Holds the application's init until Nest's internals are loaded (or known
 * missing), so that the dispatcher, which decides synchronously when a
 * transport listens, never meets them half-loaded. Nest awaits init hooks
 * before it calls a microservice's `listen()`.
 *
 * @internal
 */
@Injectable()
export class NestInternalsReady implements OnModuleInit {
  async onModuleInit(): Promise<void> {
    await nestInternals();
  }
}

type ModuleOutcome =
  | { readonly loaded: true; readonly namespace: object }
  | { readonly loaded: false; readonly reason: string };

async function loadFrom(
  load: ModuleImporter,
  path: string,
): Promise<ModuleOutcome> {
  try {
    const namespace = await load(path);
    if (typeof namespace !== 'object' || namespace === null) {
      return { loaded: false, reason: `${path} is not a module` };
    }
    return { loaded: true, namespace };
  } catch (err) {
    // Not `instanceof Error`: an error from another realm (a Jest or vm
    // context) is an Error too. The first line only: Node may add more.
    const message = (err as { message?: unknown } | null)?.message;
    const text = typeof message === 'string' ? message : String(err);
    return { loaded: false, reason: text.split('\n')[0] };
  }
}

/**
 * A named export. A CommonJS module (Nest 11) may show it only on `default`
 * when Node's static analysis of the file misses it.
 */
function exportOf(namespace: object, name: string): unknown {
  const exports = namespace as Record<string, unknown>;
  if (name in exports) return exports[name];
  const fallback = exports.default;
  return typeof fallback === 'object' && fallback !== null
    ? (fallback as Record<string, unknown>)[name]
    : undefined;
}

function kindOf(value: unknown): string {
  return value === null ? 'null' : typeof value;
}
