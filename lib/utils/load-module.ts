/**
 * Loads a module by specifier, for what the package loads only when it is
 * there or only when it is needed (Nest's internals, optional peers).
 *
 * In the CommonJS build this is `require()`: Jest's CommonJS runtime, where
 * that build runs, has no `import()` without `--experimental-vm-modules`,
 * and everything it can load there is CommonJS anyway. In the ES build
 * `require` does not exist and this is `import()`. A `require()` error comes
 * back as a rejection, as an `import()` one would.
 *
 * @param specifier A package name or a path inside a package.
 * @returns The module's namespace (or `module.exports`).
 *
 * @internal
 */
export function loadModule(specifier: string): Promise<unknown> {
  if (typeof require === 'function') {
    try {
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      return Promise.resolve(require(specifier) as unknown);
    } catch (err) {
      return Promise.reject(err as Error);
    }
  }
  return import(specifier);
}
