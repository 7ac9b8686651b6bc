import 'reflect-metadata';
import cluster from 'node:cluster';
import { clusterSettings } from './cluster.options.js';

/**
 * A Node `cluster`: the primary starts `WORKERS` worker processes that
 * share one port, joined into one game by the Redis adapter.
 */
async function main(): Promise<void> {
  // Read first: a bad setting stops the server before anything starts.
  const settings = clusterSettings();
  if (cluster.isPrimary) {
    const { runPrimary } = await import('./primary.js');
    runPrimary(settings);
  } else {
    const { runWorker } = await import('./worker.js');
    await runWorker(settings);
  }
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? err.message : err);
  process.exit(1);
});
