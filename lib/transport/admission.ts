import type { Logger } from '@nestjs/common';
import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import type { BlockListService } from '../block-list/block-list.service.js';
import type { Connection } from '../connection/connection.js';
import { sendLine, hangUp } from '../connection/outbox.js';
import { targetOf, TcpMedium } from '../connection/tcp.medium.js';
import type { ConnectionGuard } from '../guard/connection.guard.js';
import type { BlockReason } from '../interfaces/connection.interface.js';
import type { EarwaxMessages } from '../interfaces/earwax-options.interface.js';
import { LogThrottle } from '../limits/log-throttle.js';
import type { HandlerChains } from '../pipeline/handler-chains.js';
import { describeError } from '../utils/describe-error.js';
import { WebSocketMedium } from '../websocket/websocket.medium.js';
import type { ListenerInfo } from '../connection/connection-settings.js';
import { isThenable } from '../utils/is-thenable.js';
import type { ConnectionHub } from './connection-hub.js';
import type { EarwaxListener } from './earwax.listener.js';
import { readProxyHeader } from './proxy-header.js';

/** Refusals logged only with `logConnections`, at `log` level. */
const QUIET_REFUSALS: ReadonlySet<BlockReason> = new Set<BlockReason>([
  'blocked',
  'refused',
]);
const BLOCK_MESSAGE: Partial<Record<BlockReason, keyof EarwaxMessages>> = {
  server_full: 'serverFull',
  blocked: 'blocked',
  too_many_connections: 'tooManyConnections',
  rate_limited: 'rateLimited',
};

/**
 * Admission: every accepted socket goes through the checks, cheapest and
 * most certain first (limits → bans → connection rate → TLS handshake →
 * guard), and is admitted, or refused with `on_block`.
 *
 * @internal
 */
export class Admission {
  guard: ConnectionGuard | undefined;
  /** Holds back repeated refusal logs (`refusalLogInterval`). */
  private refusalLog: LogThrottle | null = null;
  /** Set by the transport's `close()`: nothing more is admitted. */
  closing = false;

  constructor(
    public hub: ConnectionHub,
    public blocks: BlockListService,
    private readonly handlers: HandlerChains,
    private readonly logger: Logger,
  ) {}

  /**
   * Logs repeated refusals at most once per `windowMs` per reason and
   * address (`refusalLogInterval`); `false`: every refusal.
   */
  configure(windowMs: number | false): void {
    this.flushRefusals();
    this.refusalLog =
      windowMs === false
        ? null
        : new LogThrottle(windowMs, (key, held) => {
            const [reason, address] = key.split('|');
            const from =
              key === '*'
                ? 'refusals from further addresses'
                : `Connection refused (${reason})${address === undefined ? '' : ` from ${address}`}`;
            const line = `${from}: ${held} more in the last ${windowMs / 1000} s, not logged one by one.`;
            if (QUIET_REFUSALS.has(reason as BlockReason))
              this.logger.log(line);
            else this.logger.warn(line);
          });
  }

  /** Tells the refusals held back so far, and stops the log's timer. */
  flushRefusals(): void {
    this.refusalLog?.flush();
  }

  /** A listener accepted a TCP socket (paused, nothing read yet). */
  accept(socket: Socket, listener: EarwaxListener): void {
    if (this.closing) {
      socket.destroy();
      return;
    }
    const hub = this.hub;
    // Node asks the kernel for the peer's address (getpeername) on first
    // use, here, as early as it can: libuv's accept() does not keep it. A
    // connection the peer reset while it waited in the accept queue has
    // none left, and nothing to serve: it is closed before any admission
    // check, so that it is never logged, limited or rate-counted under an
    // empty address (a reset storm would share one bucket).
    if (socket.remoteAddress === undefined) {
      // Accepted, never admitted nor refused, like a failed TLS handshake.
      hub.counters.accepted++;
      this.logger.debug('A connection reset before it was accepted: closed.');
      socket.on('error', ignoreError);
      socket.destroy();
      return;
    }
    const connection = hub.accept(new TcpMedium(socket), listener);
    const { noDelay, keepAlive } = hub.settings;
    if (noDelay) socket.setNoDelay(true);
    if (keepAlive !== false) socket.setKeepAlive(true, keepAlive);
    const proxy = listener.settings.proxyProtocol;
    if (proxy === null) {
      this.check(connection);
      return;
    }
    readProxyHeader(connection, socket, proxy, () => {
      if (this.closing) socket.destroy();
      else this.check(connection);
    });
  }

  /**
   * A WebSocket upgrade request passed its listener's checks: the same
   * admission as a TCP connection, all before the HTTP 101 answer.
   */
  arrived(medium: WebSocketMedium, listener: ListenerInfo): void {
    if (this.closing) {
      medium.destroy();
      return;
    }
    const hub = this.hub;
    if (hub.settings.noDelay) medium.raw.setNoDelay(true);
    this.check(hub.accept(medium, listener));
  }

  /** A TLS listener's handshake is done: the guard decides next. */
  secured(tls: TLSSocket, raw: Socket | undefined): void {
    const connection = connectionOn(raw);
    if (
      connection === undefined ||
      connection.state !== 'pending' ||
      !connection.tlsPending
    ) {
      tls.destroy();
      return;
    }
    (connection.medium as TcpMedium).upgrade(tls);
    connection.out = tls;
    connection.tlsPending = false;
    this.askGuard(connection, true);
  }

  /** Plaintext on the TLS port, a scanner, a silent client: this one only. */
  handshakeFailed(err: Error, tls: TLSSocket, raw: Socket | undefined): void {
    const connection = connectionOn(raw);
    const reason =
      (err as NodeJS.ErrnoException).code === 'ERR_TLS_HANDSHAKE_TIMEOUT'
        ? 'timed out'
        : `failed: ${err.message}`;
    (connection?.logger ?? this.logger).warn(
      `TLS handshake ${reason}; closed.`,
    );
    // Node leaves a timed-out one open; the TCP socket's close then
    // releases the connection's place.
    tls.destroy();
    raw?.destroy();
  }

  /** The checks that need no handshake, cheapest and most certain first. */
  private check(connection: Connection): void {
    const hub = this.hub;
    const { maxConnections } = hub.settings;
    // Every held connection counts, under the client's (real) address.
    const ip = connection.hostname;
    const withinIpLimit = hub.limits.hold(ip);
    connection.held = true;
    if (hub.live.size > maxConnections) {
      this.block(connection, 'server_full');
    } else if (this.blocks.isBlocked(ip)) {
      this.block(connection, 'blocked');
    } else if (!withinIpLimit) {
      this.block(connection, 'too_many_connections');
    } else {
      const withinRate = hub.limits.consume(ip);
      if (withinRate === true) {
        this.passChecks(connection, false);
      } else if (withinRate === false) {
        this.block(connection, 'rate_limited');
      } else {
        void withinRate.then((allowed) => {
          if (allowed) this.passChecks(connection, true);
          else this.block(connection, 'rate_limited');
        });
      }
    }
  }

  /**
   * Past the checks that need no handshake: a TLS listener's connection
   * starts its handshake now (so a refused address never cost one), any
   * other goes to the guard.
   */
  private passChecks(connection: Connection, late: boolean): void {
    if (!connection.tlsPending) {
      this.askGuard(connection, late);
      return;
    }
    const medium = connection.medium as TcpMedium;
    if (medium.closed || this.closing) {
      medium.destroy();
      return;
    }
    (connection.listener as EarwaxListener).handshake(medium.tcp);
  }

  private askGuard(connection: Connection, late: boolean): void {
    if (connection.medium.closed || this.closing) {
      connection.medium.destroy();
      return;
    }
    const guard = this.guard;
    if (!guard) {
      this.admit(connection, true, late);
      return;
    }
    let verdict: boolean | Promise<boolean>;
    try {
      verdict = guard.canConnect(connection.context);
    } catch (err) {
      this.block(connection, 'guard_error', err);
      return;
    }
    if (isThenable<boolean>(verdict)) {
      verdict.then(
        (allowed) => this.admit(connection, allowed, true),
        (err: unknown) => this.block(connection, 'guard_error', err),
      );
    } else {
      this.admit(connection, verdict, late);
    }
  }

  private admit(connection: Connection, allowed: boolean, late: boolean): void {
    if (connection.medium.closed || this.closing) {
      // Gone (or shutting down) while the guard decided: never admitted.
      connection.medium.destroy();
      return;
    }
    if (allowed !== true) {
      this.block(connection, 'refused');
      return;
    }
    // Banned while an async limiter or guard was deciding: a ban kicks only
    // admitted connections, so it is checked again here.
    if (late && this.blocks.isBlocked(connection.hostname)) {
      this.block(connection, 'blocked');
      return;
    }
    const medium = connection.medium;
    if (medium instanceof WebSocketMedium) {
      // The handshake completes (HTTP 101) only now.
      medium.accept(() => connection.open());
      return;
    }
    connection.open();
  }

  private block(connection: Connection, reason: BlockReason, err?: unknown) {
    const hub = this.hub;
    const settings = hub.settings;
    hub.counters.countRefusal(reason);
    const quiet =
      this.refusalLog !== null &&
      (settings.logConnections || !QUIET_REFUSALS.has(reason)) &&
      !this.refusalLog.allow(
        reason === 'server_full' || reason === 'guard_error'
          ? reason
          : `${reason}|${connection.hostname}`,
      );
    const logger = connection.logger;
    switch (quiet ? 'counted' : reason) {
      case 'counted':
        break;
      case 'guard_error':
        logger.error(
          `ConnectionGuard failed; connection refused: ${describeError(err)}`,
          err instanceof Error ? err.stack : undefined,
        );
        break;
      case 'server_full':
        logger.warn(
          `Connection refused (server_full): ${settings.maxConnections} connections held.`,
        );
        break;
      case 'too_many_connections':
        logger.warn(
          `Connection refused (too_many_connections): ${hub.limits.heldBy(connection.hostname) - 1} held from ${connection.hostname}, at most ${String(settings.maxConnectionsPerIp)}.`,
        );
        break;
      case 'rate_limited':
        logger.warn(
          `Connection refused (rate_limited): ${connection.hostname} opens connections too fast.`,
        );
        break;
      default:
        if (settings.logConnections) {
          logger.log(`Connection refused (${reason}).`);
        }
    }
    if (connection.medium.closed) return;
    // A WebSocket refused before its handshake answers with an HTTP error.
    if (connection.medium instanceof WebSocketMedium) {
      connection.medium.refuse(reason);
    }
    const handled = this.handlers.run(connection.context, 'on_block', reason);
    if (handled === true || handled === false) {
      this.refuse(connection, reason, handled);
      return;
    }
    const pending = hub.wait(connection, 'on_block');
    void handled.then((stopped) => {
      if (connection.waiting !== pending) return;
      hub.done(connection);
      this.refuse(connection, reason, stopped);
    });
  }

  /** After `on_block`: the refusal message (unless handled), then the end. */
  private refuse(
    connection: Connection,
    reason: BlockReason,
    handled: boolean,
  ): void {
    // A handler that returns EVENT_HANDLED has said what it wanted to.
    const key = BLOCK_MESSAGE[reason];
    const message = key && !handled ? connection.settings.messages[key] : false;
    if (message !== false) sendLine(connection, message);
    hangUp(connection);
  }
}

/** The connection a TCP socket carries: every medium's receiver is one. */
function connectionOn(socket: Socket | undefined): Connection | undefined {
  return socket === undefined
    ? undefined
    : (targetOf(socket) as Connection | undefined);
}

function ignoreError(): void {
  // A socket being destroyed after its peer reset it: nothing to report.
}
