/**
 * How busy the machine was with work that is not the benchmark's: the CPU
 * time of every other user-space process (utime + stime, plus cutime +
 * cstime so that short-lived children, such as test workers, count once
 * reaped). Anything else running competes for the two cores and skews the
 * figures, so runs that saw much of it are repeated.
 *
 * Kernel threads are left out: on a loopback benchmark they mostly do the
 * benchmark's own network work (ksoftirqd, kworkers).
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

/** CPU time (µs) of each user-space process but `exclude`, by pid. */
function otherProcessesCpu(exclude) {
  const times = new Map();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const pid = Number(name);
    if (exclude.has(pid)) continue;
    let stat;
    try {
      stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    } catch {
      continue; // Gone meanwhile.
    }
    // Fields after the command name, which is in parentheses and may hold
    // spaces: state is field 3, ppid 4, utime 14 ... cstime 17.
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const ppid = Number(rest[1]);
    if (pid === 2 || ppid === 2) continue; // kthreadd and kernel threads
    const ticks =
      Number(rest[11]) + Number(rest[12]) + Number(rest[13]) + Number(rest[14]);
    times.set(pid, ticks * TICK_US);
  }
  return times;
}

/**
 * Starts watching. `finish(ourPids)` returns the CPU used by other
 * processes since, in % of one core; `ourPids` are the benchmark's processes
 * started meanwhile (this process and those given now are always ours).
 */
export function watchForeignLoad(...pids) {
  const ours = new Set([process.pid, ...pids]);
  const start = otherProcessesCpu(ours);
  const t0 = performance.now();
  return (...later) => {
    for (const pid of later) ours.add(pid);
    const end = otherProcessesCpu(ours);
    let used = 0;
    for (const [pid, us] of end) {
      if (ours.has(pid)) continue;
      used += us - (start.get(pid) ?? 0);
    }
    const wallUs = (performance.now() - t0) * 1000;
    return (used / wallUs) * 100;
  };
}
