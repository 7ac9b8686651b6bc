/**
 * Child processes of the benchmark: pinned to a core, with a raised
 * open-file limit when needed, an IPC channel, and killed whatever happens
 * to the runner.
 */
import { execFileSync, spawn } from 'node:child_process';
import process from 'node:process';
import { setTimeout } from 'node:timers';

/** Every child still running, killed when the runner exits. */
const children = new Set();

function killAll() {
  for (const child of children) child.kill('SIGKILL');
  children.clear();
}
process.on('exit', killAll);
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.on(signal, () => {
    killAll();
    process.exit(130);
  });
}

/** Whether `taskset` can pin processes here. */
export const hasTaskset = (() => {
  try {
    execFileSync('taskset', ['-c', '0', 'true'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
})();

/** The soft and hard open-file limits of processes started from here. */
export const fileLimits = (() => {
  const out = execFileSync('/bin/sh', ['-c', 'ulimit -Sn; ulimit -Hn'], {
    encoding: 'utf8',
  }).split('\n');
  const parse = (s) => (s.trim() === 'unlimited' ? Infinity : Number(s));
  return { soft: parse(out[0]), hard: parse(out[1]) };
})();

/**
 * Starts `node <args>` with an IPC channel, pinned to `core` (when taskset
 * exists) and allowed `files` open files (raised up to the hard limit when
 * the soft one is lower), with `env` added to the environment. Both wrappers `exec`, so the child's pid is
 * node's own and the IPC channel (an inherited fd) survives.
 */
export function startNode(args, { core, files = 0, label, env }) {
  let command = process.execPath;
  let argv = args;
  if (hasTaskset) {
    argv = ['-c', String(core), command, ...argv];
    command = 'taskset';
  }
  if (files > fileLimits.soft && fileLimits.soft < fileLimits.hard) {
    const limit = Math.min(files, fileLimits.hard);
    argv = [
      '-c',
      'ulimit -n "$0" && exec "$@"',
      String(limit),
      command,
      ...argv,
    ];
    command = '/bin/sh';
  }
  const child = spawn(command, argv, {
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    env: env ? { ...process.env, ...env } : process.env,
  });
  child.label = label;
  // A send racing the child's exit fails with EPIPE; that is no error here.
  child.on('error', (err) => {
    if (err.code !== 'EPIPE') console.error(`${label}: ${err.message}`);
  });
  children.add(child);
  child.exited = new Promise((resolve) =>
    child.once('exit', (code, signal) => {
      children.delete(child);
      resolve({ code, signal });
    }),
  );
  return child;
}

/**
 * Waits for the first message of `child` satisfying `predicate`; rejects if
 * the child exits first or `timeoutMs` passes.
 */
export function waitForMessage(child, predicate, timeoutMs) {
  return new Promise((resolve, reject) => {
    const cleanup = () => {
      clearTimeout(timer);
      child.off('message', onMessage);
      child.off('exit', onExit);
    };
    const onMessage = (message) => {
      if (!predicate(message)) return;
      cleanup();
      resolve(message);
    };
    const onExit = (code, signal) => {
      cleanup();
      reject(new Error(`${child.label} exited (${signal ?? code})`));
    };
    const timer = setTimeout(() => {
      cleanup();
      reject(new Error(`${child.label}: no answer within ${timeoutMs} ms`));
    }, timeoutMs);
    child.on('message', onMessage);
    child.once('exit', onExit);
  });
}

/** Asks a server to stop; kills it if it has not exited within `ms`. */
export async function stopChild(child, ms = 5000) {
  if (child.exitCode !== null || child.signalCode !== null) return;
  if (child.connected) child.send({ id: 0, cmd: 'stop' }, () => {});
  const timer = setTimeout(() => child.kill('SIGKILL'), ms);
  await child.exited;
  clearTimeout(timer);
}
