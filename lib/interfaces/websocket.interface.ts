/**
 * The WebSocket subprotocols of mudstandards.org/websocket that a WebSocket
 * listener can speak, named as a client lists them in
 * `Sec-WebSocket-Protocol`:
 *
 * - `telnet.mudstandards.org`: BINARY frames carry the whole telnet stream
 *   (negotiation, NAWS, TTYPE, GMCP, ...), as on a telnet port; MCCP2 is
 *   never offered.
 * - `gmcp.mudstandards.org`: BINARY frames carry UTF-8 text with ANSI, TEXT
 *   frames carry GMCP messages (`Package.Name json`).
 * - `terminal.mudstandards.org`: BINARY frames carry UTF-8 text with ANSI,
 *   nothing else.
 *
 * @publicApi
 */
export type WebSocketSubprotocol =
  | 'telnet.mudstandards.org'
  | 'gmcp.mudstandards.org'
  | 'terminal.mudstandards.org';

/**
 * What a connection came in over (`ctx.medium`): a TCP socket, TLS on one,
 * or a WebSocket (plain or over TLS: see `ctx.tls`).
 *
 * @publicApi
 */
export type EarwaxMedium = 'tcp' | 'tls' | 'websocket';

/**
 * Makes a listener a WebSocket one: an HTTP (or, with the listener's `tls`,
 * HTTPS) server on the listener's port that upgrades requests to WebSocket
 * connections. Every connection still goes through the same admission
 * (block list, limits, connection rate, `ConnectionGuard`), before the
 * HTTP 101 answer, and reaches the same `@EarwaxEvent` handlers.
 *
 * @example
 * ```ts
 * new EarwaxTransport({
 *   listeners: [
 *     { name: 'telnet', port: 4000 },
 *     { name: 'web', port: 4080, websocket: { origins: ['https://mud.example'] } },
 *   ],
 * });
 * ```
 *
 * @publicApi
 */
export interface WebSocketListenerOptions {
  /**
   * The subprotocols offered, in the server's order of preference.
   * @default all three, telnet first
   */
  subprotocols?: readonly WebSocketSubprotocol[];
  /**
   * The subprotocol of a client that offers none (a plain
   * `new WebSocket(url)`); without it such a handshake is refused with
   * HTTP 400. One of `subprotocols`.
   */
  defaultSubprotocol?: WebSocketSubprotocol;
  /**
   * The request path upgrades are accepted on; others get HTTP 404.
   * @default '/' (any path when `null`)
   */
  path?: string | null;
  /**
   * The page origins (`https://mud.example`) whose scripts may connect, as
   * the browser sends them in `Origin`; a handshake from any other is
   * refused with HTTP 403, so a page on another site cannot open a
   * WebSocket to the game in its visitors' name. A handshake without
   * `Origin` (not from a browser) is allowed. Unset: any origin.
   */
  origins?: readonly string[];
  /**
   * The largest message accepted, in bytes, after decompression; a larger
   * one closes the connection with 1009.
   * @default 65536
   */
  maxPayload?: number;
  /**
   * Offer permessage-deflate. Off by default: it costs memory per
   * connection and CPU per frame, and text games rarely need it.
   * @default false
   */
  perMessageDeflate?: boolean;
  /**
   * How often a ping is sent, in milliseconds; a peer that has not answered
   * the previous one by then is dropped. `0`: no pings.
   * @default 30000
   */
  pingInterval?: number;
}
