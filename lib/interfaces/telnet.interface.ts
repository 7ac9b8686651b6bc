/**
 * Telnet mode of an `EarwaxTransport` (its `telnet` option). Every option
 * has a default; `telnet: true` takes them all.
 *
 * What a client's telnet input can make the server spend is bounded, with
 * or without `inputRate`:
 * - every byte read counts against `inputRate`, and every command,
 *   negotiation and subnegotiation is one event, as a line is: a negotiation
 *   flood is dropped, then disconnected with reason `flood`, like a line
 *   flood; what the limiter drops is not answered;
 * - negotiation is answered only on a change of state (RFC 1143): a repeated
 *   request gets no answer, and options the server does not offer (or, for
 *   ECHO, the game has not asked for with `ctx.echo(false)`) are refused;
 * - protocol output caused by input (negotiation answers, the MSSP table,
 *   TTYPE SEND, the CHARSET request) is at most twice the input read, over
 *   any window, plus an allowance of 4 KiB and the static MSSP table
 *   (`mssp.name` and `mssp.variables`). An answer past that is dropped and
 *   the connection disconnected with reason `flood`; a client that follows
 *   the protocol never comes near it (steady negotiation answers are at most
 *   one 3-byte answer per 3-byte request).
 *
 * @publicApi
 */
export interface TelnetOptions {
  /**
   * Ask for the client's terminal type (TTYPE), cycling through the MTTS
   * replies (client name, terminal, capabilities).
   * @default true
   */
  ttype?: boolean;
  /**
   * Ask for the window size (NAWS); changes arrive as `on_resize`.
   * @default true
   */
  naws?: boolean;
  /**
   * Offer GMCP: `on_gmcp` events and `ctx.sendGmcp()`.
   * @default true
   */
  gmcp?: boolean;
  /**
   * Offer the CHARSET option and ask for UTF-8 (ISO-8859-1 as the
   * fallback).
   * @default true
   */
  charset?: boolean;
  /**
   * Offer EOR, so prompts (`ctx.sendPrompt()`) end with IAC EOR; a client
   * without it gets IAC GA.
   * @default true
   */
  eor?: boolean;
  /**
   * Offer MSSP (server status for MUD crawlers): `false` to keep quiet, or
   * what to report besides the live NAME, PLAYERS and UPTIME.
   * @default { name: 'nestjs-earwax' }
   */
  mssp?: MsspOptions | false;
  /**
   * Offer MCCP2: a client that agrees gets everything after that compressed
   * with zlib (about 48 KiB of memory per connection while it lasts). Worth
   * it for players on slow links; not for TLS connections, which should not
   * mix compression with encryption.
   * @default false
   */
  mccp2?: boolean;
  /**
   * Longest subnegotiation accepted, in bytes; a longer one is dropped with
   * a warning and the connection carries on.
   * @default 8192
   */
  maxSubnegotiationLength?: number;
}

/**
 * What MSSP reports. NAME, PLAYERS (live connections) and UPTIME (when the
 * transport started listening) are always sent; `variables` adds any other
 * MSSP variable (`CODEBASE`, `CONTACT`, `WEBSITE`, `GENRE`, ...).
 *
 * @publicApi
 */
export interface MsspOptions {
  /** The game's name. */
  name: string;
  /** More variables; an array sends the variable with several values. */
  variables?: Record<string, string | number | Array<string | number>>;
  /**
   * How many players are online, for PLAYERS; by default, the live
   * connections (including those still at a login prompt).
   */
  players?: () => number;
  /**
   * The shortest time between two MSSP tables sent to one connection, in
   * milliseconds. A client that turns MSSP off and asks again sooner is
   * refused (IAC WONT MSSP), so a table costs a client at most one request
   * per interval, whatever it sends. Tables count against the connection's
   * answer budget (see `TelnetOptions`): at most twice what the client sent,
   * plus an allowance that always holds the first table.
   * @default 60000
   */
  interval?: number;
}

/**
 * A telnet window size (NAWS), in characters.
 *
 * @publicApi
 */
export interface WindowSize {
  readonly width: number;
  readonly height: number;
}

/**
 * What the client told about its terminal through TTYPE and MTTS.
 *
 * @publicApi
 */
export interface TerminalInfo {
  /** The first TTYPE answer: the client's name (`MUDLET`, `TINTIN++`). */
  readonly client?: string;
  /** The second: the terminal type (`XTERM-256COLOR`, `ANSI`). */
  readonly terminal?: string;
  /** The MTTS bit field, when the client sent one. */
  readonly mtts?: number;
  /** The MTTS bits, spelled out (all `false` without MTTS). */
  readonly capabilities: TerminalCapabilities;
}

/**
 * The MTTS capabilities of a client.
 *
 * @publicApi
 */
export interface TerminalCapabilities {
  readonly ansi: boolean;
  readonly vt100: boolean;
  readonly utf8: boolean;
  readonly colors256: boolean;
  readonly mouseTracking: boolean;
  readonly oscColorPalette: boolean;
  readonly screenReader: boolean;
  readonly proxy: boolean;
  readonly trueColor: boolean;
  readonly mnes: boolean;
  readonly mslp: boolean;
  readonly tls: boolean;
}

/**
 * A GMCP message from a client: the payload of `on_gmcp`.
 *
 * @publicApi
 */
export interface GmcpMessage {
  /** The package and message name (`Core.Hello`, `Char.Login`). */
  readonly package: string;
  /** The parsed JSON data; `undefined` when the message had none. */
  readonly data: unknown;
}
