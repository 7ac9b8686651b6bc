import type { DisconnectReason } from '../interfaces/connection.interface.js';
import type { PendingHandler } from '../limits/handler-watch.js';
import type { AnyConnectionContext } from './connection-context.js';
import type { Connection } from './connection.js';

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
 * Where rooms are kept (the application's `ConnectionRegistry`).
 *
 * @internal
 */
export interface RoomKeeper {
  join(ctx: AnyConnectionContext, room: string): boolean;
  leave(ctx: AnyConnectionContext, room: string): boolean;
  readonly size: number;
}

/**
 * What a connection needs from the transport that accepted it: one object
 * per transport, shared by its connections, so a connection holds no
 * closure of its own.
 *
 * @internal
 */
export interface ConnectionOwner {
  readonly counters: ConnectionCounters;
  readonly rooms: RoomKeeper;
  /** When the transport started listening (MSSP's UPTIME). */
  readonly startedAt: number;
  /** Handlers of the event running now (nested events wait a microtask). */
  readonly nested: boolean;
  /**
   * Runs the handlers of `event`: `true`/`false` when they finished at once
   * (handled or not), else a promise of it.
   */
  run(
    ctx: AnyConnectionContext,
    event: string,
    data: unknown,
  ): boolean | Promise<boolean>;
  /** Starts watching a handler that returned a promise. */
  wait(connection: Connection, event: string): PendingHandler;
  /** Stops watching the connection's handler. */
  done(connection: Connection): void;
  /** A connection was admitted (it joins the registry). */
  admitted(connection: Connection): void;
  /** An open connection stopped being open (it leaves the registry). */
  left(connection: Connection, reason: DisconnectReason): void;
  /** The medium closed, or the connection finished: maybe forget it. */
  settle(connection: Connection): void;
  /** The live MSSP values of a telnet connection's listener. */
  msspStatus(connection: Connection): Record<string, string | string[]>;
}
