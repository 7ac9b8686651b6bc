#!/usr/bin/env node
// Builds the library and the samples, then runs one sample:
//   npm run sample -- 02-chat
// Compiled with tsc (not a loader such as tsx): Nest's dependency injection
// needs the decorator metadata that only tsc emits.
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const samples = readdirSync(join(root, 'sample')).filter((name) =>
  existsSync(join(root, 'sample', name, 'src', 'main.ts')),
);
const name = process.argv[2];
if (!name || !samples.includes(name)) {
  console.error(`Usage: npm run sample -- <${samples.join('|')}>`);
  process.exit(2);
}

const tsc = join(root, 'node_modules', 'typescript', 'bin', 'tsc');
const build = spawnSync(
  process.execPath,
  [tsc, '-p', join('sample', 'tsconfig.json')],
  {
    cwd: root,
    stdio: 'inherit',
  },
);
if (build.status !== 0) process.exit(build.status ?? 1);

const main = join(root, 'dist-sample', 'sample', name, 'src', 'main.js');
const run = spawnSync(process.execPath, [main], {
  cwd: root,
  stdio: 'inherit',
});
process.exit(run.status ?? 0);
