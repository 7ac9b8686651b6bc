import type { ConnectionGuard } from '../connection.guard.js';
import type { ConnectionRegistry } from '../connection.registry.js';

/**
 * How incoming bytes become `on_data` events.
 *
 * - `'line'`: one event per line; `\r\n`, `\n` and a lone `\r` end a line and
 *   are removed.
 * - `'raw'`: one event per chunk, exactly as received from the socket.
 *
 * @publicApi
 */
export type FramingMode = 'line' | 'raw';

/**
 * What happens to a line longer than `maxLineLength`.
 *
 * - `'disconnect'`: log it, tell the client, disconnect with reason
 *   `line_too_long`.
 * - `'discard'`: log it, tell the client, drop that line and keep reading.
 *
 * @publicApi
 */
export type OverlongLinePolicy = 'disconnect' | 'discard';

/**
 * What happens to a connection when one of its handlers throws.
 *
 * - `'keep'`: the error goes to Nest's exception filters and the log; the
 *   connection stays.
 * - `'disconnect'`: the same, then the connection is closed with reason
 *   `error`.
 *
 * @publicApi
 */
export type HandlerErrorPolicy = 'keep' | 'disconnect';

/**
 * Options of {@link EarwaxTransport}. Every one is applied: none is accepted
 * and then ignored.
 *
 * @publicApi
 */
export interface EarwaxTransportOptions {
  /**
   * Interface to listen on. Use `'0.0.0.0'` or `'::'` to accept players from
   * other machines.
   * @default '127.0.0.1' (loopback: a server is exposed on purpose, never by accident)
   */
  host?: string;
  /**
   * Port to listen on; `0` picks a free one (read it from `address()`).
   * @default 4000
   */
  port?: number;
  /**
   * Length of the kernel's queue of connections not yet accepted.
   * @default 511
   */
  backlog?: number;
  /**
   * Listen on IPv6 only when `host` is `'::'`, instead of dual-stack.
   * @default false
   */
  ipv6Only?: boolean;
  /**
   * Let several processes bind the same port (Linux `SO_REUSEPORT`; needs
   * Node 22.12 or later, ignored by older Node).
   * @default false
   */
  reusePort?: boolean;
  /**
   * Disable Nagle's algorithm on every connection, so short lines go out at
   * once.
   * @default true
   */
  noDelay?: boolean;
  /**
   * TCP keep-alive: `false` to turn it off, or the initial delay in ms.
   * @default false
   */
  keepAlive?: false | number;
  /**
   * How bytes become `on_data` events.
   * @default 'line'
   */
  framing?: FramingMode;
  /**
   * Decode each line (or raw chunk) with this encoding and pass a string to
   * `on_data`; without it `on_data` gets a `Buffer`. Also the encoding of
   * `sendString`.
   */
  encoding?: BufferEncoding;
  /**
   * Longest line accepted, in bytes without its terminator.
   * @default 65536
   */
  maxLineLength?: number;
  /**
   * What happens to a longer line.
   * @default 'disconnect'
   */
  overlongLinePolicy?: OverlongLinePolicy;
  /**
   * Text sent (as a line) to a client whose line was too long; `false` sends
   * nothing.
   * @default 'Line too long (at most N bytes).'
   */
  overlongLineMessage?: string | false;
  /**
   * Deliver an unterminated last line when the client closes its side
   * cleanly (as `earwax_server` does). A connection that is reset, kicked or
   * shut down never delivers its partial line.
   * @default true
   */
  deliverPartialLineOnEnd?: boolean;
  /**
   * Bytes of output a connection may have waiting in memory because its peer
   * does not read. Past it the connection is dropped with reason
   * `slow_consumer`, so one stalled reader never holds unbounded memory.
   * @default 1048576
   */
  maxOutputBuffer?: number;
  /**
   * Events of one connection waiting behind a slow handler before reading
   * from that socket pauses (TCP then slows the client down).
   * @default 256
   */
  maxQueuedEvents?: number;
  /**
   * What a handler error does to its connection.
   * @default 'keep'
   */
  handlerErrorPolicy?: HandlerErrorPolicy;
  /**
   * Extra event types, as if each were passed to `registerEventType()`.
   */
  eventTypes?: string[];
  /**
   * Decides whether a connection is accepted. Normally injected from the
   * `EarwaxModule`'s `ConnectionGuard` provider; set it here only when the
   * transport is built without that module (a guard given here wins).
   */
  guard?: ConnectionGuard;
  /**
   * The registry of live connections. Normally the `EarwaxModule`'s
   * `ConnectionRegistry`; a transport built without the module keeps its own.
   */
  registry?: ConnectionRegistry;
  /**
   * Log each connection, disconnection and block at `log` level.
   * @default true
   */
  logConnections?: boolean;
  /**
   * On `close()`, how long to wait for `on_disconnect` handlers and for
   * sockets to flush before destroying what is left.
   * @default 5000
   */
  closeTimeout?: number;
  /**
   * After a server-side disconnect, how long a peer has to read what was
   * sent before the socket is destroyed.
   * @default 2000
   */
  lingerTimeout?: number;
}
