import type { AnyConnectionContext } from '../connection/connection-context.js';
import type { ConnectionOwner } from '../connection/connection-owner.js';
import { Connection } from '../connection/connection.js';
import { stopWaiting } from '../connection/event-queue.js';
import type { ListenerInfo } from '../connection/connection-settings.js';
import type { Medium } from '../connection/medium.js';
import { sendLine } from '../connection/outbox.js';
import type { DisconnectReason } from '../interfaces/connection.interface.js';
import type { ConnectionLimits } from '../limits/connection-limits.js';
import { HandlerWatch, type PendingHandler } from '../limits/handler-watch.js';
import type { EarwaxMetrics } from '../metrics/earwax-metrics.js';
import type { HandlerChains } from '../pipeline/handler-chains.js';
import type { ConnectionRegistry } from '../registry/connection.registry.js';
import { describeError } from '../utils/describe-error.js';
import type { EarwaxListener } from './earwax.listener.js';
import type { TransportSettings } from './transport-settings.js';

/**
 * Every connection of one transport, and the owner they answer to: what
 * they hold (the live set, the per-address places), what they feed (the
 * registry, the counters), and the handlers and their watch. A connection
 * is live while its medium is open, and ending while its medium has closed
 * but its events (`on_disconnect` last) still run.
 *
 * @internal
 */
export class ConnectionHub implements ConnectionOwner<Connection> {
  /** Every accepted connection whose medium has not closed. */
  readonly live = new Set<Connection>();
  /**
   * Connections whose medium has closed (and released what it held) while
   * their events, `on_disconnect` last, still run.
   */
  readonly ending = new Set<Connection>();
  /** When the transport started listening (MSSP's UPTIME). */
  startedAt = Date.now();
  readonly watch: HandlerWatch<Connection>;
  private onEmpty: (() => void) | undefined;

  constructor(
    public settings: TransportSettings,
    public registry: ConnectionRegistry,
    public counters: EarwaxMetrics,
    public limits: ConnectionLimits,
    private readonly handlers: HandlerChains,
    private readonly listeners: readonly EarwaxListener[],
  ) {
    this.watch = new HandlerWatch<Connection>(
      settings.handlerTimeout,
      (connection) => this.overdue(connection),
      (connection) => this.abandon(connection),
    );
  }

  /** A medium was accepted on a listener: its connection, held. */
  accept(medium: Medium, listener: ListenerInfo): Connection {
    const connection = new Connection(medium, this, this.settings, listener);
    this.live.add(connection);
    this.counters.opened(connection, medium);
    return connection;
  }

  /** Whether nothing is held or running. */
  get idle(): boolean {
    return this.live.size === 0 && this.ending.size === 0;
  }

  // ConnectionOwner.

  get nested(): boolean {
    return this.handlers.nested;
  }

  run(
    connection: Connection,
    event: string,
    data: unknown,
  ): boolean | Promise<boolean> {
    return this.handlers.run(connection.context, event, data);
  }

  join(connection: Connection, room: string): boolean {
    return this.registry.join(connection.context, room);
  }

  leave(connection: Connection, room: string): boolean {
    return this.registry.leave(connection.context, room);
  }

  wait(connection: Connection, event: string): PendingHandler {
    return this.watch.wait(connection, event);
  }

  done(connection: Connection): void {
    this.watch.done(connection);
  }

  admitted(connection: Connection): void {
    this.registry.add(connection.context);
    this.counters.admitted++;
  }

  left(connection: Connection, reason: DisconnectReason): void {
    this.registry.delete(connection.context);
    this.counters.countDisconnection(reason);
    if (this.settings.logConnections) {
      connection.logEvent(`Disconnected (${reason}).`);
    }
  }

  /**
   * Once the medium has closed: releases what it held at once (its place
   * under the connection limits, timers, compressor), whatever its handlers
   * are doing, and forgets the connection once its events are done too.
   */
  settle(connection: Connection): void {
    if (!connection.medium.closed) return;
    const eventsLeft = connection.eventsLeft;
    if (this.live.delete(connection)) {
      this.release(connection);
      if (eventsLeft) {
        this.ending.add(connection);
        return;
      }
    } else if (eventsLeft || !this.ending.delete(connection)) {
      return;
    }
    if (this.idle) this.onEmpty?.();
  }

  msspStatus(connection: Connection): Record<string, string | string[]> {
    const mssp = connection.listener.telnet?.mssp;
    return {
      PLAYERS: String(
        mssp === undefined || mssp === false || mssp.players === undefined
          ? this.registry.size
          : mssp.players(),
      ),
      UPTIME: String(Math.floor(this.startedAt / 1000)),
      ...this.msspPorts(),
    };
  }

  /** A handler of `ctx` threw or rejected. */
  handlerFailed(
    origin: string,
    event: string,
    ctx: AnyConnectionContext,
    err: unknown,
  ): void {
    this.counters.handlerErrors++;
    const disconnect =
      this.settings.handlerErrorPolicy === 'disconnect' && ctx.isOpen;
    ctx.logger.warn(
      `${origin} failed on ${event}: ${describeError(err)}${disconnect ? '; disconnecting' : ''}`,
    );
    if (disconnect) ctx.disconnect('error');
  }

  /** The idle sweep found a connection idle. */
  dropIdle(connection: Connection, why: string): void {
    connection.logger.log(`${why}: disconnecting (idle).`);
    const message = this.settings.messages.idle;
    if (message !== false) sendLine(connection, message);
    connection.disconnect('idle');
  }

  /**
   * Resolves once nothing is held or running, or after `timeout` ms, then
   * destroys whatever is left.
   */
  async whenIdle(timeout: number): Promise<void> {
    if (this.idle) return;
    let timer: NodeJS.Timeout | undefined;
    await new Promise<void>((resolve) => {
      this.onEmpty = resolve;
      timer = setTimeout(resolve, timeout);
    });
    clearTimeout(timer);
    this.onEmpty = undefined;
    for (const connection of [...this.live, ...this.ending]) {
      connection.logger.warn('Still busy at shutdown deadline; destroyed.');
      connection.state = 'closed';
      // The application is going away: a handler that finishes later must
      // not start its connection's queued on_disconnect.
      connection.queue = null;
      this.watch.done(connection);
      if (this.live.has(connection)) {
        connection.medium.abort();
        this.release(connection);
      }
    }
    this.live.clear();
    this.ending.clear();
  }

  /** What a connection holds beyond its medium: counts, timers, compressor. */
  private release(connection: Connection): void {
    this.counters.closed(connection);
    if (connection.held) this.limits.release(connection.hostname);
    connection.release();
  }

  /** A handler still running at `handlerTimeout`. */
  private overdue(connection: Connection): void {
    const pending = connection.waiting;
    if (pending === null) return;
    this.counters.handlerTimeouts++;
    const { event } = pending;
    const { handlerTimeout, handlerTimeoutPolicy } = this.settings;
    // No longer open (its on_disconnect, or a refusal's on_block): no one
    // is served by waiting any longer.
    const giveUp = connection.state !== 'open';
    const disconnect = !giveUp && handlerTimeoutPolicy === 'disconnect';
    connection.logger.warn(
      `${event} handler (${this.handlers.order(event).join(', ')}) still running after ${String(handlerTimeout)} ms` +
        (giveUp
          ? '; no longer waited for.'
          : disconnect
            ? '; disconnecting.'
            : '; the connection waits for it.'),
    );
    if (giveUp) stopWaiting(connection);
    else if (disconnect) connection.disconnect('error');
  }

  /** A handler still running a grace after its connection stopped being open. */
  private abandon(connection: Connection): void {
    connection.logger.warn(
      `${connection.waiting?.event ?? 'A'} handler still running ${String(this.watch.grace)} ms after the connection stopped being open; the events behind it run without waiting for it or each other.`,
    );
    connection.waitsForHandlers = false;
    stopWaiting(connection);
  }

  /**
   * MSSP's PORT (plain telnet listeners) and SSL (TLS telnet listeners),
   * once bound: where a MUD crawler or client can reach the game. A raw
   * listener (telnet off, for bots) is not advertised.
   */
  private msspPorts(): Record<string, string[]> {
    const plain: string[] = [];
    const secure: string[] = [];
    for (const listener of this.listeners) {
      const port = listener.address()?.port;
      if (
        port !== undefined &&
        listener.settings.telnet !== null &&
        !listener.isWebSocket
      ) {
        (listener.isTls ? secure : plain).push(String(port));
      }
    }
    const ports: Record<string, string[]> = {};
    if (plain.length > 0) ports.PORT = plain;
    if (secure.length > 0) ports.SSL = secure;
    return ports;
  }
}
