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
 * Lines the transport sends to a client before closing it (or, for
 * `floodWarning` and a discarded over-long line, while keeping it). Each is
 * sent as a line; `false` sends nothing.
 *
 * @publicApi
 */
export interface EarwaxMessages {
  /** @default 'Line too long (at most N bytes).' */
  lineTooLong: string | false;
  /** @default 'The server is full; please try again later.' */
  serverFull: string | false;
  /** Sent to an address on the block list. @default false */
  blocked: string | false;
  /** @default 'Too many connections from your address.' */
  tooManyConnections: string | false;
  /** @default 'Too many connection attempts; please wait a moment.' */
  rateLimited: string | false;
  /** @default 'Disconnected for inactivity.' */
  idle: string | false;
  /** @default 'You are sending too fast; some input was dropped.' */
  floodWarning: string | false;
  /** @default 'Disconnected for flooding.' */
  flood: string | false;
  /** The goodbye sent to every connection by `close()`. @default false */
  shutdown: string | false;
  /**
   * The body of the plain-text HTTP response a browser pointed at the game
   * port gets (with `sniffProtocols`).
   * @default 'This is a game server, not a web server: connect with a MUD client or telnet.'
   */
  http: string | false;
}
