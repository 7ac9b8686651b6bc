import type { Logger } from '@nestjs/common';
import { BaseRpcContext } from '@nestjs/microservices';
import type { Socket } from 'node:net';
import type {
  ConnectionAddress,
  ConnectionState,
  DisconnectReason,
  TlsDetails,
} from '../interfaces/connection.interface.js';
import type {
  TerminalInfo,
  WindowSize,
} from '../interfaces/telnet.interface.js';
import {
  assertBoolean,
  assertData,
  assertEncoding,
  assertText,
} from '../utils/send-arguments.js';
import type {
  EarwaxMedium,
  WebSocketSubprotocol,
} from '../interfaces/websocket.interface.js';
import type { ConnectionCore } from './connection-core.js';
import {
  checkOutput,
  writable,
  writeBytesLine,
  writePrompt,
  writeRaw,
  writeTextLine,
} from './outbox.js';
import { flushOutput } from './turn-output.js';

const NO_ROOMS: ReadonlySet<string> = new Set<string>();
const NO_ARGS = [] as unknown as [Socket];
// Set by the class's static block: the one way past its private field.
let readConnection: (ctx: AnyConnectionContext) => ConnectionCore;

/**
 * One client connection: what `@Ctx()` gives an `@EarwaxEvent` handler, and
 * what `host.switchToRpc().getContext()` gives a guard, interceptor or filter.
 * It stands for `earwax_server.ConnectionContext`.
 *
 * Sends never block and never fail because of the connection: output is
 * queued in memory up to `maxOutputBuffer`, and a send to a connection that
 * is gone is a logged no-op returning `false`, so a broadcast never fails
 * because one peer died. A wrong argument (not text or bytes, an unknown
 * encoding, GMCP data JSON cannot encode) is a programming error: the send
 * throws a `TypeError` before anything is written, as Node's own
 * `socket.write()` does, and the connection is left as it was.
 * Contexts compare by identity; {@link ConnectionContext.id} is unique.
 *
 * @typeParam TData The shape of {@link ConnectionContext.data}, the state
 *   your handlers keep for the connection (the logged-in player, say).
 *
 * @example
 * ```ts
 * interface Session { player?: Player }
 *
 * @EarwaxEvent('on_data')
 * onData(@Payload() line: string, @Ctx() ctx: ConnectionContext<Session>) {
 *   ctx.data.player ??= this.players.login(line);
 * }
 * ```
 *
 * @publicApi
 */
export class ConnectionContext<
  TData extends object = Record<string, unknown>,
> extends BaseRpcContext<[Socket]> {
  readonly #connection: ConnectionCore;

  /**
   * Made by the connection it is the face of.
   *
   * @internal
   */
  constructor(connection: ConnectionCore) {
    // The arguments are read from the medium when asked for (getArgs), so
    // a context holds no array of its own.
    super(NO_ARGS);
    this.#connection = connection;
  }

  /** `[socket]`: the connection's socket, as Nest's RPC contexts give it. */
  override getArgs(): [Socket] {
    return [this.socket];
  }

  /** The socket at index 0, as Nest's RPC contexts give it. */
  override getArgByIndex(index: number): Socket {
    return this.getArgs()[index];
  }

  /** A unique id, stable for the life of the connection. */
  get id(): string {
    return this.#connection.id;
  }

  /**
   * The remote end: as the medium reports it, or, on a listener with the
   * PROXY protocol, the real client the proxy announced.
   */
  get address(): ConnectionAddress {
    return this.#connection.address;
  }

  /**
   * The remote IP address (the real client's behind a PROXY-protocol
   * proxy); an IPv4-mapped IPv6 address (`::ffff:203.0.113.9`) is given in
   * its IPv4 form. Block lists, per-address limits and log names use it.
   */
  get hostname(): string {
    return this.#connection.hostname;
  }

  /** The remote port (the real client's behind a PROXY-protocol proxy). */
  get port(): number {
    return this.#connection.port;
  }

  /**
   * The proxy the connection came through, on a listener with the PROXY
   * protocol (the medium's own remote end); `undefined` otherwise.
   */
  get proxy(): ConnectionAddress | undefined {
    return this.#connection.proxy;
  }

  /** When the connection was accepted (ms since the epoch). */
  get connectedAt(): number {
    return this.#connection.connectedAt;
  }

  /**
   * The name of the listener the connection came in on (`'default'` for a
   * transport without `listeners`).
   */
  get listener(): string {
    return this.#connection.listener.name;
  }

  /** Where the connection is in its life. */
  get state(): ConnectionState {
    return this.#connection.state;
  }

  /** Why the connection ended, once it has. */
  get disconnectReason(): DisconnectReason | undefined {
    return this.#connection.disconnectReason;
  }

  /**
   * The connection's socket, on a TCP listener: a `TLSSocket` once a TLS
   * listener's handshake is done.
   */
  get socket(): Socket {
    return this.#connection.medium.socket as Socket;
  }

  /**
   * A Nest `Logger` whose context is this connection (`203.0.113.9:51234`,
   * `[::1]:51234`). Made on first use and freed with the connection.
   */
  get logger(): Logger {
    return this.#connection.logger;
  }

  /** Whether the connection is admitted and not yet disconnecting. */
  get isOpen(): boolean {
    return this.#connection.state === 'open';
  }

  /**
   * Your state for this connection, typed by `TData`: an empty object until
   * you fill it (or replace it). It lives as long as the connection, and is
   * still there in `on_disconnect`.
   */
  get data(): TData {
    return (this.#connection.data ??= {}) as TData;
  }
  set data(value: TData) {
    this.#connection.data = value;
  }

  /** TLS details, on a TLS listener; `undefined` on a plain one. */
  get tls(): TlsDetails | undefined {
    return this.#connection.medium.tls();
  }

  /**
   * What the connection came in over: `'tcp'`, `'tls'` or `'websocket'`,
   * so a game can adapt its output (a web client renders its own prompt).
   */
  get medium(): EarwaxMedium {
    return this.#connection.medium.kind ?? 'tcp';
  }

  /**
   * The WebSocket subprotocol agreed on (`'telnet.mudstandards.org'`,
   * `'gmcp.mudstandards.org'` or `'terminal.mudstandards.org'`);
   * `undefined` for a TCP or TLS connection.
   */
  get subprotocol(): WebSocketSubprotocol | undefined {
    return this.#connection.medium.subprotocol;
  }

  /** Whether the connection speaks telnet (the transport's `telnet` mode). */
  get isTelnet(): boolean {
    return this.#connection.telnet !== null;
  }

  /**
   * The encoding of this connection's text: the transport's `encoding`
   * (UTF-8 by default), or what the client agreed to in telnet mode
   * (CHARSET, else MTTS: UTF-8, or ISO-8859-1 as the fallback).
   */
  get encoding(): BufferEncoding {
    return this.#connection.encoding;
  }

  /** The client's window size (telnet NAWS), once it has sent one. */
  get windowSize(): WindowSize | undefined {
    return this.#connection.telnet?.windowSize;
  }

  /**
   * What the client told about itself in telnet mode (TTYPE and MTTS: its
   * name, terminal type, capabilities such as UTF-8, 256 colours or a screen
   * reader); `undefined` outside telnet mode.
   */
  get terminal(): TerminalInfo | undefined {
    return this.#connection.telnet?.terminal;
  }

  /**
   * Asks the client to echo what the player types (`true`) or to stop
   * (`false`, for a password), through the telnet ECHO option. Outside
   * telnet mode it does nothing.
   *
   * @param on Whether the client should echo.
   * @returns Whether a request was sent (`false` if nothing changes).
   * @throws TypeError if `on` is not a boolean.
   */
  echo(on: boolean): boolean {
    assertBoolean('echo', 'on', on);
    const connection = this.#connection;
    if (connection.telnet === null || !writable(connection, 'echo')) {
      return false;
    }
    return connection.telnet.setEcho(on);
  }

  /**
   * Sends a prompt: the text without a line end, then, in telnet mode, the
   * mark MUD clients use to tell a prompt from output (IAC EOR when the
   * client agreed to EOR, else IAC GA unless it agreed to SGA).
   *
   * @param text The prompt.
   * @returns Whether it was queued for sending.
   * @throws TypeError if `text` is not a string.
   */
  sendPrompt(text: string): boolean {
    assertText('sendPrompt', 'text', text);
    const connection = this.#connection;
    if (!writable(connection, 'sendPrompt')) return false;
    return checkOutput(connection, writePrompt(connection, text));
  }

  /**
   * Sends a GMCP message (`Room.Info {"name":"Hall"}`), if the client agreed
   * to GMCP.
   *
   * @param pkg The package and message name.
   * @param data The data, sent as JSON; leave it out for none.
   * @returns Whether it was queued (`false` without GMCP).
   * @throws TypeError if `pkg` is not a string, or `data` cannot be encoded
   *   as JSON (a cycle, a BigInt, a function).
   */
  sendGmcp(pkg: string, data?: unknown): boolean {
    assertText('sendGmcp', 'pkg', pkg);
    const connection = this.#connection;
    const medium = connection.medium;
    if (connection.telnet === null) {
      // A medium with a GMCP channel of its own (WebSocket's text frames).
      if (medium.sendGmcp === undefined || !writable(connection, 'sendGmcp')) {
        return false;
      }
      const json = data === undefined ? undefined : JSON.stringify(data);
      if (data !== undefined && json === undefined) {
        throw new TypeError(
          `sendGmcp(): data for ${pkg} has no JSON form (${typeof data}).`,
        );
      }
      // What the turn holds goes first, so the order of output is kept.
      flushOutput(connection);
      return medium.sendGmcp(json === undefined ? pkg : `${pkg} ${json}`);
    }
    if (!writable(connection, 'sendGmcp')) return false;
    return connection.telnet.sendGmcp(pkg, data);
  }

  /** The rooms this connection is in (see `ConnectionRegistry.join`). */
  get rooms(): ReadonlySet<string> {
    return this.#connection.rooms ?? NO_ROOMS;
  }

  /**
   * Puts this connection in a room; it leaves every room when it
   * disconnects. The same as `registry.join(ctx, room)`.
   *
   * @param room The room's name.
   * @returns Whether it joined (`false` if it was already in the room or is
   *   no longer open).
   */
  join(room: string): boolean {
    return this.#connection.owner.join(this.#connection, room);
  }

  /**
   * Takes this connection out of a room.
   *
   * @param room The room's name.
   * @returns Whether it was in the room.
   */
  leave(room: string): boolean {
    return this.#connection.owner.leave(this.#connection, room);
  }

  /**
   * Sends a line: the text, encoded with the transport's `encoding` (UTF-8 by
   * default), then the two bytes `\r\n`.
   *
   * @param text The line, without its terminator.
   * @returns Whether it was queued for sending.
   * @throws TypeError if `text` is not a string.
   */
  sendString(text: string): boolean {
    assertText('sendString', 'text', text);
    const connection = this.#connection;
    if (!writable(connection, 'sendString')) return false;
    return checkOutput(
      connection,
      writeTextLine(connection, text, connection.encoding),
    );
  }

  /**
   * Sends bytes followed by `\r\n`, as `earwax_server`'s `send_bytes`. A string
   * is encoded with `encoding` first; the terminator is always the two ASCII
   * bytes, whatever the encoding.
   *
   * @param data The line's bytes (or text), without its terminator.
   * @param encoding The encoding of a string `data`; defaults to the
   *   transport's `encoding`.
   * @returns Whether it was queued for sending.
   * @throws TypeError if `data` is neither text nor bytes, or `encoding` is
   *   not one `Buffer` knows.
   */
  sendBytes(data: Uint8Array | string, encoding?: BufferEncoding): boolean {
    assertData('sendBytes', data);
    assertEncoding('sendBytes', encoding);
    const connection = this.#connection;
    if (!writable(connection, 'sendBytes')) return false;
    return checkOutput(
      connection,
      typeof data === 'string'
        ? writeTextLine(connection, data, encoding ?? connection.encoding)
        : writeBytesLine(connection, data),
    );
  }

  /**
   * Sends bytes exactly as given, with no terminator.
   *
   * @param data The bytes (a string is encoded with the transport's
   *   `encoding`).
   * @returns Whether it was queued for sending.
   * @throws TypeError if `data` is neither text nor bytes.
   */
  sendRaw(data: Uint8Array | string): boolean {
    assertData('sendRaw', data);
    const connection = this.#connection;
    if (!writable(connection, 'sendRaw')) return false;
    return checkOutput(connection, writeRaw(connection, data));
  }

  /**
   * Ends the connection now, whoever calls it: input stops at once (lines
   * already received but not yet handled are dropped), output already sent
   * is flushed, the connection leaves the registry and `on_disconnect` runs
   * once, after any handler of this connection that is running (or without
   * it, if that handler is still running a second later: see
   * `handlerTimeout`). Calling it again does nothing.
   *
   * @param reason Why; `kicked` unless given.
   */
  disconnect(reason: DisconnectReason = 'kicked'): void {
    this.#connection.disconnect(reason);
  }

  /** `hostname:port`, with an IPv6 hostname in brackets. */
  override toString(): string {
    return this.#connection.toString();
  }

  static {
    readConnection = (ctx) => ctx.#connection;
  }
}

/**
 * The connection behind a context: for the registry, block list, metrics
 * and transport, never for handlers.
 *
 * @internal
 */
export function connectionOf(ctx: AnyConnectionContext): ConnectionCore {
  return readConnection(ctx);
}

/**
 * A connection whatever the type of its `data`: what APIs that take any
 * player's connection accept.
 *
 * @publicApi
 */
export type AnyConnectionContext = ConnectionContext<object>;
