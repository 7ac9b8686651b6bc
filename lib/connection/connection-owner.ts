import type { DisconnectReason } from '../interfaces/connection.interface.js';
import type { PendingHandler } from '../limits/handler-watch.js';

/**
 * The counters a connection feeds (the transport's `EarwaxMetrics`).
 *
 * @internal
 */
export interface ConnectionCounters {
  linesReceived: number;
  inputDropped: number;
}

/**
 * What a connection needs from the transport that accepted it: one object
 * per transport, shared by its connections, so a connection holds no
 * closure of its own. Generic in the connection so that this file and the
 * connection's need not import each other.
 *
 * @internal
 */
export interface ConnectionOwner<C> {
  readonly counters: ConnectionCounters;
  /** Handlers of the event running now (nested events wait a microtask). */
  readonly nested: boolean;
  /**
   * Runs the handlers of `event`: `true`/`false` when they finished at once
   * (handled or not), else a promise of it.
   */
  run(connection: C, event: string, data: unknown): boolean | Promise<boolean>;
  /** Starts watching a handler that returned a promise. */
  wait(connection: C, event: string): PendingHandler;
  /** Stops watching the connection's handler. */
  done(connection: C): void;
  /** A connection was admitted (it joins the registry). */
  admitted(connection: C): void;
  /** An open connection stopped being open (it leaves the registry). */
  left(connection: C, reason: DisconnectReason): void;
  /** The medium closed, or the connection finished: maybe forget it. */
  settle(connection: C): void;
  /** Puts the connection in a room (the registry keeps rooms). */
  join(connection: C, room: string): boolean;
  /** Takes the connection out of a room. */
  leave(connection: C, room: string): boolean;
  /** The live MSSP values of a telnet connection's listener. */
  msspStatus(connection: C): Record<string, string | string[]>;
}
