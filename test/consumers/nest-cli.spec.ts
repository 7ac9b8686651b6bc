/**
 * What users' own projects make of the published package, not hand-made
 * fixtures:
 *
 * - the default project of each Nest CLI major, made by `npx @nestjs/cli@N
 *   new` from the registry (CLI 11: CommonJS with Jest and ts-jest; CLI 12:
 *   ESM with Vitest), with the packed tarball installed, passes its own
 *   `npm test` with a spec that imports `nestjs-earwax` and
 *   `nestjs-earwax/testing` and talks to a real server over TCP, and its own
 *   `tsc` compiles the README's quick start;
 * - an ESM app with the tsconfig.json of docs/getting-started.md builds
 *   with TypeScript 6 and with TypeScript 7 (what `npm install typescript`
 *   gives), and what each built runs.
 *
 * The slow steps (building and packing the package, the CLIs' `nest new`
 * with its npm install, the installs) run at once in the first hook, each
 * to its own outcome; a test fails with the outcome of the steps it needs,
 * named and with their output. Everything lives in one temp folder, removed
 * at the end.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { randomUUID } from 'node:crypto';
import {
  existsSync,
  mkdtempSync,
  realpathSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  describeResult,
  run,
  succeeded,
} from '../package/fixtures/commands.js';
import {
  documentedTsconfig,
  readmeQuickStart,
} from './fixtures/markdown-code.js';
import {
  addEarwax,
  CLI_PROJECTS,
  EARWAX_SPEC,
  generateProject,
  projectManifest,
  projectTest,
  projectTypeCheck,
  QUICK_START,
  type CliProjectKind,
} from './fixtures/nest-cli-project.js';
import { packPackage } from '../package/fixtures/pack.js';
import {
  appTsc,
  errorsInPackage,
  installTypeScript,
  installTypeScriptApp,
  parseTsconfig,
} from './fixtures/typescript-app.js';

/**
 * Jest's bounds. The first hook does every install at once: a cold npm
 * cache takes 1-3 minutes per `nest new` on a loaded 2-core machine (30 s
 * warm). The steps have no time limit of their own: one that hangs is
 * named, with what it printed, in the failure (see
 * test/package/fixtures/commands.ts).
 */
const SETUP_MS = 480_000;
const PROJECT_TEST_MS = 150_000;
const TYPESCRIPT_TEST_MS = 180_000;

/** A step's outcome: kept, so that each test reports the steps it needs. */
type Outcome<T> = { ok: true; value: T } | { ok: false; error: unknown };

function settle<T>(promise: Promise<T>): Promise<Outcome<T>> {
  return promise.then(
    (value) => ({ ok: true, value }),
    (error: unknown) => ({ ok: false, error }),
  );
}

function valueOf<T>(outcome: Outcome<T> | undefined, what: string): T {
  if (outcome === undefined) {
    throw new Error(`${what}: its setup did not finish (see the first hook).`);
  }
  if (!outcome.ok) throw outcome.error;
  return outcome.value;
}

/** The last line a program printed, parsed as JSON. */
function lastJson(stdout: string): unknown {
  return JSON.parse(stdout.trim().split('\n').at(-1) ?? '');
}

describe('users’ projects', () => {
  // Real path: tsc names files by theirs.
  const scratch = realpathSync(
    mkdtempSync(join(tmpdir(), 'earwax-consumers-')),
  );
  const typescriptApp = join(scratch, 'typescript-app');
  const projects = new Map<CliProjectKind, Outcome<string>>();
  let appInstalled: Outcome<void> | undefined;
  let tsconfig: Outcome<string> | undefined;

  afterAll(() => {
    rmSync(scratch, { recursive: true, force: true });
  });

  beforeAll(async () => {
    const tarball = packPackage(scratch).then((packed) => packed.tarball);
    // Its failure is reported by each step that awaits it, perhaps later.
    tarball.catch(() => undefined);
    const documented = documentedTsconfig();
    const made = CLI_PROJECTS.map(async (kind, i) => {
      const project = await generateProject(kind, scratch, `cli-${i}`);
      await addEarwax(project, await tarball);
      return project;
    });
    const app = (async () => {
      await installTypeScriptApp(
        typescriptApp,
        await tarball,
        await documented,
        6,
      );
    })();
    // Settled at once, so no failure goes unhandled while others run.
    const outcomes = made.map((project) => settle(project));
    const settledTsconfig = settle(documented);
    const settledApp = settle(app);
    tsconfig = await settledTsconfig;
    appInstalled = await settledApp;
    for (const [i, kind] of CLI_PROJECTS.entries()) {
      projects.set(kind, await outcomes[i]);
    }
  }, SETUP_MS);

  describe.each(CLI_PROJECTS)(
    'the project `npx $cli new` makes ($label)',
    (kind) => {
      const { cli } = kind;

      // What the rest of this block covers: the CLI's default, as it is now.
      it(`is a ${kind.moduleType} project whose npm test runs ${kind.runner}`, () => {
        const project = valueOf(projects.get(kind), `The ${cli} project`);
        const { moduleType, test } = projectManifest(project);
        expect(moduleType).toBe(kind.moduleType);
        expect(test).toMatch(new RegExp(`\\b${kind.runner}\\b`));
      });
      it(
        `passes its own npm test, with ${EARWAX_SPEC} booting an EarwaxTransport microservice and talking to it through nestjs-earwax/testing`,
        async () => {
          const project = valueOf(projects.get(kind), `The ${cli} project`);
          const result = succeeded(
            `npm test in the ${cli} project`,
            await projectTest(project),
          );
          // Passed, and ran our spec (not a run that never found it).
          const output = result.stdout + result.stderr;
          if (!kind.specPassed.test(output)) {
            throw new Error(
              describeResult(
                `npm test in the ${cli} project did not report ${EARWAX_SPEC} as passed (${kind.specPassed})`,
                result,
              ),
            );
          }
        },
        PROJECT_TEST_MS,
      );

      it(
        `compiles the README's quick start (${QUICK_START}) with its own tsc and tsconfig.json`,
        async () => {
          const project = valueOf(projects.get(kind), `The ${cli} project`);
          writeFileSync(join(project, QUICK_START), await readmeQuickStart());
          succeeded(
            `tsc --noEmit in the ${cli} project`,
            await projectTypeCheck(project),
          );
        },
        PROJECT_TEST_MS,
      );
    },
  );

  describe('an ESM app with the tsconfig.json of docs/getting-started.md', () => {
    /** Builds the app with its TypeScript, runs it, and checks the types. */
    async function buildAndRun(major: number): Promise<void> {
      valueOf(appInstalled, 'The TypeScript app');
      const { outDir } = parseTsconfig(valueOf(tsconfig, 'The tsconfig.json'));
      writeFileSync(
        join(typescriptApp, 'src', 'quick-start.ts'),
        await readmeQuickStart(),
      );
      const version = succeeded(
        'tsc --version',
        await appTsc(typescriptApp, ['--version']),
      );
      expect(version.stdout).toMatch(new RegExp(`^Version ${major}\\.`));
      rmSync(join(typescriptApp, outDir), { recursive: true, force: true });
      succeeded(
        `The build with TypeScript ${major}`,
        await appTsc(typescriptApp, ['-p', 'tsconfig.json']),
      );
      const main = join(typescriptApp, outDir, 'main.js');
      expect(existsSync(main)).toBe(true);
      // The emitted decorators and metadata drive a real Nest app.
      const line = `marco ${randomUUID()}`;
      const echo = succeeded(
        `The app built by TypeScript ${major}`,
        await run(process.execPath, [main, line], { cwd: typescriptApp }),
      );
      expect(lastJson(echo.stdout)).toEqual({
        address: '127.0.0.1',
        port: expect.any(Number),
        echoed: line,
      });
      // The package's declarations too, which the documented skipLibCheck
      // would pass over.
      const check = await appTsc(typescriptApp, [
        '-p',
        'tsconfig.json',
        '--noEmit',
        '--skipLibCheck',
        'false',
      ]);
      expect(check.signal).toBeNull();
      expect(errorsInPackage(check)).toEqual([]);
    }

    it(
      'builds with TypeScript 6, and the built app echoes a line over TCP',
      () => buildAndRun(6),
      TYPESCRIPT_TEST_MS,
    );

    it(
      'builds with TypeScript 7 after `npm install typescript@7`, and the built app echoes a line over TCP',
      async () => {
        valueOf(appInstalled, 'The TypeScript app');
        await installTypeScript(typescriptApp, 7);
        await buildAndRun(7);
      },
      TYPESCRIPT_TEST_MS,
    );
  });
});
