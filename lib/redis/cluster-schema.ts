import { FORBIDDEN_KEY } from '../cluster/cluster-limits.js';
import type { JsonValue } from '../cluster/cluster.interfaces.js';
import { ClusterMessageError } from '../errors/cluster-message.error.js';

/**
 * Reads one value that came from another process (part of a message, or of
 * a record read back from Redis) as this process uses it, or throws
 * {@link ClusterMessageError} saying where (`at`, a path such as
 * `message.command.reason`) and what is wrong. The building blocks below
 * make one such reader per kind of message from its definition, so every
 * field is checked the same way, in one place.
 *
 * @internal
 */
export type Field<T> = (value: unknown, at: string) => T;

/**
 * A field of an {@link object} that may be absent; absent, it is left out of
 * what is read (never `undefined`, never `null`).
 *
 * @internal
 */
export interface OptionalField<T> {
  readonly optional: Field<T>;
}

/**
 * The fields of an {@link object}: each name with its reader.
 *
 * @internal
 */
export type Shape = {
  readonly [name: string]: Field<unknown> | OptionalField<unknown>;
};

type FieldType<F> =
  F extends OptionalField<infer T> ? T : F extends Field<infer T> ? T : never;
type RequiredNames<S> = {
  [K in keyof S]: S[K] extends OptionalField<unknown> ? never : K;
}[keyof S];
type OptionalNames<S> = {
  [K in keyof S]: S[K] extends OptionalField<unknown> ? K : never;
}[keyof S];
type Flat<T> = { [K in keyof T]: T[K] };

/**
 * What an {@link object} of shape `S` reads.
 *
 * @internal
 */
export type Decoded<S extends Shape> = Flat<
  { readonly [K in RequiredNames<S>]: FieldType<S[K]> } & {
    readonly [K in OptionalNames<S>]?: FieldType<S[K]>;
  }
>;

/**
 * What a {@link variant} reads: one of its cases, with its tag.
 *
 * @internal
 */
export type Variant<
  K extends string,
  C extends { readonly [name: string]: Shape },
> = {
  [N in keyof C & string]: Flat<{ readonly [P in K]: N } & Decoded<C[N]>>;
}[keyof C & string];

/**
 * Throws the error of a value that is not what its field expects.
 *
 * @internal
 */
export function fail(at: string, problem: string): never {
  throw new ClusterMessageError(`${at} ${problem}`);
}

/**
 * A short, single-line picture of a value for an error message: a long
 * string is cut (a forged message must not make a log line of megabytes),
 * lists and objects are only named.
 *
 * @internal
 */
export function shown(value: unknown): string {
  switch (typeof value) {
    case 'string':
      return value.length > 40
        ? `${JSON.stringify(value.slice(0, 40))}… (${value.length} characters)`
        : JSON.stringify(value);
    case 'object':
      if (value === null) return 'null';
      return Array.isArray(value) ? `a list of ${value.length}` : 'an object';
    case 'undefined':
      return 'nothing';
    default:
      return String(value);
  }
}

/**
 * A string of `min` to `max` characters.
 *
 * @internal
 */
export function text(max: number, min = 0): Field<string> {
  return (value, at) => {
    if (typeof value !== 'string') fail(at, `is not a string: ${shown(value)}`);
    if (value.length > max) {
      fail(at, `is longer than ${max} characters: ${shown(value)}`);
    }
    if (value.length < min) {
      fail(at, min === 1 ? 'is empty' : `is shorter than ${min} characters`);
    }
    return value;
  };
}

/**
 * A whole number from `min` to `max` (both safe integers).
 *
 * @internal
 */
export function integer(
  min: number,
  max: number = Number.MAX_SAFE_INTEGER,
): Field<number> {
  return (value, at) => {
    if (
      typeof value !== 'number' ||
      !Number.isSafeInteger(value) ||
      value < min ||
      value > max
    ) {
      fail(at, `is not a whole number from ${min} to ${max}: ${shown(value)}`);
    }
    return value;
  };
}

/**
 * A finite number from `min` to `max`.
 *
 * @internal
 */
export function number(min: number, max: number): Field<number> {
  return (value, at) => {
    if (
      typeof value !== 'number' ||
      !Number.isFinite(value) ||
      value < min ||
      value > max
    ) {
      fail(at, `is not a number from ${min} to ${max}: ${shown(value)}`);
    }
    return value;
  };
}

/**
 * `true` or `false`.
 *
 * @internal
 */
export const boolean: Field<boolean> = (value, at) => {
  if (typeof value !== 'boolean') fail(at, `is not a boolean: ${shown(value)}`);
  return value;
};

/**
 * Exactly `expected`.
 *
 * @internal
 */
export function literal<const T extends string | number>(
  expected: T,
): Field<T> {
  return (value, at) => {
    if (value !== expected) {
      fail(at, `is not ${JSON.stringify(expected)}: ${shown(value)}`);
    }
    return expected;
  };
}

/**
 * One of a fixed set of strings (`what` names the set in errors). Looked
 * up in a `Set`: a value such as `constructor` finds nothing inherited.
 *
 * @internal
 */
export function oneOf<const T extends string>(
  values: readonly T[],
  what: string,
): Field<T> {
  const known: ReadonlySet<string> = new Set(values);
  return (value, at) => {
    if (typeof value !== 'string' || !known.has(value)) {
      fail(at, `is not ${what}: ${shown(value)}`);
    }
    return value as T;
  };
}

/**
 * A list of at most `max` items, each read by `item`.
 *
 * @internal
 */
export function list<T>(item: Field<T>, max: number): Field<T[]> {
  return (value, at) => {
    if (!Array.isArray(value)) fail(at, `is not a list: ${shown(value)}`);
    if (value.length > max) {
      fail(at, `has more than ${max} items (${value.length})`);
    }
    return value.map((v: unknown, i) => item(v, `${at}[${i}]`));
  };
}

/**
 * `field`, or nothing: the field may be left out of its object.
 *
 * @internal
 */
export function optional<T>(field: Field<T>): OptionalField<T> {
  return { optional: field };
}

/**
 * `field`, then a check of what it read: `problem` says what is wrong with
 * it, or returns `undefined`.
 *
 * @internal
 */
export function check<T>(
  field: Field<T>,
  problem: (value: T) => string | undefined,
): Field<T> {
  return (value, at) => {
    const read = field(value, at);
    const wrong = problem(read);
    if (wrong !== undefined) fail(at, wrong);
    return read;
  };
}

/**
 * `field`, then what it read made into something else.
 *
 * @internal
 */
export function map<T, U>(field: Field<T>, convert: (value: T) => U): Field<U> {
  return (value, at) => convert(field(value, at));
}

/**
 * An object with exactly the fields of `shape`: one missing (unless
 * optional) or one the shape does not name is an error. What is read is a
 * new object holding the shape's fields only.
 *
 * @internal
 */
export function object<S extends Shape>(shape: S): Field<Decoded<S>> {
  const names = Object.keys(shape);
  const known: ReadonlySet<string> = new Set(names);
  return (value, at) => {
    const raw = plainObject(value, at);
    const read: Record<string, unknown> = {};
    // The shape's names only: a name of the shape is never `__proto__`.
    for (const name of names) {
      const field = shape[name];
      const item = Object.hasOwn(raw, name) ? raw[name] : undefined;
      const where = `${at}.${name}`;
      if (typeof field === 'function') {
        if (item === undefined) fail(where, 'is missing');
        read[name] = field(item, where);
      } else if (item !== undefined) {
        read[name] = field.optional(item, where);
      }
    }
    for (const name of Object.keys(raw)) {
      if (!known.has(name)) fail(at, `has an unknown field ${shown(name)}`);
    }
    return read as Decoded<S>;
  };
}

/**
 * One of several objects, told apart by the string in their field `tag`
 * (`what` names it in errors); each case is an {@link object} of its own
 * shape plus the tag. An unknown tag is an error; tags are looked up in a
 * `Map`, so `constructor` or `__proto__` finds nothing.
 *
 * @internal
 */
export function variant<
  K extends string,
  C extends { readonly [name: string]: Shape },
>(tag: K, what: string, cases: C): Field<Variant<K, C>> {
  const readers = new Map<string, Field<unknown>>();
  for (const name of Object.keys(cases)) {
    readers.set(name, object({ [tag]: literal(name), ...cases[name] }));
  }
  return (value, at) => {
    const raw = plainObject(value, at);
    const name = Object.hasOwn(raw, tag) ? raw[tag] : undefined;
    const read = typeof name === 'string' ? readers.get(name) : undefined;
    if (read === undefined)
      fail(`${at}.${tag}`, `is not ${what}: ${shown(name)}`);
    return read(raw, at) as Variant<K, C>;
  };
}

/**
 * An object used as a map from `key` to `value`, of at most `max` entries.
 * What is read has no prototype, and no key `__proto__` is taken.
 *
 * @internal
 */
export function dictionary<V>(
  key: Field<string>,
  value: Field<V>,
  max: number,
): Field<Readonly<Record<string, V>>> {
  return (raw, at) => {
    const entries = plainObject(raw, at);
    const keys = Object.keys(entries);
    if (keys.length > max) {
      fail(at, `has more than ${max} entries (${keys.length})`);
    }
    const read = Object.create(null) as Record<string, V>;
    for (const name of keys) {
      const where = `${at}[${shown(name)}]`;
      if (name === FORBIDDEN_KEY) fail(where, 'is a forbidden key');
      read[key(name, where)] = value(entries[name], where);
    }
    return read;
  };
}

/**
 * JSON data (as `JSON.parse` made it) nesting at most `maxDepth` lists and
 * objects deep, without a key `__proto__`, and, if `object`, an object at
 * the top. Checked, not copied.
 *
 * @internal
 */
export function json(maxDepth: number, object: true): Field<JsonObject>;
export function json(maxDepth: number, object?: false): Field<JsonValue>;
export function json(
  maxDepth: number,
  object = false,
): Field<JsonValue | JsonObject> {
  return (value, at) => {
    if (object) plainObject(value, at);
    const problem = jsonProblem(value, maxDepth, 0);
    if (problem !== undefined) fail(`${at}${problem[0]}`, problem[1]);
    return value as JsonValue;
  };
}

/**
 * A JSON object.
 *
 * @internal
 */
export type JsonObject = { readonly [key: string]: JsonValue };

/** What is wrong with JSON data, as [where below it, what], if anything. */
function jsonProblem(
  value: unknown,
  maxDepth: number,
  depth: number,
): [string, string] | undefined {
  switch (typeof value) {
    case 'string':
    case 'boolean':
      return undefined;
    case 'number':
      return Number.isFinite(value)
        ? undefined
        : ['', `is not a finite number: ${value}`];
    case 'object': {
      if (value === null) return undefined;
      if (depth >= maxDepth) {
        return ['', `nests deeper than ${maxDepth} levels`];
      }
      if (Array.isArray(value)) {
        for (let i = 0; i < value.length; i++) {
          const problem = jsonProblem(value[i], maxDepth, depth + 1);
          if (problem) return [`[${i}]${problem[0]}`, problem[1]];
        }
        return undefined;
      }
      const proto = Object.getPrototypeOf(value) as object | null;
      if (proto !== Object.prototype && proto !== null) {
        return ['', 'is not a plain object'];
      }
      for (const key of Object.keys(value)) {
        if (key === FORBIDDEN_KEY) return [`[${shown(key)}]`, 'is forbidden'];
        const item = (value as Record<string, unknown>)[key];
        const problem = jsonProblem(item, maxDepth, depth + 1);
        if (problem) return [`[${shown(key)}]${problem[0]}`, problem[1]];
      }
      return undefined;
    }
    default:
      return ['', `is not JSON data: ${shown(value)}`];
  }
}

/** `value` as an object that is not a list (nor `null`). */
function plainObject(value: unknown, at: string): Record<string, unknown> {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    fail(at, `is not an object: ${shown(value)}`);
  }
  return value as Record<string, unknown>;
}

/**
 * Parses JSON text of at most `maxLength` characters (checked first, so a
 * huge message costs no parse).
 *
 * @internal
 */
export function parseJson(
  text: unknown,
  maxLength: number,
  what: string,
): unknown {
  if (typeof text !== 'string') fail(what, `is not text: ${shown(text)}`);
  if (text.length > maxLength) {
    fail(what, `is longer than ${maxLength} characters (${text.length})`);
  }
  try {
    return JSON.parse(text) as unknown;
  } catch (err) {
    return fail(what, `is not JSON (${(err as Error).message})`);
  }
}
