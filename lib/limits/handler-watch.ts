import type { ConnectionState } from '../interfaces/connection.interface.js';

/**
 * A handler of a connection that has not finished yet: what the
 * connection's later events wait for.
 *
 * @internal
 */
export interface PendingHandler {
  /** The event it handles. */
  readonly event: string;
  /** When the watch first saw it; 0 until then. */
  seenAt: number;
  /** Whether its `handlerTimeout` was reported (once per handler). */
  overdue: boolean;
}

/**
 * How long a connection that is no longer open (its client left, or it was
 * disconnected) waits for a handler still running before the events behind
 * it, `on_disconnect` last, run without it: long enough for any handler that
 * is only slow (a database round trip) to finish first, so replies keep
 * their order, short enough that a hung one cannot hold `on_disconnect`.
 */
export const LEFT_HANDLER_GRACE = 1000;

/**
 * What the watch reads and writes of a connection.
 *
 * @internal
 */
export interface WatchedConnection {
  readonly state: ConnectionState;
  waiting: PendingHandler | null;
}

/**
 * Watches the handlers that returned a promise, for every connection of a
 * transport, with one timer: `handlerTimeout` on open connections, and the
 * grace after which a connection that is no longer open stops waiting. Only
 * connections with a running handler are swept, so an idle or synchronous
 * game costs nothing here; the clock is read once a sweep, so a deadline
 * is met up to one interval (an eighth of it, at most 100 ms) late, never
 * early.
 *
 * @internal
 */
export class HandlerWatch<T extends WatchedConnection = WatchedConnection> {
  /**
   * How long a connection that is no longer open waits for its running
   * handler: `LEFT_HANDLER_GRACE`, or `handlerTimeout` if shorter.
   */
  readonly grace: number;
  private readonly running = new Set<T>();
  private timer: NodeJS.Timeout | undefined;

  /**
   * @param timeout `handlerTimeout` in ms, or `false` for none.
   * @param overdue Called once for each handler still running `timeout`
   *   after it started.
   * @param abandon Called for a handler a connection that is no longer
   *   open stops waiting for.
   */
  constructor(
    private readonly timeout: number | false,
    private readonly overdue: (ctx: T) => void,
    private readonly abandon: (ctx: T) => void,
  ) {
    this.grace = Math.min(
      timeout === false ? Infinity : timeout,
      LEFT_HANDLER_GRACE,
    );
  }

  /** The connection waits for its handler of `event` from now on. */
  wait(ctx: T, event: string): PendingHandler {
    const pending: PendingHandler = { event, seenAt: 0, overdue: false };
    ctx.waiting = pending;
    this.running.add(ctx);
    return pending;
  }

  /** The connection no longer waits for a handler. */
  done(ctx: T): void {
    ctx.waiting = null;
    this.running.delete(ctx);
  }

  start(): void {
    if (this.timer) return;
    const every = Math.min(100, Math.max(10, Math.floor(this.grace / 8)));
    this.timer = setInterval(() => this.sweep(), every);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  private sweep(): void {
    if (this.running.size === 0) return;
    const now = Date.now();
    const { timeout, grace } = this;
    const late: T[] = [];
    const left: T[] = [];
    for (const ctx of this.running) {
      const pending = ctx.waiting;
      if (pending === null) continue;
      if (pending.seenAt === 0) {
        pending.seenAt = now;
        continue;
      }
      const age = now - pending.seenAt;
      if (
        ctx.state !== 'open' &&
        pending.event !== 'on_disconnect' &&
        age >= grace
      ) {
        left.push(ctx);
      } else if (timeout !== false && !pending.overdue && age >= timeout) {
        pending.overdue = true;
        late.push(ctx);
      }
    }
    // Acted on after the loop: both can end connections and change the set.
    for (const ctx of late) this.overdue(ctx);
    for (const ctx of left) if (ctx.waiting !== null) this.abandon(ctx);
  }
}
