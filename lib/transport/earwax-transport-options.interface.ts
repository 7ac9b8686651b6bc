import type { TlsOptions } from 'node:tls';
import type { RateLimiterAbstract } from 'rate-limiter-flexible';
import type { ConnectionGuard } from '../guard/connection.guard.js';
import type {
  EarwaxMessages,
  FramingMode,
  HandlerErrorPolicy,
  OverlongLinePolicy,
} from '../interfaces/connection-options.interface.js';
import type {
  ConnectionRateOptions,
  EarwaxListenerOptions,
  InputRateOptions,
  ProxyProtocolOptions,
} from '../interfaces/earwax-options.interface.js';
import type { TelnetOptions } from '../interfaces/telnet.interface.js';
import type { ConnectionRegistry } from '../registry/connection.registry.js';
import type { EarwaxOpenTelemetry } from '../tracing/open-telemetry-options.interface.js';

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
   * Not with `listeners`, where each listener has its own.
   * @default 4000
   */
  port?: number;
  /**
   * Several listeners in one transport (plain and TLS, say), each with its
   * own port and its own TLS, PROXY-protocol and telnet settings. Without
   * it the transport has one listener, named `'default'`, made of `host`,
   * `port`, `tls`, `proxyProtocol` and `telnet`. MSSP advertises the TLS
   * listeners' ports as `SSL` and the others' as `PORT`.
   *
   * @example
   * ```ts
   * new EarwaxTransport({
   *   telnet: true,
   *   listeners: [
   *     { name: 'telnet', port: 4000 },
   *     { name: 'tls', port: 4443, tls: { key, cert } },
   *   ],
   * });
   * ```
   */
  listeners?: EarwaxListenerOptions[];

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
   * How long a connection's output may stay above the socket's high-water
   * mark (16 KiB) without draining before it is dropped with reason
   * `slow_consumer`: the deadline for a peer that reads, but too slowly. Also
   * how long a connection being closed may take to flush.
   * @default 30000
   */
  writeTimeout?: number;
  /**
   * Connections held at once; one more is refused with `server_full`. A
   * connection is held from the moment it is accepted until its socket has
   * closed, so one that is still closing (flushing its output, or waiting
   * up to `lingerTimeout` for the peer's FIN) still counts: the limit is on
   * sockets, the resource it protects. `maxConnectionsPerIp` counts the same
   * way. `false` for no limit.
   * @default 10000
   */
  maxConnections?: number | false;
  /**
   * Connections one IP address may hold at once; one more is refused with
   * `too_many_connections`. Mind players behind one NAT (a school, a
   * campus). With a cluster adapter (`RedisAdapter`) the count covers every
   * process of the game, from a local cache kept up to date in the
   * background, so a burst spread over processes can briefly exceed it.
   * `false` for no limit.
   * @default 50
   */
  maxConnectionsPerIp?: number | false;
  /**
   * New connections one IP address may open per time window; more are
   * refused with `rate_limited`. Either the limit, or any
   * `rate-limiter-flexible` limiter keyed by IP address (a
   * `RateLimiterRedis` shares it between processes). A limiter that fails
   * (its store is down) admits the connection and logs a warning. `false`
   * for no limit.
   * @default { limit: 30, windowMs: 10000 }
   */
  connectionRate?: ConnectionRateOptions | RateLimiterAbstract | false;
  /**
   * Milliseconds without input after which a connection is dropped with
   * reason `idle`. Input means an input event: a whole line (in raw framing,
   * a chunk; in telnet mode also a telnet event such as a resize). Bytes
   * that never end a line do not count, so a client trickling one byte a
   * second (slowloris) is idle; nor does output sent to a player. Checked on
   * a timer, so it fires up to an eighth of the timeout
   * (at most 5 s) late. `false` for never.
   * @default 3600000 (one hour)
   */
  idleTimeout?: number | false;
  /**
   * Milliseconds a new connection has to send its first input (a whole
   * line, a raw chunk, or a telnet event such as a real telnet client's
   * terminal-type answer) before it is dropped with reason `idle`: shorter
   * than `idleTimeout`, against connections that are opened and left silent
   * or trickle bytes. `false` for never.
   * @default 60000
   */
  firstInputTimeout?: number | false;
  /**
   * How fast one connection may send: token buckets for lines (`on_data`
   * events, and telnet commands, negotiations and subnegotiations) and
   * bytes (every byte read). Past them, input is dropped with a warning, and
   * a client that keeps on is dropped with reason `flood`. `false` for no
   * limit; in telnet mode, what negotiation makes the server send stays
   * bounded even then (at most twice the input, see `TelnetOptions`).
   * @default { linesPerSecond: 50, lineBurst: 200, bytesPerSecond: 131072, byteBurst: 524288, dropsBeforeDisconnect: 200 }
   */
  inputRate?: InputRateOptions | false;
  /**
   * Telnet mode: input goes through a telnet codec, so `on_data` still gets
   * clean lines while every telnet command is answered or stripped, and the
   * server offers TTYPE, NAWS, GMCP, CHARSET, EOR and MSSP (see
   * {@link TelnetOptions}). Off by default: a raw TCP client (`nc`, a bot)
   * sees exactly the bytes sent, and `0xFF` is data. With it on, `nc` shows
   * a few stray bytes at connect (the offers); `telnet`, TinTin++, Mudlet and
   * MUSHclient answer them. With `listeners`, the default of each listener.
   * Telnet protocol counts against `inputRate`, and what a client's input
   * makes the server send is at most twice that input over any window, plus
   * a fixed allowance (see {@link TelnetOptions}).
   * @default false
   */
  telnet?: boolean | TelnetOptions;
  /**
   * Serve TLS: what `tls.createServer()` takes (`key` and `cert`, or a
   * `secureContext`, `SNICallback`, `requestCert`, `ca`, `minVersion`,
   * `handshakeTimeout`, ...). Read when the transport is constructed.
   *
   * The admission checks that need no handshake (server full, block list,
   * per-address limits, connection rate) run before it, so a banned or
   * flooding address costs no TLS handshake; such a refusal is a plain close
   * with no message (it could not be read). The guard runs after the
   * handshake and sees `ctx.tls`. A handshake must finish within
   * `handshakeTimeout` (10 s unless set; Node's own default is 120 s). A
   * failed handshake (plaintext sent to the TLS port, a scanner) is logged
   * for that connection and never disturbs others. `ctx.tls` tells the
   * protocol, cipher and client certificate; `transport.setSecureContext()`
   * swaps the certificate without dropping connections. MCCP2 is never
   * offered over TLS. Not with `listeners`: give it to a listener there.
   */
  tls?: TlsOptions;
  /**
   * Require the PROXY protocol on this listener (behind HAProxy or nginx):
   * the guard, block list, per-address limits, logs and `ctx.hostname` /
   * `ctx.port` then use the real client's address, and `ctx.proxy` keeps the
   * proxy's. A missing, malformed or late header, or a connection from an
   * untrusted address, is closed with a warning and never admitted. A
   * `LOCAL` (v2) or `UNKNOWN` (v1) header keeps the socket's own addresses.
   * With `listeners`, the default of each listener.
   * @default false
   */
  proxyProtocol?: ProxyProtocolOptions | false;
  /**
   * Look at the first bytes a connection sends: an HTTP request (a browser
   * pointed at the game port) gets a short plain-text HTTP response, and a
   * TLS handshake on this plain port is logged; both are closed with reason
   * `protocol`. A player typing `GET sword` is not mistaken for a browser:
   * the line must be a whole HTTP request line.
   * @default true
   */
  sniffProtocols?: boolean;
  /**
   * Addresses and CIDR ranges refused from the start (`'203.0.113.9'`,
   * `'10.0.0.0/8'`, `'2001:db8::/32'`), added to the application's
   * `BlockListService` as permanent bans.
   */
  blockList?: readonly string[];
  /**
   * Lines sent to a client before the transport closes it; `false` for
   * silence. Each has a default (see {@link EarwaxMessages}).
   */
  messages?: Partial<EarwaxMessages>;
  /**
   * Events of one connection waiting behind a slow handler before reading
   * from that socket pauses (TCP then slows the client down). The lines of
   * the chunk being read when it pauses are still queued, so the queue can
   * briefly hold one socket read's worth (64 KiB) of lines more. A
   * connection working through a long queue lets the others run every 64
   * events.
   * @default 256
   */
  maxQueuedEvents?: number;
  /**
   * What a handler error does to its connection.
   * @default 'keep'
   */
  handlerErrorPolicy?: HandlerErrorPolicy;
  /**
   * Milliseconds after which a handler that has not finished (a promise
   * that has not settled, an Observable that has not completed) is reported:
   * one warning naming the event, its handlers and the connection, and the
   * `earwax_handler_timeouts_total` counter. Checked on a timer, so it is
   * reported up to an eighth of the timeout (at most 1 s) late, never early.
   * While the connection is open, its later events keep waiting for the
   * handler (unless `handlerTimeoutPolicy` is `'disconnect'`), so replies
   * keep their order. Whatever the handlers do, a connection whose socket
   * has closed releases its places under the connection limits at once; once
   * it is no longer open, a handler still running a second later (or this
   * timeout, if shorter) is no longer waited for, so `on_disconnect` comes
   * promptly, possibly while that handler is still pending. An
   * `on_disconnect` handler still running at this timeout is given up on,
   * and the connection forgotten. `false` never reports and never gives up
   * on `on_disconnect`.
   * @default 10000
   */
  handlerTimeout?: number | false;
  /**
   * What a handler still running at `handlerTimeout` does to its open
   * connection: `'keep'` only reports it; `'disconnect'` also closes the
   * connection with reason `error`.
   * @default 'keep'
   */
  handlerTimeoutPolicy?: HandlerErrorPolicy;
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
   * OpenTelemetry spans and metrics, with `@opentelemetry/api` installed
   * (an optional peer): a span `earwax <event>` for each event that has
   * handlers, the handlers running in its context, and the figures of
   * `metrics` as observable instruments of a meter. `true` or an options
   * object (providers of your own, `spans` or `metrics` off) turns them
   * on; `false` turns them off and never loads the API.
   *
   * Left out, spans are on when a global tracer provider is registered
   * (the SDK's `NodeSDK.start()` or `provider.register()` before the
   * transport listens), and metrics when a global meter provider is: a
   * game that set up OpenTelemetry gets both, one that did not pays
   * nothing. Without the API, nothing is loaded and events cost what they
   * do with `false`.
   * @default on when a global provider is registered at listen()
   */
  openTelemetry?: EarwaxOpenTelemetry;
  /**
   * Refused connections are logged (warnings for `server_full`,
   * `too_many_connections` and `rate_limited`, errors for a failing
   * `ConnectionGuard`) once per reason and address in each window of this
   * many milliseconds; the further ones are counted and summed up in one
   * warning when the window ends, so that a connection storm cannot flood
   * the log. `false` logs every one.
   * @default 10000
   */
  refusalLogInterval?: number | false;
  /**
   * On `close()` (and so on Nest's shutdown hooks), the deadline for the
   * graceful part: after the `shutdown` message, running handlers and
   * `on_disconnect` handlers are awaited and output is flushed until then;
   * whatever is left is destroyed, with a TCP reset where output queued for
   * a client is thrown away (so it cannot take it for a complete answer).
   * @default 5000
   */
  closeTimeout?: number;
  /**
   * After a server-side disconnect has flushed its output, how long the peer
   * has to close its side before the socket is destroyed.
   * @default 2000
   */
  lingerTimeout?: number;
}
