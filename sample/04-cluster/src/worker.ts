import { NestFactory } from '@nestjs/core';
import { EarwaxTransport } from '../../../lib/index.js';
import { AppModule } from './app.module.js';
import type { ClusterSettings } from './cluster.options.js';

/** What a worker tells the primary once it listens. */
export interface WorkerListening {
  readonly type: 'listening';
  readonly port: number;
}

/**
 * Runs one worker: a whole Nest application on the shared port. Node's
 * `cluster` hands each new connection to a worker in turn (round-robin),
 * so the workers' `listen()` share one port; the Redis adapter joins them.
 */
export async function runWorker(settings: ClusterSettings): Promise<void> {
  const transport = new EarwaxTransport({
    host: settings.host,
    port: settings.port,
    // No goodbye of the transport's: `Goodbye` says why, by the signal.
  });
  const app = await NestFactory.createMicroservice(AppModule, {
    strategy: transport,
  });
  // SIGINT (the primary stopping everything) or SIGTERM (this worker alone)
  // closes gracefully, and leaves the cluster.
  app.enableShutdownHooks(['SIGINT', 'SIGTERM', 'SIGHUP']);
  await app.listen();
  const message: WorkerListening = {
    type: 'listening',
    port: transport.address()?.port ?? settings.port,
  };
  process.send?.(message);
}
