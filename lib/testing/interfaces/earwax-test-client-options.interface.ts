import type { ConnectionOptions } from 'node:tls';

/**
 * How long one wait of the testing kit may take.
 *
 * @publicApi
 */
export interface EarwaxTestWaitOptions {
  /**
   * Milliseconds before the wait fails with an `EarwaxExpectationError`.
   * @default the client's `timeout` option (5000)
   */
  timeout?: number;
}

/**
 * A GMCP message: its package and message name (`Core.Hello`), and its data
 * (any JSON value; `undefined` for a message without data).
 *
 * @publicApi
 */
export interface EarwaxTestGmcpMessage {
  readonly package: string;
  readonly data?: unknown;
}

/**
 * How a telnet-aware test client answers the server's negotiation. With
 * none of these set (`telnet: true`), it refuses every option, as a bare
 * telnet client does, and still strips every telnet command from the lines.
 *
 * @publicApi
 */
export interface EarwaxTestTelnetOptions {
  /**
   * Options the server offers (`IAC WILL`) that this client lets it perform
   * (answered `IAC DO`): `TelnetOption.ECHO`, `EOR`, `GMCP`, `MSSP`,
   * `CHARSET`, ... Every other offer is refused (`IAC DONT`). MCCP2 cannot be
   * accepted: the client reads uncompressed text only.
   * @default []
   */
  accept?: readonly number[];
  /**
   * Terminal type answers: the client agrees to `DO TTYPE` and answers each
   * `SEND` with the next name, repeating the last (`['MUDLET', 'XTERM',
   * 'MTTS 137']`). Without it, TTYPE is refused.
   */
  ttype?: readonly string[];
  /**
   * A window size: the client agrees to `DO NAWS` and sends it at once.
   * Without it, NAWS is refused. `telnet.sendNaws()` sends a new one.
   */
  naws?: { readonly width: number; readonly height: number };
  /**
   * The charset to pick when the server sends a CHARSET request that offers
   * it (`'UTF-8'`, `'ISO-8859-1'` or `'US-ASCII'`); the client then reads
   * and writes text in it. Implies accepting CHARSET. Without it, every
   * request is rejected.
   */
  charset?: string;
  /**
   * GMCP messages the client sends as soon as the server's GMCP offer is
   * accepted, in order (a `Core.Hello`, a `Core.Supports.Set`). Implies
   * accepting GMCP.
   */
  gmcp?: readonly EarwaxTestGmcpMessage[];
  /**
   * Other options the client agrees to perform when the server asks
   * (`IAC DO` answered `IAC WILL`). TTYPE and NAWS come with `ttype` and
   * `naws`.
   * @default []
   */
  perform?: readonly number[];
  /**
   * Treat `IAC GA` and `IAC EOR` as the end of a prompt: the text before
   * them (a prompt such as `'> '` has no newline) becomes a line, so
   * `expectLine('> ')` and `telnet.readPrompt()` see it.
   * @default true
   */
  promptLines?: boolean;
}

/**
 * Options of `EarwaxTestServer.connect()`: how one test client connects and
 * reads. The server's own address is used unless `host` / `port` say
 * otherwise.
 *
 * @publicApi
 */
export interface EarwaxTestConnectOptions {
  /**
   * The host to connect to.
   * @default the test server's address ('127.0.0.1')
   */
  host?: string;
  /**
   * The port to connect to.
   * @default the test server's port (of `listener`)
   */
  port?: number;
  /**
   * The name of the transport's listener to connect to, for a transport
   * with several `listeners`.
   * @default the first listener
   */
  listener?: string;
  /**
   * The client's own address: another loopback address (`'127.0.0.2'`,
   * `'127.0.0.3'`, ...) makes it a distinct client IP for the server's
   * per-address limits, block list and guard.
   */
  from?: string;
  /**
   * Read and write telnet: commands are stripped from the lines, the
   * server's negotiation is answered (every option refused unless
   * {@link EarwaxTestTelnetOptions} says otherwise), and 0xFF bytes sent are
   * doubled. Without it, bytes are framed into lines exactly as they come.
   * @default false
   */
  telnet?: boolean | EarwaxTestTelnetOptions;
  /**
   * Connect with TLS, to a TLS listener: `node:tls` connection options
   * (`ca` with the test certificate, or `rejectUnauthorized: false` for a
   * self-signed one), or `true` for Node's defaults.
   * @default false
   */
  tls?: ConnectionOptions | true;
  /**
   * How lines are decoded and `send()` encodes (a telnet CHARSET agreement
   * changes it).
   * @default 'utf8'
   */
  encoding?: BufferEncoding;
  /**
   * The default timeout of every wait of this client, in milliseconds.
   * @default 5000
   */
  timeout?: number;
  /**
   * How long connecting may take, in milliseconds.
   * @default 5000
   */
  connectTimeout?: number;
  /**
   * The longest line kept, in bytes; a longer one is dropped (and counted
   * in failure messages).
   * @default 8388608 (8 MiB)
   */
  maxLineLength?: number;
}

/**
 * Options of `EarwaxTestClient.connect()`: a test client on its own, for a
 * server the kit did not start.
 *
 * @publicApi
 */
export interface EarwaxTestClientOptions extends Omit<
  EarwaxTestConnectOptions,
  'listener'
> {
  /** The port to connect to. */
  port: number;
}
