/**
 * What a user gets: the package built and packed as `npm publish` would,
 * its file list checked, then installed from the tarball into a fresh app in
 * a temp folder (without the optional peers, then with them), type-checked
 * there with NodeNext and run: an echo server on EarwaxTransport that talks
 * to itself over TCP.
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
  symlinkSync,
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
import {
  entryPoints,
  installedVersion,
  libSources,
  manifest,
  OPTIONAL_PEER_HOMES,
  optionalPeers,
  root,
} from './fixtures/package-layout.js';

const tsc = join(root, 'node_modules', 'typescript', 'bin', 'tsc');
/**
 * Jest's bounds of the hooks and tests, far above what their steps take on
 * a loaded 2-core machine (build and type-checks 5-20 s, installs 6-15 s).
 * The steps have no time limit of their own: one that hangs is named, with
 * what it printed, in the failure (see fixtures/commands.ts).
 */
const SETUP_MS = 180_000;
const INSTALL_SETUP_MS = 225_000;
const RUN_TEST_MS = 45_000;

/** Left out of the copy: installed, built or local-only. */
const notCopied = new Set(
  [
    '.git',
    'node_modules',
    'dist',
    'dist-dev',
    'dist-sample',
    'coverage',
    join('bench', 'results'),
  ].map((path) => join(root, path)),
);

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
    cpSync(root, stage, {
      recursive: true,
      filter: (source) => !notCopied.has(source),
    });
    for (const path of planted) {
      mkdirSync(dirname(join(stage, path)), { recursive: true });
      writeFileSync(join(stage, path), '// not for users\n');
    }
    // The project's own build, with the repository's tools.
    symlinkSync(join(root, 'node_modules'), join(stage, 'node_modules'));
    const env = npmEnv();
    succeeded(
      'The build',
      await run('npm', ['run', 'build'], {
        cwd: stage,
        env,
      }),
    );
    const pack = succeeded(
      'npm pack',
      await run('npm', ['pack', '--json', '--pack-destination', scratch], {
        cwd: stage,
        env,
      }),
    );
    const [report] = JSON.parse(pack.stdout) as Array<{
      filename: string;
      files: Array<{ path: string }>;
    }>;
    tarball = join(scratch, report.filename);
    packed = report.files.map((file) => file.path).sort();
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
      ...entryPoints().flatMap((entry) => [entry.types, entry.default]),
    ]);
    expect(entryPoints().length).toBeGreaterThan(0);
    expect([...needed].filter((path) => !packed.includes(path))).toEqual([]);
  });

  it('ships the JS and declarations of every module of lib/', () => {
    const missing = libSources(stagedLib).flatMap((source) => {
      const built = `dist/${relative(stagedLib, source).split(sep).join('/')}`;
      return [
        built.replace(/\.ts$/, '.js'),
        built.replace(/\.ts$/, '.d.ts'),
      ].filter((path) => !packed.includes(path));
    });
    expect(missing).toEqual([]);
  });

  it('ships nothing a user does not need', () => {
    const modules = new Set(
      libSources(stagedLib).map((source) =>
        relative(stagedLib, source).split(sep).join('/').replace(/\.ts$/, ''),
      ),
    );
    const unneeded = packed.filter((path) => {
      if (path === 'package.json' || path === 'README.md') return false;
      if (licenceFiles().includes(path)) return false;
      // dist/X.js, dist/X.d.ts and dist/X.js.map, for a module lib/X.ts.
      const built = /^dist\/(.+?)(\.js|\.d\.ts|\.js\.map)$/.exec(path);
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

  describe('installed in a fresh app without the optional peers', () => {
    const optional = new Set(Object.values(OPTIONAL_PEER_HOMES));
    const entries = entryPoints().filter(
      (entry) => !optional.has(entry.subpath),
    );
    const optionalEntries = entryPoints().filter((entry) =>
      optional.has(entry.subpath),
    );
    let typeCheck: CommandResult;
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
      }, INSTALL_SETUP_MS);

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
});
