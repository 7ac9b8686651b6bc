#!/usr/bin/env node
// Runs Jest in ESM mode (Nest 12 is ESM only, and Jest needs the VM modules
// flag to load it). Extra arguments go to Jest; JEST_JSON=<file> also writes
// Jest's JSON report there (CI reads its totals).
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const args = [
  '--experimental-vm-modules',
  join(root, 'node_modules', 'jest', 'bin', 'jest.js'),
];
if (process.env.CI) args.push('--ci');
if (process.env.JEST_JSON)
  args.push('--json', `--outputFile=${process.env.JEST_JSON}`);
args.push(...process.argv.slice(2));
const run = spawnSync(process.execPath, args, {
  cwd: root,
  stdio: 'inherit',
  env: { ...process.env, NODE_NO_WARNINGS: '1' },
});
process.exit(run.status ?? 1);
