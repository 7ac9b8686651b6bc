import cluster, { type Worker } from 'node:cluster';
import type { ClusterSettings } from './cluster.options.js';
import type { WorkerListening } from './worker.js';

/**
 * The primary process: starts the workers, replaces one that dies (or is
 * stopped alone, with SIGTERM), and on SIGTERM, SIGINT (Ctrl-C) or SIGHUP
 * stops them all gracefully before it exits. It serves no player itself.
 */
export function runPrimary(settings: ClusterSettings): void {
  let stopping = false;
  const listening = new Set<Worker>();

  const start = (): void => {
    const worker = cluster.fork();
    worker.on('message', (message: Partial<WorkerListening>) => {
      if (message?.type !== 'listening') return;
      listening.add(worker);
      if (listening.size === settings.workers) {
        console.log(
          `Cluster listening on ${settings.host}:${message.port} with ${settings.workers} workers (primary pid ${process.pid}).`,
        );
      }
    });
  };

  cluster.on('exit', (worker, code, signal) => {
    listening.delete(worker);
    if (stopping) {
      if (Object.keys(cluster.workers ?? {}).length === 0) {
        console.log('All workers stopped.');
        process.exit(0);
      }
      return;
    }
    // A crash: its players were dropped, the others carry on; replace it.
    console.error(
      `Worker ${worker.process.pid} died (${signal ?? `code ${code}`}); starting another.`,
    );
    start();
  });

  const stop = (signal: NodeJS.Signals): void => {
    if (stopping) return;
    stopping = true;
    console.log(`${signal}: stopping the workers.`);
    const workers = Object.values(cluster.workers ?? {});
    if (workers.length === 0) process.exit(0);
    // SIGINT tells a worker that the whole server stops (its players are
    // told so), where SIGTERM would mean that worker alone restarts.
    for (const worker of workers) worker?.process.kill('SIGINT');
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  process.on('SIGHUP', stop);

  for (let i = 0; i < settings.workers; i++) start();
}
