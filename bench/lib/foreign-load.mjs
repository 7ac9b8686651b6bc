/**
 * How busy the machine was with work that is not the benchmark's. Anything
 * else running (a test suite, a build) competes for the two cores and skews
 * the figures, so runs that saw much of it are repeated.
 *
 * Other load = CPU time of the whole machine (/proc/stat: user, nice,
 * system, irq, softirq) minus that of the benchmark's processes (server, load
 * generator, this runner) and of kernel threads (ksoftirqd and kworkers
 * mostly do the benchmark's own loopback network work). Counting the machine
 * as a whole, rather than other processes one by one, also catches processes
 * that start and end within the run, such as test workers.
 *
 * /proc/stat is sampled per clock tick and a process's times are not quite,
 * so a quiet machine reads a few percent either side of zero.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import process from 'node:process';

/** µs per clock tick of /proc times. */
const TICK_US = (() => {
  try {
    const hz = execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' });
    return 1e6 / Number(hz);
  } catch {
    return 10_000;
  }
})();

/** user + nice + system + irq + softirq of the whole machine, µs. */
function machineBusyUs() {
  const f = readFileSync('/proc/stat', 'utf8')
    .split('\n', 1)[0]
    .trim()
    .split(/\s+/)
    .slice(1)
    .map(Number);
  return (f[0] + f[1] + f[2] + f[5] + f[6]) * TICK_US;
}

/**
 * The fields of /proc/PID/stat after the command name (which is in
 * parentheses and may hold spaces): index 0 is field 3 (state).
 */
function statFields(pid) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  } catch {
    return undefined; // Gone meanwhile.
  }
}

/** utime + stime (fields 14, 15) of the given stat fields, µs. */
const cpuOf = (fields) => (Number(fields[11]) + Number(fields[12])) * TICK_US;

/** CPU time of every kernel thread (children of kthreadd, pid 2), µs. */
function kernelThreadsUs() {
  let total = 0;
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const fields = statFields(name);
    if (fields && fields[1] === '2') total += cpuOf(fields);
  }
  return total;
}

function ownCpuUs() {
  const { user, system } = process.cpuUsage();
  return user + system;
}

const processCpuUs = (pid) => {
  const fields = statFields(pid);
  return fields ? cpuOf(fields) : NaN;
};

/**
 * Starts watching, with `serverPid` running throughout (or none). The
 * returned `finish(otherUs)` gives the other load since, in % of one core;
 * `otherUs` is the CPU time of benchmark processes that started meanwhile
 * and are gone or going (the load generator reports its own).
 */
export function watchForeignLoad(serverPid) {
  const start = {
    machine: machineBusyUs(),
    kernel: kernelThreadsUs(),
    own: ownCpuUs(),
    server: serverPid ? processCpuUs(serverPid) : 0,
    t: performance.now(),
  };
  return (otherUs = 0) => {
    const machine = machineBusyUs() - start.machine;
    const kernel = kernelThreadsUs() - start.kernel;
    const own = ownCpuUs() - start.own;
    const server = serverPid ? processCpuUs(serverPid) - start.server : 0;
    const wallUs = (performance.now() - start.t) * 1000;
    return ((machine - kernel - own - server - otherUs) / wallUs) * 100;
  };
}

/**
 * Waits (at most `maxMs`) until other processes use less than `limitPct`
 * of a core over one second. Returns the last reading.
 */
export async function waitForQuiet(limitPct, maxMs) {
  const until = performance.now() + maxMs;
  for (;;) {
    const finish = watchForeignLoad();
    await new Promise((resolve) => setTimeout(resolve, 1000));
    const pct = finish();
    if (pct < limitPct || performance.now() > until) return pct;
  }
}
