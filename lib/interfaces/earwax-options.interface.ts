import type { TlsOptions } from 'node:tls';
import type { TelnetOptions } from './telnet.interface.js';
import type { WebSocketListenerOptions } from './websocket.interface.js';

export type {
  EarwaxMessages,
  FramingMode,
  HandlerErrorPolicy,
  OverlongLinePolicy,
} from './connection-options.interface.js';

/**
 * The PROXY protocol (v1 and v2, as sent by HAProxy's `send-proxy` /
 * `send-proxy-v2` and nginx's `proxy_protocol on`) on a listener behind a
 * proxy: every connection must start with a header, and only from a trusted
 * proxy.
 *
 * @publicApi
 */
export interface ProxyProtocolOptions {
  /**
   * Addresses and CIDR ranges of the proxies allowed to connect; a
   * connection from anywhere else is closed with a warning before anything
   * is read from it.
   */
  trustedProxies: readonly string[];
  /**
   * Milliseconds a connection has to send its whole header.
   * @default 3000
   */
  headerTimeout?: number;
  /**
   * Which versions to accept.
   * @default [1, 2]
   */
  versions?: ReadonlyArray<1 | 2>;
}

/**
 * One listening socket of a transport: where it listens and how its
 * connections arrive (plain or TLS, direct or through a PROXY-protocol
 * proxy, telnet or not). A transport with several listeners (plain telnet on
 * 4000 and TLS on 4443, say) runs one game: one registry, one set of
 * handlers, one set of limits; `ctx.listener` names the listener a
 * connection came in on.
 *
 * `host`, `backlog`, `ipv6Only`, `reusePort`, `proxyProtocol` and `telnet`
 * default to the transport's own options; `port` and `tls` belong to the
 * listener alone.
 *
 * @publicApi
 */
export interface EarwaxListenerOptions {
  /** Unique within the transport; shown as `ctx.listener` and in logs. */
  name: string;
  /** Port to listen on; `0` picks a free one (read it from `address(name)`). */
  port: number;
  /** Interface to listen on. @default the transport's `host` */
  host?: string;
  /** @default the transport's `backlog` */
  backlog?: number;
  /** @default the transport's `ipv6Only` */
  ipv6Only?: boolean;
  /** @default the transport's `reusePort` */
  reusePort?: boolean;
  /**
   * Serve TLS on this listener (see `EarwaxTransportOptions.tls`). With
   * `proxyProtocol` as well, the PROXY header comes first, in the clear, as
   * HAProxy's `send-proxy` sends it in front of a TLS backend.
   */
  tls?: TlsOptions;
  /**
   * Require the PROXY protocol on this listener; `false` turns off the
   * transport's.
   * @default the transport's `proxyProtocol`
   */
  proxyProtocol?: ProxyProtocolOptions | false;
  /**
   * Telnet mode on this listener; `false` turns off the transport's (a raw
   * port for bots beside a telnet port for players).
   * @default the transport's `telnet`
   */
  telnet?: boolean | TelnetOptions;
  /**
   * Serve WebSocket players on this listener (an HTTP server that upgrades
   * to WebSocket; HTTPS with `tls`), with the MUD-standards subprotocols.
   * The `telnet` options apply to the `telnet.mudstandards.org`
   * subprotocol.
   */
  websocket?: WebSocketListenerOptions;
}

/**
 * A limit on new connections per IP address: at most `limit` in any
 * `windowMs`.
 *
 * @publicApi
 */
export interface ConnectionRateOptions {
  /** Connections allowed per window. */
  limit: number;
  /** The window, in milliseconds. */
  windowMs: number;
}

/**
 * Token buckets limiting what one connection sends. Every chunk read from
 * the socket takes its length in byte tokens, whatever it holds (telnet
 * protocol included); a line (in raw framing, a chunk; in telnet mode, also
 * each telnet command, negotiation and subnegotiation) takes one line token.
 * Buckets refill continuously at their rate, up to their burst. A line that
 * finds the line bucket empty is dropped (a dropped telnet negotiation is not
 * answered); a chunk that leaves the byte bucket in debt is dropped whole, as
 * one drop, and the debt is paid off before input passes again. The client
 * is warned once per episode; an episode ends when both buckets are full
 * again. After `dropsBeforeDisconnect` drops in one episode the connection is
 * dropped with reason `flood`.
 *
 * @publicApi
 */
export interface InputRateOptions {
  /** @default 50 */
  linesPerSecond?: number;
  /** @default 200 */
  lineBurst?: number;
  /** @default 131072 (128 KiB) */
  bytesPerSecond?: number;
  /** Must hold the longest line (`maxLineLength`). @default 524288 (512 KiB) */
  byteBurst?: number;
  /** `0` disconnects at the first drop. @default 200 */
  dropsBeforeDisconnect?: number;
}
