import { hostname } from 'node:os';
import type { ConnectionPresence } from './cluster.interfaces.js';
import { EarwaxAdapter } from './earwax.adapter.js';

/**
 * The default adapter: a cluster of one process. There are no other
 * processes, so broadcasts, presence and bans stay in memory, cluster-wide
 * queries are answered by this process alone, and a command for a
 * connection that is not here finds nothing. The registry does not even
 * call its mirror methods: a single process pays nothing for the adapter.
 *
 * @publicApi
 */
export class InMemoryAdapter extends EarwaxAdapter {
  /** `<host name>/<pid>`. */
  readonly nodeId = `${hostname()}/${process.pid}`;
  /** Always `true`: there is nothing to reach. */
  readonly available = true;

  /** Nothing to start. */
  async init(): Promise<void> {}

  /** Nothing to stop. */
  async close(): Promise<void> {}

  /** Nobody else to tell. */
  presenceChanged(): void {}

  /** Nobody else to tell. */
  presenceRemoved(): void {}

  /** Nobody else to tell. */
  banChanged(): void {}

  /** Nobody else to deliver to. */
  broadcast(): void {}

  /** No other process: none of their connections. */
  async fetchRemote(): Promise<ConnectionPresence[]> {
    return [];
  }

  /** No other process: none of their connections. */
  async countRemote(): Promise<number> {
    return 0;
  }

  /** No other process holds the connection. */
  async commandRemote(): Promise<boolean> {
    return false;
  }

  /** No other process to tell. */
  serverSideEmit(): boolean {
    return true;
  }
}
