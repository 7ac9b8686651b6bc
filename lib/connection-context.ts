import { Logger } from '@nestjs/common';
import { BaseRpcContext } from '@nestjs/microservices';
import { randomUUID } from 'node:crypto';
import type { Socket } from 'node:net';
import type { LineFramer } from './framing/line-framer.js';
import type {
  ConnectionAddress,
  ConnectionState,
  DisconnectReason,
} from './interfaces/connection.interface.js';

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

/**
 * What a connection needs from the transport that owns it.
 *
 * @internal
 */
export interface ConnectionHost {
  encoding: BufferEncoding;
  maxOutputBuffer: number;
  disconnect(ctx: ConnectionContext, reason: DisconnectReason): void;
  receive(ctx: ConnectionContext, data: Buffer | string): void;
  receiveLine(
    ctx: ConnectionContext,
    chunk: Buffer,
    start: number,
    end: number,
  ): void;
  lineOverflow(ctx: ConnectionContext): void;
  ended(ctx: ConnectionContext): void;
  closed(ctx: ConnectionContext, hadError: boolean): void;
  failed(ctx: ConnectionContext, err: Error): void;
}

/**
 * One client connection: what `@Ctx()` gives an `@EarwaxEvent` handler, and
 * what `host.switchToRpc().getContext()` gives a guard, interceptor or filter.
 * It stands for `earwax_server.ConnectionContext`.
 *
 * Sends never throw: a send to a connection that is gone is a logged no-op
 * returning `false`, so a broadcast never fails because one peer died.
 * Contexts compare by identity; {@link ConnectionContext.id} is unique.
 *
 * @publicApi
 */
export class ConnectionContext extends BaseRpcContext<[Socket]> {
  /** A unique id, stable for the life of the connection. */
  readonly id: string = randomUUID();
  /** The remote end as the socket reports it. */
  readonly address: ConnectionAddress;
  /**
   * The remote IP address; an IPv4-mapped IPv6 address
   * (`::ffff:203.0.113.9`) is given in its IPv4 form.
   */
  readonly hostname: string;
  /** The remote port. */
  readonly port: number;
  /** When the connection was accepted (ms since the epoch). */
  readonly connectedAt = Date.now();
  /** Where the connection is in its life. */
  state: ConnectionState = 'pending';
  /** Why the connection ended, once it has. */
  disconnectReason?: DisconnectReason;

  /** @internal */ framer: LineFramer | null = null;
  /** @internal Events waiting behind a running handler: name, data, ... */
  queue: unknown[] | null = null;
  /** @internal */ busy = false;
  /** @internal */ inputPaused = false;
  /** @internal */ lastError: Error | undefined = undefined;
  /** @internal */ lingerTimer: NodeJS.Timeout | undefined = undefined;

  private _logger: Logger | undefined;

  /** The connection's socket. */
  readonly socket: Socket;
  /** @internal */ readonly host: ConnectionHost;

  /**
   * Made by the transport for each accepted socket.
   *
   * @internal
   */
  constructor(socket: Socket, host: ConnectionHost) {
    super([socket]);
    this.socket = socket;
    this.host = host;
    const address = socket.remoteAddress ?? '';
    this.address = {
      address,
      port: socket.remotePort ?? 0,
      family: socket.remoteFamily === 'IPv6' ? 'IPv6' : 'IPv4',
    };
    this.hostname = address.startsWith(IPV4_MAPPED)
      ? address.slice(IPV4_MAPPED.length)
      : address;
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
   * Sends a line: the text, encoded with the transport's `encoding` (UTF-8 by
   * default), then the two bytes `\r\n`.
   *
   * @param text The line, without its terminator.
   * @returns Whether it was queued for sending.
   */
  sendString(text: string): boolean {
    if (!this.writable('sendString')) return false;
    this.writeTextLine(text, this.host.encoding);
    return this.checkOutput();
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
   */
  sendBytes(data: Uint8Array | string, encoding?: BufferEncoding): boolean {
    if (!this.writable('sendBytes')) return false;
    const socket = this.socket;
    if (typeof data === 'string') {
      this.writeTextLine(data, encoding ?? this.host.encoding);
    } else if (data.length <= COPY_LIMIT) {
      // One small copy and one write beat a corked two-buffer writev.
      const line = Buffer.allocUnsafe(data.length + 2);
      line.set(data);
      line[data.length] = 0x0d;
      line[data.length + 1] = 0x0a;
      socket.write(line);
    } else {
      socket.cork();
      socket.write(data);
      socket.write(CRLF);
      socket.uncork();
    }
    return this.checkOutput();
  }

  /**
   * Sends bytes exactly as given, with no terminator.
   *
   * @param data The bytes (a string is encoded with the transport's
   *   `encoding`).
   * @returns Whether it was queued for sending.
   */
  sendRaw(data: Uint8Array | string): boolean {
    if (!this.writable('sendRaw')) return false;
    if (typeof data === 'string') {
      this.socket.write(data, this.host.encoding);
    } else {
      this.socket.write(data);
    }
    return this.checkOutput();
  }

  /**
   * Ends the connection now, whoever calls it: input stops at once (lines
   * already received but not yet handled are dropped), output already sent
   * is flushed, the connection leaves the registry and `on_disconnect` runs
   * once, after any handler of this connection that is running. Calling it
   * again does nothing.
   *
   * @param reason Why; `kicked` unless given.
   */
  disconnect(reason: DisconnectReason = 'kicked'): void {
    this.host.disconnect(this, reason);
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
  private writeTextLine(text: string, encoding: BufferEncoding): void {
    if (ASCII_COMPATIBLE.has(encoding)) {
      this.socket.write(text + '\r\n', encoding);
      return;
    }
    this.socket.cork();
    this.socket.write(text, encoding);
    this.socket.write(CRLF);
    this.socket.uncork();
  }

  private writable(what: string): boolean {
    // `writable` is already false once the socket is ending, ended,
    // destroyed or errored: one getter per send.
    if (this.socket.writable) return true;
    this.logger.debug(`${what} ignored: the connection is closed.`);
    return false;
  }

  private checkOutput(): boolean {
    if (this.socket.writableLength <= this.host.maxOutputBuffer) return true;
    this.host.disconnect(this, 'slow_consumer');
    return false;
  }
}
