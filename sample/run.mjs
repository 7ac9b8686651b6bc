#!/usr/bin/env node
// Builds the library and the samples (only what changed), then runs one
// sample as a child process until it exits:
//   npm run sample -- 02-chat
// Compiled with tsc (not a loader such as tsx): Nest's dependency injection
// needs the decorator metadata that only tsc emits.
//
// Signals: SIGINT, SIGTERM and SIGHUP sent to this process reach the sample
// once, and this process exits as the sample did (same code, or killed by
// the same signal), so `npm start` ends with the server and never before it.
// The sample runs in a process group of its own: a Ctrl-C in the terminal
// (SIGINT to the whole foreground group) then reaches it only through here,
// once, instead of twice.
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { constants } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { performance } from 'node:perf_hooks';
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

const FORWARDED = ['SIGINT', 'SIGTERM', 'SIGHUP'];
const outDir = join(root, 'dist-sample');
// Where tsc records what it built; its content changes only when a build
// ran (an input merely touched changes its timestamp, not its content).
const buildInfo = join(outDir, 'sample', 'tsconfig.tsbuildinfo');
const main = join(outDir, 'sample', name, 'src', 'main.js');

/** The running child (tsc, then the sample), for the signal handlers. */
let current;
/** The first signal received; later ones are not passed on (see below). */
let stopping;

for (const signal of FORWARDED) process.on(signal, onSignal);

function onSignal(signal) {
  // npm passes a Ctrl-C on too, so the same SIGINT can arrive twice; and
  // Nest ignores a second signal while it shuts down. One is enough.
  if (stopping !== undefined) return;
  stopping = signal;
  if (current === undefined) exitLike({ code: null, signal });
  else {
    say(`${signal}: stopping ${current.label} (pid ${current.child.pid})`);
    current.child.kill(signal);
  }
}

/** Starts `args` with Node; `ended` resolves with how it ended. */
function run(label, args, options) {
  const child = spawn(process.execPath, args, {
    cwd: root,
    stdio: 'inherit',
    ...options,
  });
  current = { label, child };
  const ended = new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('exit', (code, signal) => {
      current = undefined;
      resolve({ code, signal });
    });
  });
  return { child, ended };
}

/** Ends this process the way `end` says a child ended. */
function exitLike(end) {
  if (end.signal === null) process.exit(end.code ?? 1);
  // Killed by a signal: die by the same one, so whoever started us (npm, a
  // shell, a supervisor) sees it.
  for (const signal of FORWARDED) process.removeListener(signal, onSignal);
  process.kill(process.pid, end.signal);
  // In case the signal's default action is to carry on: the shell's code.
  process.exit(128 + (constants.signals[end.signal] ?? 0));
}

function say(text) {
  console.log(`[sample] ${text}`);
}

function digest(file) {
  if (!existsSync(file)) return undefined;
  return createHash('sha256').update(readFileSync(file)).digest('hex');
}

const tsc = join(root, 'node_modules', 'typescript', 'bin', 'tsc');
const config = join('sample', 'tsconfig.json');
// -b skips the build when no input is newer than its output; --incremental
// then re-checks and re-emits only what an edit affects.
const buildArgs = ['-b', config, '--incremental'];
say(
  `building lib/ and sample/ into ${relative(root, outDir)}/ with tsc ${buildArgs.join(' ')} (only what changed)`,
);
const before = digest(buildInfo);
const started = performance.now();
const build = await run('the build', [tsc, ...buildArgs]).ended;
if (build.code !== 0) {
  if (stopping === undefined) say('the build failed; nothing started');
  exitLike(build);
} else {
  const seconds = ((performance.now() - started) / 1000).toFixed(1);
  say(
    digest(buildInfo) === before
      ? `up to date (checked in ${seconds} s)`
      : `built in ${seconds} s`,
  );
  if (stopping !== undefined) exitLike({ code: null, signal: stopping });
  else {
    // A process group of its own: see the top of this file.
    const server = run(name, [main], { detached: true });
    say(
      `running ${name} (pid ${server.child.pid}): node ${relative(root, main)}; Ctrl-C or SIGTERM stops it gracefully`,
    );
    const end = await server.ended;
    say(`${name} ended (${end.signal ?? `exit code ${end.code}`})`);
    exitLike(end);
  }
}
