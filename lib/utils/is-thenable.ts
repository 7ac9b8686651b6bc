/**
 * Whether a value can be awaited: a promise of any library, not only a
 * native one (a guard or handler may return either).
 *
 * @internal
 */
export function isThenable<T = unknown>(
  value: unknown,
): value is PromiseLike<T> {
  return (
    value !== null &&
    (typeof value === 'object' || typeof value === 'function') &&
    typeof (value as { then?: unknown }).then === 'function'
  );
}
