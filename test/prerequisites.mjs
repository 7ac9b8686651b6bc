#!/usr/bin/env node
// Run by `npm test` before anything else (the `pretest` script): the tests
// drive real programs from Debian, and a fresh machine has none of them.
// As root with apt-get, this installs what is missing, saying what; anyone
// else gets the exact command to run, at once, rather than a dozen test
// files failing one by one.
import { spawnSync } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';

/** What the tests drive, the Debian package it comes in, and who uses it. */
const PROGRAMS = [
  {
    commands: ['tt++'],
    dirs: ['/usr/games', '/usr/bin'],
    pkg: 'tintin++',
    why: 'TinTin++ plays the MUD sample',
  },
  {
    commands: ['haproxy'],
    dirs: ['/usr/sbin'],
    pkg: 'haproxy',
    why: 'HAProxy sends the PROXY protocol',
  },
  {
    commands: ['openssl'],
    dirs: [],
    pkg: 'openssl',
    why: 'openssl makes and speaks TLS',
  },
  {
    commands: ['redis-server'],
    dirs: [],
    pkg: 'redis-server',
    why: 'Redis carries the cluster adapter',
  },
  {
    commands: ['nc'],
    dirs: [],
    pkg: 'netcat-openbsd',
    why: 'OpenBSD nc is a raw LF-only player',
  },
];

function executable(path) {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

function found({ commands, dirs }) {
  const path = (process.env.PATH ?? '').split(delimiter).filter(Boolean);
  return commands.some((command) =>
    [...dirs, ...path].some((dir) => executable(join(dir, command))),
  );
}

const missing = PROGRAMS.filter((program) => !found(program));
if (missing.length === 0) process.exit(0);

const packages = missing.map((program) => program.pkg);
const install = [
  'apt-get',
  'install',
  '-y',
  '--no-install-recommends',
  ...packages,
];
const why = missing.map((program) => `  ${program.pkg}: ${program.why}`);
const hasApt = executable('/usr/bin/apt-get');
const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;

if (!hasApt) {
  console.error(
    [
      'The tests drive programs this machine lacks:',
      ...why,
      'Install them with your package manager (on Debian or Ubuntu:',
      `  sudo apt-get update && sudo ${install.join(' ')}`,
      ') and run npm test again.',
    ].join('\n'),
  );
  process.exit(1);
}

if (!isRoot) {
  console.error(
    [
      'The tests drive programs this machine lacks:',
      ...why,
      'Install them, then run npm test again:',
      `  sudo apt-get update && sudo ${install.join(' ')}`,
    ].join('\n'),
  );
  process.exit(1);
}

console.log(
  [
    'Installing the Debian packages the tests drive:',
    ...why,
    `$ apt-get update && ${install.join(' ')}`,
  ].join('\n'),
);
const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
for (const args of [['update'], install.slice(1)]) {
  const run = spawnSync('apt-get', args, { stdio: 'inherit', env });
  if (run.status !== 0) {
    console.error(
      `apt-get ${args.join(' ')} failed (${run.error?.message ?? `exit status ${run.status ?? run.signal}`}).`,
    );
    process.exit(1);
  }
}
const still = PROGRAMS.filter((program) => !found(program));
if (still.length > 0) {
  console.error(
    `Installed, yet still missing: ${still.map((program) => program.commands[0]).join(', ')}.`,
  );
  process.exit(1);
}
