/**
 * What a user gets: the package built and packed as `npm publish` would,
 * its file list checked, arethetypeswrong run on it, then installed from the
 * tarball into a fresh app in a temp folder (without the optional peers,
 * then with them), type-checked there (NodeNext ESM and CommonJS, with
 * TypeScript 6 and 7; node10 with TypeScript 6) and run: an echo server on
 * EarwaxTransport that talks to itself over TCP, as an ES module and as
 * CommonJS, and an app that loads the package with both `import` and
 * `require` and must see one copy of it. Last, a Jest project of CommonJS on
 * Nest 11, the shape `nest new` of Nest CLI 11 gives, requires the package
 * in its specs (Jest's CommonJS runtime cannot load ES modules: the
 * `require` entries fall back to the CommonJS build there).
 *
 * The build and pack run in a copy of the working tree, so they never race
 * with anyone's `dist/`, and `files` in package.json decides what ships just
 * as it does from the repository.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { randomUUID } from 'node:crypto';
import {
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  realpathSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve, sep } from 'node:path';
import {
  describeResult,
  npmEnv,
  run,
  succeeded,
  type CommandResult,
} from './fixtures/commands.js';
import { writeFreshApp } from './fixtures/fresh-app.js';
import { packPackage } from './fixtures/pack.js';
import { writeJestCjsApp } from './fixtures/jest-cjs-app.js';
import {
  entryPoints,
  type EntryPoint,
  installedVersion,
  libSources,
  manifest,
  OPTIONAL_PEER_HOMES,
  optionalPeers,
  root,
} from './fixtures/package-layout.js';

const tsc = join(root, 'node_modules', 'typescript', 'bin', 'tsc');
/** TypeScript 7, installed beside 6 under an alias (it builds the package). */
const tsc7 = join(root, 'node_modules', 'typescript-7', 'bin', 'tsc');
const attw = join(
  root,
  'node_modules',
  '@arethetypeswrong',
  'cli',
  'dist',
  'index.js',
);
const jest = join(root, 'node_modules', 'jest', 'bin', 'jest.js');
/**
 * Jest's bounds of the hooks and tests, far above what their steps take on
 * a loaded 2-core machine (build and type-checks 5-20 s, installs 6-15 s).
 * The steps have no time limit of their own: one that hangs is named, with
 * what it printed, in the failure (see fixtures/commands.ts).
 */
const SETUP_MS = 180_000;
const INSTALL_SETUP_MS = 225_000;
const RUN_TEST_MS = 45_000;

/**
 * Build output a developer may have lying around: planted in the copy, so
 * the file-list test sees that `files` leaves it out.
 */
const planted = [
  'dist-dev/lib/index.js',
  'dist-sample/01-echo/src/main.js',
  'tsconfig.build.tsbuildinfo',
];

/** A version for the fresh app: the one installed here (cached by npm ci). */
function versionOf(name: string): string {
  const version = installedVersion(name) ?? manifest.peerDependencies?.[name];
  if (version === undefined) throw new Error(`No version known for ${name}.`);
  return version;
}

/** The Markdown files of docs/, which the README links to (sorted). */
function docsFiles(base: string): string[] {
  return readdirSync(join(base, 'docs'), { recursive: true, encoding: 'utf8' })
    .filter((path) => path.endsWith('.md'))
    .map((path) => `docs/${path.split(sep).join('/')}`)
    .sort();
}

/** The licence files at the root of the repository, if any. */
function licenceFiles(): string[] {
  return readdirSync(root).filter((name) => /^licen[cs]e(\.|$)/i.test(name));
}

/** The type-check's own errors: problems inside Nest's or RxJS's are theirs. */
function ourErrors(result: CommandResult): string[] {
  if (result.signal) return [describeResult('tsc', result)];
  return (result.stdout + result.stderr)
    .split('\n')
    .filter(
      (line) =>
        line.trim() !== '' &&
        !line.startsWith('/') &&
        !/node_modules\/(@nestjs|rxjs|@types)\//.test(line) &&
        !/^\s/.test(line),
    );
}

/** The files a `--listFiles` run read from the installed package. */
function filesReadFrom(result: CommandResult, app: string): string[] {
  const installed = join(app, 'node_modules', manifest.name) + sep;
  return result.stdout
    .split('\n')
    .filter((line) => line.startsWith(installed))
    .map((line) => relative(installed, line).split(sep).join('/'));
}

/** The last line a program printed, parsed as JSON. */
function lastJson(result: CommandResult): unknown {
  const lines = result.stdout.trim().split('\n');
  try {
    return JSON.parse(lines.at(-1) ?? '');
  } catch {
    throw new Error(describeResult('It printed no JSON line', result));
  }
}

/**
 * Runs identity.mjs of the fresh app on `entries`: each must export
 * something, and every export must be the same value by `import` and by
 * `require`.
 */
async function expectOneInstance(
  app: string,
  entries: readonly EntryPoint[],
): Promise<void> {
  const result = succeeded(
    'The identity check',
    await run(
      process.execPath,
      ['identity.mjs', ...entries.map((entry) => entry.specifier)],
      { cwd: app },
    ),
  );
  const outcome = lastJson(result) as Record<
    string,
    { compared: number; different: string[] }
  >;
  expect(
    entries.map(({ specifier }) => ({
      specifier,
      exports: (outcome[specifier]?.compared ?? 0) > 0,
      different: outcome[specifier]?.different,
    })),
  ).toEqual(
    entries.map(({ specifier }) => ({
      specifier,
      exports: true,
      different: [],
    })),
  );
}

describe('the packed tarball', () => {
  // Real path: tsc lists the files it read by theirs.
  const scratch = realpathSync(mkdtempSync(join(tmpdir(), 'earwax-package-')));
  const stage = join(scratch, 'package');
  // The lib/ that was built: others may be editing the checkout's meanwhile.
  const stagedLib = join(stage, 'lib');
  const unpacked = join(scratch, 'unpacked');
  const app = join(scratch, 'app');
  let tarball = '';
  let packed: string[] = [];

  afterAll(() => {
    rmSync(scratch, { recursive: true, force: true });
  });

  beforeAll(async () => {
    ({ tarball, files: packed } = await packPackage(scratch, planted));
    mkdirSync(unpacked);
    succeeded(
      'Unpacking the tarball',
      await run('tar', ['-xzf', tarball, '-C', unpacked], {
        cwd: scratch,
      }),
    );
  }, SETUP_MS);

  it('matches the files npm listed', () => {
    function walk(dir: string): string[] {
      return readdirSync(dir, { withFileTypes: true }).flatMap((entry) =>
        entry.isDirectory()
          ? walk(join(dir, entry.name))
          : [relative(join(unpacked, 'package'), join(dir, entry.name))],
      );
    }
    const inTarball = walk(join(unpacked, 'package'))
      .map((path) => path.split(sep).join('/'))
      .sort();
    expect(inTarball).toEqual(packed);
  });

  it('ships package.json, README.md, any licence, and the types and default of every exports entry', () => {
    const needed = new Set([
      'package.json',
      'README.md',
      ...licenceFiles(),
      ...[manifest.main, manifest.types].flatMap((path) =>
        path ? [path.replace(/^\.\//, '')] : [],
      ),
      ...entryPoints().flatMap((entry) => [
        entry.types,
        entry.default,
        entry.requireTypes,
        entry.requireDefault,
        entry.commonjs,
      ]),
      'dist/cjs/package.json',
    ]);
    expect(entryPoints().length).toBeGreaterThan(0);
    expect([...needed].filter((path) => !packed.includes(path))).toEqual([]);
  });

  it('ships the JS and declarations of every module of lib/, as ES module and as CommonJS', () => {
    const missing = libSources(stagedLib).flatMap((source) => {
      const module = relative(stagedLib, source).split(sep).join('/');
      return [`dist/${module}`, `dist/cjs/${module}`]
        .flatMap((built) => [
          built.replace(/\.ts$/, '.js'),
          built.replace(/\.ts$/, '.d.ts'),
        ])
        .filter((path) => !packed.includes(path));
    });
    expect(missing).toEqual([]);
  });

  it('marks the CommonJS build as CommonJS, in a package that is ESM', () => {
    const read = (path: string): unknown =>
      JSON.parse(readFileSync(join(unpacked, 'package', path), 'utf8'));
    expect(read('dist/cjs/package.json')).toEqual({ type: 'commonjs' });
    expect(read('package.json')).toMatchObject({ type: 'module' });
  });

  it("ships docs/, so that the README's links to it work in the package", () => {
    const docs = docsFiles(stage);
    expect(docs).toContain('docs/README.md');
    expect(docs.filter((path) => !packed.includes(path))).toEqual([]);
  });

  it('ships nothing a user does not need', () => {
    const modules = new Set(
      libSources(stagedLib).map((source) =>
        relative(stagedLib, source).split(sep).join('/').replace(/\.ts$/, ''),
      ),
    );
    const requireEntries = new Set(
      entryPoints().flatMap((entry) => [
        entry.requireDefault,
        entry.requireTypes,
      ]),
    );
    const docs = docsFiles(stage);
    const unneeded = packed.filter((path) => {
      if (path === 'package.json' || path === 'README.md') return false;
      if (licenceFiles().includes(path)) return false;
      if (docs.includes(path) || requireEntries.has(path)) return false;
      if (path === 'dist/cjs/package.json') return false;
      // dist/X.js, dist/X.d.ts and dist/X.js.map, for a module lib/X.ts;
      // dist/cjs/X.* the same, built as CommonJS.
      const built = /^dist\/(?:cjs\/)?(.+?)(\.js|\.d\.ts|\.js\.map)$/.exec(
        path,
      );
      return !built || !modules.has(built[1]);
    });
    expect(unneeded).toEqual([]);
  });

  it('ships no source map whose sources are not in it', () => {
    const base = join(unpacked, 'package');
    const broken: string[] = [];
    for (const path of packed.filter((file) => file.endsWith('.js'))) {
      const text = readFileSync(join(base, path), 'utf8');
      const url = /\/\/# sourceMappingURL=(\S+)\s*$/.exec(text)?.[1];
      if (url === undefined || url.startsWith('data:')) continue;
      const map = resolve(dirname(join(base, path)), url);
      if (!existsSync(map)) {
        broken.push(`${path} names a missing map ${url}`);
        continue;
      }
      const { sourceRoot, sources, sourcesContent } = JSON.parse(
        readFileSync(map, 'utf8'),
      ) as {
        sourceRoot?: string;
        sources: string[];
        sourcesContent?: string[];
      };
      sources.forEach((source, i) => {
        if (typeof sourcesContent?.[i] === 'string') return;
        const file = resolve(dirname(map), sourceRoot ?? '', source);
        if (!file.startsWith(base + sep) || !existsSync(file)) {
          broken.push(`${relative(base, map)} points at ${source}`);
        }
      });
    }
    // The first few name the problem; the count says how far it goes.
    expect({ count: broken.length, first: broken.slice(0, 5) }).toEqual({
      count: 0,
      first: [],
    });
  });

  it('falls back to the CommonJS build on no error but require() refusing that ES module', async () => {
    // A copy whose ES module entries throw: a require entry must rethrow,
    // even an ERR_REQUIRE_ESM about another file, and never load dist/cjs/.
    const copy = join(scratch, 'rethrow');
    cpSync(join(unpacked, 'package'), copy, { recursive: true });
    const thrown = {
      telnet: 'boom in the ES module build',
      client: 'require() of ES Module /elsewhere/other.js not supported.',
    };
    writeFileSync(
      join(copy, 'dist', 'telnet', 'index.js'),
      `throw new Error(${JSON.stringify(thrown.telnet)});\n`,
    );
    writeFileSync(
      join(copy, 'dist', 'client', 'index.js'),
      `throw Object.assign(new Error(${JSON.stringify(thrown.client)}), { code: 'ERR_REQUIRE_ESM' });\n`,
    );
    const probe = `const outcome = {};
for (const name of ['telnet', 'client']) {
  try {
    require('./dist/' + name + '/index.cjs');
    outcome[name] = 'loaded';
  } catch (error) {
    outcome[name] = error.message;
  }
}
console.log(JSON.stringify(outcome));`;
    const result = succeeded(
      'The rethrow probe',
      await run(process.execPath, ['-e', probe], { cwd: copy }),
    );
    expect(lastJson(result)).toEqual(thrown);
  });

  it(
    'passes arethetypeswrong in node10, node16 (from CJS and ESM) and bundler resolution, for every entry',
    async () => {
      // It exits 1 on any problem, and then its report says which.
      const result = succeeded(
        'attw',
        await run(process.execPath, [attw, tarball, '--format', 'json'], {
          cwd: scratch,
        }),
      );
      const report = JSON.parse(result.stdout) as {
        analysis: {
          problems: unknown[];
          entrypoints: Record<
            string,
            {
              resolutions: Record<
                string,
                {
                  resolution?: { fileName: string };
                  implementationResolution?: { fileName: string };
                }
              >;
            }
          >;
        };
      };
      const { problems, entrypoints } = report.analysis;
      expect(problems).toEqual([]);
      // Where each mode found the types and the JavaScript.
      const found = (subpath: string, mode: string): string[] => {
        const resolution = entrypoints[subpath]?.resolutions[mode];
        return [
          resolution?.resolution?.fileName,
          resolution?.implementationResolution?.fileName,
        ].map(
          (file) =>
            file?.replace(`/node_modules/${manifest.name}/`, '') ?? 'none',
        );
      };
      const expected = entryPoints().map((entry) => ({
        subpath: entry.subpath,
        node10: entry.requireTypes,
        node16cjs: [entry.requireTypes, entry.requireDefault],
        node16esm: [entry.types, entry.default],
        bundler: [entry.types, entry.default],
      }));
      expect(
        expected.map(({ subpath }) => ({
          subpath,
          node10: found(subpath, 'node10')[0],
          node16cjs: found(subpath, 'node16-cjs'),
          node16esm: found(subpath, 'node16-esm'),
          bundler: found(subpath, 'bundler'),
        })),
      ).toEqual(expected);
    },
    RUN_TEST_MS,
  );

  describe('installed in a fresh app without the optional peers', () => {
    const optional = new Set(Object.values(OPTIONAL_PEER_HOMES));
    const entries = entryPoints().filter(
      (entry) => !optional.has(entry.subpath),
    );
    const optionalEntries = entryPoints().filter((entry) =>
      optional.has(entry.subpath),
    );
    let typeCheck: CommandResult;
    let cjsTypeCheck: CommandResult;
    let ts7Checks: CommandResult[] = [];
    let installed = false;

    beforeAll(async () => {
      // Jest runs this hook even when the one above failed.
      if (!tarball) throw new Error('No tarball: building or packing failed.');
      const required = Object.keys(manifest.peerDependencies ?? {}).filter(
        (peer) => !optionalPeers().includes(peer),
      );
      writeFreshApp(app, {
        tarball,
        dependencies: Object.fromEntries(
          // @types/node: a TypeScript user has it, and our .d.ts need it.
          [...required, '@types/node'].map((name) => [name, versionOf(name)]),
        ),
        entries: entries.map((entry) => entry.specifier),
        optionalEntries: optionalEntries.map((entry) => entry.specifier),
      });
      succeeded(
        'npm install in the fresh app',
        await run(
          'npm',
          ['install', '--prefer-offline', '--no-audit', '--no-fund'],
          { cwd: app, env: npmEnv() },
        ),
      );
      installed = true;
      // Emits out/main.js for the run below; --listFiles says what it read.
      typeCheck = await run(
        process.execPath,
        [tsc, '-p', join(app, 'tsconfig.json'), '--listFiles'],
        { cwd: app },
      );
      // Emits cjs/out/main.js, with require() calls.
      cjsTypeCheck = await run(
        process.execPath,
        [tsc, '-p', join(app, 'tsconfig.cjs.json'), '--listFiles'],
        { cwd: app },
      );
      ts7Checks = [];
      for (const project of ['tsconfig.json', 'tsconfig.cjs.json']) {
        ts7Checks.push(
          await run(
            process.execPath,
            [tsc7, '-p', join(app, project), '--noEmit'],
            { cwd: app },
          ),
        );
      }
    }, INSTALL_SETUP_MS);

    it(
      'installs neither optional peer, and loads every other entry by name',
      async () => {
        const probe = succeeded(
          'The import probe',
          await run(
            process.execPath,
            [
              'probe.mjs',
              ...entries.map((entry) => entry.specifier),
              ...optionalPeers(),
            ],
            { cwd: app },
          ),
        );
        expect(lastJson(probe)).toEqual({
          ...Object.fromEntries(
            entries.map((entry) => [entry.specifier, 'ok']),
          ),
          ...Object.fromEntries(
            optionalPeers().map((peer) => [peer, 'ERR_MODULE_NOT_FOUND']),
          ),
        });
        expect(entries.map((entry) => entry.subpath)).toContain('.');
      },
      RUN_TEST_MS,
    );

    it('type-checks a strict NodeNext app against the installed declarations', () => {
      expect(ourErrors(typeCheck)).toEqual([]);
      // The types came from the tarball's exports, not from anywhere else.
      expect(filesReadFrom(typeCheck, app)).toEqual(
        expect.arrayContaining(entries.map((entry) => entry.types)),
      );
    });

    it("type-checks a strict CommonJS app against the require entries' declarations", () => {
      expect(ourErrors(cjsTypeCheck)).toEqual([]);
      expect(filesReadFrom(cjsTypeCheck, app)).toEqual(
        expect.arrayContaining(['dist/index.d.cts']),
      );
    });

    it('type-checks both apps with TypeScript 7 too', async () => {
      const version = succeeded(
        'tsc --version',
        await run(process.execPath, [tsc7, '--version'], { cwd: app }),
      );
      expect(version.stdout).toMatch(/^Version 7\./);
      expect(ts7Checks.flatMap(ourErrors)).toEqual([]);
      // Not even in Nest's or RxJS's declarations.
      expect(ts7Checks.map((check) => describeResult('tsc', check))).toEqual([
        expect.stringContaining('exited with code 0'),
        expect.stringContaining('exited with code 0'),
      ]);
    });

    it(
      'runs the echo app compiled to CommonJS: require() loads the ES module build through the require entry',
      async () => {
        expect(existsSync(join(app, 'cjs', 'out', 'main.js'))).toBe(true);
        const line = `polo ${randomUUID()}`;
        const result = succeeded(
          'The CommonJS app',
          await run(process.execPath, ['cjs/out/main.js', line], {
            cwd: app,
          }),
        );
        const main = entries.find((entry) => entry.subpath === '.');
        expect(lastJson(result)).toEqual({
          echoed: line,
          entry: join(
            app,
            'node_modules',
            manifest.name,
            main?.requireDefault ?? '.',
          ),
          commonjsBuildLoaded: false,
        });
        // Node >= 20.19 warns of require(esm) unless node_modules asks.
        expect(result.stderr).toBe('');
      },
      RUN_TEST_MS,
    );

    it(
      'gives import and require the very same exports of every entry',
      async () => {
        await expectOneInstance(app, entries);
      },
      RUN_TEST_MS,
    );

    it(
      'injects across the two forms: a required controller and guard in an imported EarwaxModule and transport',
      async () => {
        const line = `both ${randomUUID()}`;
        const result = succeeded(
          'The app of both forms',
          await run(process.execPath, ['mixed/main.mjs', line], { cwd: app }),
        );
        expect(lastJson(result)).toEqual({
          echoed: line,
          sameRegistryClass: true,
          injected: true,
          instanceOfRequired: true,
          guardAsked: 1,
        });
        expect(result.stderr).toBe('');
      },
      RUN_TEST_MS,
    );

    it(
      'boots NestFactory.createMicroservice on EarwaxTransport and echoes a line over TCP',
      async () => {
        expect(existsSync(join(app, 'out', 'main.js'))).toBe(true);
        const line = `marco ${randomUUID()}`;
        const result = succeeded(
          'The fresh app',
          await run(process.execPath, ['out/main.js', line], {
            cwd: app,
          }),
        );
        expect(lastJson(result)).toEqual({
          address: '127.0.0.1',
          port: expect.any(Number),
          echoed: line,
        });
        expect(result.stderr).toBe('');
      },
      RUN_TEST_MS,
    );

    describe('and then with them', () => {
      let optionalTypeCheck: CommandResult;
      let node10TypeCheck: CommandResult;

      beforeAll(async () => {
        if (!installed) throw new Error('The fresh app was not installed.');
        succeeded(
          'npm install of the optional peers',
          await run(
            'npm',
            [
              'install',
              '--prefer-offline',
              '--no-audit',
              '--no-fund',
              ...optionalPeers().map((peer) => `${peer}@${versionOf(peer)}`),
            ],
            { cwd: app, env: npmEnv() },
          ),
        );
        optionalTypeCheck = await run(
          process.execPath,
          [tsc, '-p', join(app, 'tsconfig.optional.json'), '--listFiles'],
          { cwd: app },
        );
        // Every entry, the optional ones included, now that their peers are in.
        node10TypeCheck = await run(
          process.execPath,
          [tsc, '-p', join(app, 'tsconfig.node10.json'), '--listFiles'],
          { cwd: app },
        );
      }, INSTALL_SETUP_MS);

      it('type-checks every entry under moduleResolution node10, subpaths through typesVersions', () => {
        expect(ourErrors(node10TypeCheck)).toEqual([]);
        expect(filesReadFrom(node10TypeCheck, app)).toEqual(
          expect.arrayContaining(
            entryPoints().map((entry) => entry.requireTypes),
          ),
        );
      });

      it(
        'gives import and require the very same exports of those entries',
        async () => {
          await expectOneInstance(app, optionalEntries);
        },
        RUN_TEST_MS,
      );

      it(
        'loads the entries that need them',
        async () => {
          const probe = succeeded(
            'The import probe',
            await run(
              process.execPath,
              ['probe.mjs', ...optionalEntries.map((entry) => entry.specifier)],
              { cwd: app },
            ),
          );
          expect(optionalEntries.length).toBeGreaterThan(0);
          expect(lastJson(probe)).toEqual(
            Object.fromEntries(
              optionalEntries.map((entry) => [entry.specifier, 'ok']),
            ),
          );
        },
        RUN_TEST_MS,
      );

      it('type-checks them against the installed declarations', () => {
        expect(ourErrors(optionalTypeCheck)).toEqual([]);
        expect(filesReadFrom(optionalTypeCheck, app)).toEqual(
          expect.arrayContaining(optionalEntries.map((entry) => entry.types)),
        );
      });
    });
  });
  describe('required in a Jest project of CommonJS on Nest 11, as `nest new` of Nest CLI 11 makes', () => {
    const jestApp = join(scratch, 'jest-cjs-app');
    let installed = false;

    beforeAll(async () => {
      if (!tarball) throw new Error('No tarball: building or packing failed.');
      writeJestCjsApp(jestApp, {
        tarball,
        dependencies: {
          // Nest 12 is ESM only: a CommonJS runtime has Nest 11.
          '@nestjs/common': '^11.0.0',
          '@nestjs/core': '^11.0.0',
          '@nestjs/microservices': '^11.0.0',
          'reflect-metadata': versionOf('reflect-metadata'),
          rxjs: versionOf('rxjs'),
          // Often installed by other packages: the transport then loads it
          // at listen() (with require() here, where import() cannot run).
          '@opentelemetry/api': versionOf('@opentelemetry/api'),
        },
      });
      succeeded(
        'npm install in the Jest project',
        await run(
          'npm',
          ['install', '--prefer-offline', '--no-audit', '--no-fund'],
          { cwd: jestApp, env: npmEnv() },
        ),
      );
      installed = true;
    }, INSTALL_SETUP_MS);

    it(
      'passes its specs, which require nestjs-earwax and nestjs-earwax/testing',
      async () => {
        expect(installed).toBe(true);
        // The repository's Jest, run as that project's `npm test` runs its
        // own: no VM modules flag, so Jest's CommonJS runtime. None of this
        // Jest run's own settings reach it.
        const env = Object.fromEntries(
          Object.entries(process.env).filter(
            ([name]) => !name.startsWith('JEST_') && name !== 'NODE_OPTIONS',
          ),
        );
        const result = await run(
          process.execPath,
          [
            jest,
            '--ci',
            '--config',
            'jest.config.json',
            '--rootDir',
            jestApp,
            '--cacheDirectory',
            join(scratch, 'jest-cache'),
          ],
          { cwd: jestApp, env },
        );
        expect(describeResult('Jest', result)).toContain('exited with code 0');
        expect(result.stderr).toMatch(/Tests:\s+2 passed, 2 total/);
      },
      RUN_TEST_MS,
    );
  });
});
