import { Logger } from '@nestjs/common';
import { BaseRpcContext } from '@nestjs/microservices';
import { randomUUID } from 'node:crypto';
import type { Socket } from 'node:net';
import { TLSSocket } from 'node:tls';
import type { Writable } from 'node:stream';
import type { ConnectionRegistry } from '../registry/connection.registry.js';
import type { EarwaxListener } from '../transport/earwax.listener.js';
import type { LineFramer } from '../framing/line-framer.js';
import type { PendingHandler } from '../limits/handler-watch.js';
import type {
  InputRateLimiter,
  RateVerdict,
} from '../limits/input-rate-limiter.js';
import type {
  TerminalInfo,
  WindowSize,
} from '../interfaces/telnet.interface.js';
import { escapeIac } from '../telnet/telnet-parser.js';
import {
  assertBoolean,
  assertData,
  assertEncoding,
  assertText,
} from '../utils/send-arguments.js';
import type { TelnetSession } from '../telnet/telnet-session.js';
import type {
  ConnectionAddress,
  ConnectionState,
  DisconnectReason,
  TlsDetails,
} from '../interfaces/connection.interface.js';

const CRLF = Buffer.from('\r\n');
/** Encodings in which `'\r\n'` encodes to the two bytes CR LF. */
const ASCII_COMPATIBLE = new Set<BufferEncoding>([
  'utf8',
  'utf-8',
  'latin1',
  'binary',
  'ascii',
]);
/** Up to this size a line is copied to add its terminator; past it, writev. */
const COPY_LIMIT = 16 * 1024;
const IPV4_MAPPED = '::ffff:';
const NO_ROOMS: ReadonlySet<string> = new Set<string>();

/**
 * What a connection needs from the transport that owns it.
 *
 * @internal
 */
export interface ConnectionHost {
  encoding: BufferEncoding;
  maxOutputBuffer: number;
  /** `maxOutputBuffer` is below the socket's high-water mark. */
  checkEveryWrite: boolean;
  readonly registry: ConnectionRegistry;
  /** A write was buffered past the high-water mark: start its deadline. */
  awaitDrain(ctx: AnyConnectionContext): void;
  disconnect(ctx: AnyConnectionContext, reason: DisconnectReason): void;
  /** A connection's first chunk; `true` if it was handled (and ends it). */
  firstInput(ctx: AnyConnectionContext, chunk: Buffer): boolean;
  receive(ctx: AnyConnectionContext, data: Buffer | string): void;
  receiveLine(
    ctx: AnyConnectionContext,
    chunk: Buffer,
    start: number,
    end: number,
  ): void;
  lineOverflow(ctx: AnyConnectionContext): void;
  /** A chunk over the input rate's bytes: warns, or disconnects (`flood`). */
  overRate(ctx: AnyConnectionContext, verdict: RateVerdict): void;
  ended(ctx: AnyConnectionContext): void;
  closed(ctx: AnyConnectionContext, hadError: boolean): void;
  failed(ctx: AnyConnectionContext, err: Error): void;
}

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
  /** A unique id, stable for the life of the connection. */
  readonly id: string = randomUUID();
  /**
   * The remote end: as the socket reports it, or, on a listener with the
   * PROXY protocol, the real client the proxy announced.
   */
  readonly address: ConnectionAddress;
  /**
   * The remote IP address (the real client's behind a PROXY-protocol
   * proxy); an IPv4-mapped IPv6 address (`::ffff:203.0.113.9`) is given in
   * its IPv4 form. Block lists, per-address limits and log names use it.
   */
  readonly hostname: string;
  /** The remote port (the real client's behind a PROXY-protocol proxy). */
  readonly port: number;
  /**
   * The proxy the connection came through, on a listener with the PROXY
   * protocol (the socket's own remote end); `undefined` otherwise.
   */
  readonly proxy: ConnectionAddress | undefined = undefined;
  /** When the connection was accepted (ms since the epoch). */
  readonly connectedAt = Date.now();
  /**
   * The name of the listener the connection came in on (`'default'` for a
   * transport without `listeners`).
   */
  readonly listener: string;
  /** Where the connection is in its life. */
  state: ConnectionState = 'pending';
  /** Why the connection ended, once it has. */
  disconnectReason?: DisconnectReason;

  /** @internal */ framer: LineFramer | null = null;
  /** @internal Events waiting behind a running handler: name, data, ... */
  queue: unknown[] | null = null;
  /** @internal */ busy = false;
  /**
   * @internal The handler the connection's next events wait for, while one
   * has returned a promise that has not settled.
   */
  waiting: PendingHandler | null = null;
  /**
   * @internal Cleared once a connection that is no longer open gave up on
   * a handler: its remaining events then run without waiting.
   */
  waitsForHandlers = true;
  /** @internal */ inputPaused = false;
  /** @internal */ lastError: Error | undefined = undefined;
  /** @internal */ lingerTimer: NodeJS.Timeout | undefined = undefined;
  /** @internal Armed while output waits above the high-water mark. */
  drainTimer: NodeJS.Timeout | undefined = undefined;
  /**
   * @internal Set by every input event (a line, a raw chunk, a telnet
   * event), not by bytes; read and cleared by the idle sweep.
   */
  inputSeen = false;
  /** @internal The first chunk has been read (and sniffed). */
  chunkSeen = false;
  /** @internal When the idle sweep last saw input; 0 before any. */
  lastInputAt = 0;
  /** @internal */ rateLimiter: InputRateLimiter | null = null;
  /** @internal The rooms this connection is in; kept by the registry. */
  roomSet: Set<string> | null = null;
  /** @internal Counted in the per-address limits (under `hostname`). */
  held = false;
  /** @internal The connection's telnet, in telnet mode. */
  telnet: TelnetSession | null = null;
  /**
   * @internal Where output goes: the socket, or the compressor in front of
   * it once MCCP2 is on.
   */
  out: Writable;

  private _logger: Logger | undefined;
  private _data: TData | undefined;

  /**
   * The connection's socket: a `TLSSocket` once a TLS listener's handshake
   * is done.
   */
  readonly socket: Socket;
  /**
   * @internal The accepted TCP socket: under TLS, the one the TLS socket
   * wraps (what a reset goes through).
   */
  readonly tcp: Socket;
  /** @internal */ readonly host: ConnectionHost;
  /** @internal The listener it came in on. */
  readonly via: EarwaxListener | undefined;
  /**
   * @internal On a TLS listener until the handshake is done: nothing may be
   * written in the clear.
   */
  tlsPending: boolean;

  /**
   * Made by the transport for each accepted socket.
   *
   * @internal
   */
  constructor(socket: Socket, host: ConnectionHost, via?: EarwaxListener) {
    super([socket]);
    this.socket = socket;
    this.tcp = socket;
    this.out = socket;
    this.host = host;
    this.via = via;
    this.listener = via?.name ?? 'default';
    this.tlsPending = via?.isTls ?? false;
    const address = socket.remoteAddress ?? '';
    this.address = {
      address,
      port: socket.remotePort ?? 0,
      family: socket.remoteFamily === 'IPv6' ? 'IPv6' : 'IPv4',
    };
    this.hostname = unmapIPv4(address);
    this.port = this.address.port;
  }

  /**
   * A Nest `Logger` whose context is this connection (`203.0.113.9:51234`,
   * `[::1]:51234`). Made on first use and freed with the connection.
   */
  get logger(): Logger {
    return (this._logger ??= new Logger(this.toString()));
  }

  /** Whether the connection is admitted and not yet disconnecting. */
  get isOpen(): boolean {
    return this.state === 'open';
  }

  /**
   * Your state for this connection, typed by `TData`: an empty object until
   * you fill it (or replace it). It lives as long as the connection, and is
   * still there in `on_disconnect`.
   */
  get data(): TData {
    return (this._data ??= {} as TData);
  }
  set data(value: TData) {
    this._data = value;
  }

  /** TLS details, on a TLS listener; `undefined` on a plain one. */
  get tls(): TlsDetails | undefined {
    const socket = this.socket;
    if (!(socket instanceof TLSSocket)) return undefined;
    const peer = socket.getPeerCertificate();
    const servername = (socket as { servername?: string | false }).servername;
    const error = socket.authorizationError as Error | string | null;
    return {
      protocol: socket.getProtocol() ?? undefined,
      cipher: socket.getCipher()?.name,
      servername: servername || undefined,
      authorized: socket.authorized,
      authorizationError:
        error === null || error === undefined
          ? undefined
          : error instanceof Error
            ? error.message
            : String(error),
      peerCertificate:
        peer !== null && Object.keys(peer).length > 0 ? peer : undefined,
    };
  }

  /** Whether the connection speaks telnet (the transport's `telnet` mode). */
  get isTelnet(): boolean {
    return this.telnet !== null;
  }

  /**
   * The encoding of this connection's text: the transport's `encoding`
   * (UTF-8 by default), or what the client agreed to in telnet mode
   * (CHARSET, else MTTS: UTF-8, or ISO-8859-1 as the fallback).
   */
  get encoding(): BufferEncoding {
    return this.telnet?.encoding ?? this.host.encoding;
  }

  /** The client's window size (telnet NAWS), once it has sent one. */
  get windowSize(): WindowSize | undefined {
    return this.telnet?.windowSize;
  }

  /**
   * What the client told about itself in telnet mode (TTYPE and MTTS: its
   * name, terminal type, capabilities such as UTF-8, 256 colours or a screen
   * reader); `undefined` outside telnet mode.
   */
  get terminal(): TerminalInfo | undefined {
    return this.telnet?.terminal;
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
    if (this.telnet === null || !this.writable('echo')) return false;
    return this.telnet.setEcho(on);
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
    if (!this.writable('sendPrompt')) return false;
    const out = this.out;
    const encoding = this.encoding;
    const end = this.telnet?.promptEnd();
    out.cork();
    let ok = true;
    try {
      if (this.telnet !== null && encoding !== 'utf8' && encoding !== 'utf-8') {
        out.write(escapeIac(Buffer.from(text, encoding)));
      } else {
        out.write(text, encoding);
      }
      if (end !== undefined) ok = out.write(end);
    } finally {
      out.uncork();
    }
    return this.checkOutput(ok);
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
    if (this.telnet === null || !this.writable('sendGmcp')) return false;
    return this.telnet.sendGmcp(pkg, data);
  }

  /** The rooms this connection is in (see `ConnectionRegistry.join`). */
  get rooms(): ReadonlySet<string> {
    return this.roomSet ?? NO_ROOMS;
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
    return this.host.registry.join(this, room);
  }

  /**
   * Takes this connection out of a room.
   *
   * @param room The room's name.
   * @returns Whether it was in the room.
   */
  leave(room: string): boolean {
    return this.host.registry.leave(this, room);
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
    if (!this.writable('sendString')) return false;
    return this.checkOutput(this.writeTextLine(text, this.encoding));
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
    if (!this.writable('sendBytes')) return false;
    let ok: boolean;
    if (typeof data === 'string') {
      ok = this.writeTextLine(data, encoding ?? this.encoding);
    } else {
      // Telnet data: every 0xFF byte doubled, so it cannot be read as IAC.
      const bytes = this.telnet !== null ? escapeIac(data) : data;
      ok =
        bytes.length <= COPY_LIMIT
          ? // One small copy and one write beat a corked two-buffer writev.
            this.out.write(withCrlf(bytes))
          : this.writeCorked(bytes, CRLF);
    }
    return this.checkOutput(ok);
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
    if (!this.writable('sendRaw')) return false;
    if (this.telnet !== null) {
      // Telnet data: every 0xFF byte doubled, so it cannot be read as IAC.
      const bytes =
        typeof data === 'string' ? Buffer.from(data, this.encoding) : data;
      return this.checkOutput(this.out.write(escapeIac(bytes)));
    }
    return this.checkOutput(
      typeof data === 'string'
        ? this.out.write(data, this.host.encoding)
        : this.out.write(data),
    );
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
    this.host.disconnect(this, reason);
  }

  /**
   * @internal Writes telnet protocol bytes as they are (already escaped),
   * under the slow-consumer policy.
   */
  writeProtocol(bytes: Buffer): boolean {
    if (!this.writable('telnet')) return false;
    return this.checkOutput(this.out.write(bytes));
  }

  /**
   * @internal The real client, from a PROXY protocol header: becomes
   * `address`, `hostname` and `port`; the socket's own end becomes `proxy`.
   */
  setProxiedRemote(address: string, port: number, family: 'IPv4' | 'IPv6') {
    const self = this as {
      -readonly [K in 'address' | 'hostname' | 'port' | 'proxy']: this[K];
    };
    self.proxy = this.address;
    self.address = { address, port, family };
    self.hostname = unmapIPv4(address);
    self.port = port;
    this._logger = undefined;
  }

  /**
   * @internal The TLS handshake is done: from now on the connection is the
   * TLS socket over the TCP one.
   */
  secure(tls: TLSSocket): void {
    (this as { -readonly [K in 'socket']: this[K] }).socket = tls;
    this.out = tls;
    this.args[0] = tls;
    this.tlsPending = false;
  }

  /** @internal A line from the framer. */
  onLine(chunk: Buffer, start: number, end: number): void {
    this.host.receiveLine(this, chunk, start, end);
  }

  /** @internal The framer's line-length overflow. */
  onOverflow(): void {
    this.host.lineOverflow(this);
  }

  /** `hostname:port`, with an IPv6 hostname in brackets. */
  override toString(): string {
    return this.hostname.includes(':')
      ? `[${this.hostname}]:${this.port}`
      : `${this.hostname}:${this.port}`;
  }

  /** Writes text and an ASCII `\r\n`, in one write where the encoding allows. */
  private writeTextLine(text: string, encoding: BufferEncoding): boolean {
    if (this.telnet !== null && encoding !== 'utf8' && encoding !== 'utf-8') {
      // UTF-8 never has a 0xFF byte; other encodings may (latin-1 ÿ).
      return this.writeCorked(escapeIac(Buffer.from(text, encoding)), CRLF);
    }
    if (ASCII_COMPATIBLE.has(encoding)) {
      return this.out.write(text + '\r\n', encoding);
    }
    return this.writeCorked(Buffer.from(text, encoding), CRLF);
  }

  /**
   * Writes two buffers as one writev. The stream is uncorked whatever
   * happens, so a write that throws cannot hold back later output.
   */
  private writeCorked(first: Uint8Array, second: Uint8Array): boolean {
    const out = this.out;
    out.cork();
    try {
      out.write(first);
      return out.write(second);
    } finally {
      out.uncork();
    }
  }

  private writable(what: string): boolean {
    // `writable` is already false once the socket is ending, ended,
    // destroyed or errored: one getter per send.
    const out = this.out;
    if (
      out.writable &&
      (out === this.socket || this.socket.writable) &&
      !this.tlsPending
    ) {
      return true;
    }
    this.logger.debug(`${what} ignored: the connection is closed.`);
    return false;
  }

  /**
   * Applies the slow-consumer policy after a write: `ok` is what
   * `socket.write` returned (false once output is above the high-water mark),
   * so a reading peer costs no further check.
   */
  private checkOutput(ok: boolean): boolean {
    if (ok && !this.host.checkEveryWrite) return true;
    if (this.out.writableLength > this.host.maxOutputBuffer) {
      this.host.disconnect(this, 'slow_consumer');
      return false;
    }
    if (!ok && this.drainTimer === undefined) this.host.awaitDrain(this);
    return true;
  }
}

/**
 * A connection whatever the type of its `data`: what APIs that take any
 * player's connection accept.
 *
 * @publicApi
 */
export type AnyConnectionContext = ConnectionContext<object>;

/**
 * An IPv4-mapped IPv6 address (`::ffff:203.0.113.9`) in its IPv4 form; any
 * other address as it is.
 *
 * @internal
 */
export function unmapIPv4(address: string): string {
  return address.startsWith(IPV4_MAPPED)
    ? address.slice(IPV4_MAPPED.length)
    : address;
}

/**
 * A copy of `bytes` with `\r\n` after it: a line ready to write.
 *
 * @internal
 */
export function withCrlf(bytes: Uint8Array): Buffer {
  const line = Buffer.allocUnsafe(bytes.length + 2);
  line.set(bytes);
  line[bytes.length] = 0x0d;
  line[bytes.length + 1] = 0x0a;
  return line;
}
