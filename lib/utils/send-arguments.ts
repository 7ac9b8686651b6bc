/**
 * Argument checks of the send methods. A wrong argument is a programming
 * error, reported as Node's own `socket.write()` reports one: a `TypeError`
 * thrown before anything is written, so the connection is left exactly as it
 * was (never corked, never half-written). Each check is one `typeof` or
 * `instanceof` on the hot path.
 */

/**
 * Throws unless `value` is a string.
 *
 * @internal
 */
export function assertText(method: string, name: string, value: unknown): void {
  if (typeof value !== 'string') {
    throw new TypeError(
      `${method}(): ${name} must be a string, got ${typeName(value)}.`,
    );
  }
}

/**
 * Throws unless `value` is text or bytes.
 *
 * @internal
 */
export function assertData(method: string, value: unknown): void {
  if (typeof value !== 'string' && !(value instanceof Uint8Array)) {
    throw new TypeError(
      `${method}(): data must be a string or a Uint8Array, got ${typeName(value)}.`,
    );
  }
}

/**
 * Throws unless `value` is an encoding `Buffer` knows (`undefined` is fine:
 * the default applies).
 *
 * @internal
 */
export function assertEncoding(method: string, value: unknown): void {
  if (
    value !== undefined &&
    (typeof value !== 'string' || !Buffer.isEncoding(value))
  ) {
    throw new TypeError(
      `${method}(): unknown encoding ${typeof value === 'string' ? `"${value}"` : typeName(value)}.`,
    );
  }
}

/**
 * Throws unless `value` is a boolean.
 *
 * @internal
 */
export function assertBoolean(
  method: string,
  name: string,
  value: unknown,
): void {
  if (typeof value !== 'boolean') {
    throw new TypeError(
      `${method}(): ${name} must be a boolean, got ${typeName(value)}.`,
    );
  }
}

function typeName(value: unknown): string {
  if (value === null) return 'null';
  if (typeof value === 'object') {
    return `an instance of ${(value as object).constructor?.name ?? 'Object'}`;
  }
  if (typeof value === 'function') return 'a function';
  return typeof value === 'string'
    ? `"${value.length > 40 ? `${value.slice(0, 40)}...` : value}"`
    : `${typeof value} ${String(value)}`;
}
