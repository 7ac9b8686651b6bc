import { type BeforeApplicationShutdown, Injectable } from '@nestjs/common';
import { ConnectionRegistry } from '../../../lib/index.js';

/** What a worker's players are told when that worker alone stops. */
export const WORKER_RESTARTING = 'This worker is restarting; please reconnect.';
/** What every player is told when the whole cluster stops. */
export const SERVER_STOPPING = 'The server is shutting down. Bye!';

/**
 * Tells this worker's players why they are being disconnected, before the
 * transport closes: the primary stops the whole cluster with `SIGINT` (as
 * a Ctrl-C in a terminal does, to every process of the group), while
 * `SIGTERM` to one worker (a rolling restart, or a worker replaced by
 * hand) stops only it, and the primary starts another.
 */
@Injectable()
export class Goodbye implements BeforeApplicationShutdown {
  constructor(private readonly registry: ConnectionRegistry) {}

  beforeApplicationShutdown(signal?: string): void {
    const text = signal === 'SIGTERM' ? WORKER_RESTARTING : SERVER_STOPPING;
    // Queued before the transport's close(), which flushes it.
    this.registry.broadcast(text, { local: true });
  }
}
