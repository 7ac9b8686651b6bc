import { Logger } from '@nestjs/common';
import {
  ClientProxy,
  type ReadPacket,
  type WritePacket,
} from '@nestjs/microservices';
import { connect as netConnect, type Socket } from 'node:net';
import { connect as tlsConnect, type ConnectionOptions } from 'node:tls';
import { Observable, Subject } from 'rxjs';
import { LineFramer, type LineSink } from '../framing/line-framer.js';
import { TelnetCommand } from '../telnet/telnet-codes.js';
import { formatHostPort } from '../utils/host-port.js';
import {
  escapeIac,
  negotiation,
  TelnetParser,
  type TelnetSink,
} from '../telnet/telnet-parser.js';

/**
 * Options of an {@link EarwaxClient}. They are also what
 * `ClientsModule.register([{ name, customClass: EarwaxClient, options }])`
 * passes to its constructor.
 *
 * @publicApi
 */
export interface EarwaxClientOptions {
  /**
   * The server's host name or address.
   * @default '127.0.0.1'
   */
  host?: string;
  /** The server's port (1 to 65535). */
  port: number;
  /**
   * How lines are encoded on the wire, both ways.
   * @default 'utf8'
   */
  encoding?: BufferEncoding;
  /**
   * Telnet mode: telnet commands the server sends are parsed and stripped
   * from the lines (IAC IAC becomes one 0xFF byte, CR NUL becomes CR), every
   * option the server offers is refused (IAC DO x is answered IAC WONT x,
   * IAC WILL x is answered IAC DONT x), and every 0xFF byte sent is doubled.
   * Without it, the bytes are framed into lines exactly as they arrive.
   * @default false
   */
  telnet?: boolean;
  /**
   * The longest line received, in bytes without its terminator; a longer
   * line is dropped (with a warning) and the lines after it still arrive.
   * @default 65536
   */
  maxLineLength?: number;
  /**
   * How long `connect()` waits for the connection (and the TLS handshake,
   * with `tls`) before it gives up, in milliseconds.
   * @default 5000
   */
  connectTimeout?: number;
  /**
   * Connect with TLS: `true` for Node's defaults (the server's certificate
   * is verified against the system's certificate authorities), or
   * `node:tls` connection options (`ca`, `servername`,
   * `rejectUnauthorized`, ...); `host` and `port` always come from these
   * options.
   * @default false
   */
  tls?: ConnectionOptions | boolean;
}

/**
 * The values an {@link EarwaxClient} emits on `status`: `'connected'` once
 * a connection is established, `'disconnected'` when it closes.
 *
 * @publicApi
 */
export type EarwaxClientStatus = 'connected' | 'disconnected';

/** Unconsumed lines kept for `expectLine()`; the oldest go first. */
const MAX_BACKLOG = 1000;
/** How many lines an `expectLine()` failure message lists at most. */
const MAX_LISTED_LINES = 50;
/** How long `close()` waits for the server to close its side. */
const CLOSE_GRACE_MS = 2000;

const DEFAULTS = {
  host: '127.0.0.1',
  encoding: 'utf8' as BufferEncoding,
  maxLineLength: 65536,
  connectTimeout: 5000,
  expectTimeout: 3000,
};

/** One `expectLine()` waiting for its line. */
interface LineWaiter {
  test(line: string): boolean;
  resolve(line: string): void;
  fail(why: string): void;
}

/** The state of one socket, from `connect()` to its `close` event. */
interface Session {
  readonly socket: Socket;
  readonly framer: LineFramer;
  readonly parser: TelnetParser | null;
  readonly lines: Subject<string>;
  connected: boolean;
  /** Resolves once the socket has closed. */
  readonly closed: Promise<void>;
}

/**
 * A Nest `ClientProxy` that talks to a line-based game server (an
 * `EarwaxTransport`, or any MUD) the way a player does: text lines out, text
 * lines in. Made for bots, load tools, tests and other services.
 *
 * ```ts
 * const client = new EarwaxClient({ port: 4000 });
 * await client.connect();
 * await client.expectLine(/Welcome/);
 * client.sendLine('look');
 * const room = await client.expectLine(/^You are in/);
 * await client.close();
 * ```
 *
 * Or injected, through
 * `ClientsModule.register([{ name: 'GAME', customClass: EarwaxClient, options: { port: 4000 } }])`
 * and `@Inject('GAME') client: EarwaxClient` (the module closes it on
 * application shutdown).
 *
 * A game server has no request/response pairing, so the `ClientProxy`
 * methods only send: `client.emit(anyPattern, data)` sends `data` (a string,
 * or an array of strings) as lines, the pattern being ignored (it emits
 * `undefined` once sent, then completes), and
 * `client.send(anyPattern, data)` sends it the same way and then completes
 * without emitting anything. Read what the server says with
 * {@link EarwaxClient.lines$} or {@link EarwaxClient.expectLine}.
 *
 * @publicApi
 */
export class EarwaxClient extends ClientProxy<Record<never, never>, string> {
  // The status type stays `string`, as in ClientProxy: with a narrower one,
  // `customClass: EarwaxClient` would not type-check in ClientsModule.
  private readonly logger = new Logger(EarwaxClient.name);
  private readonly host: string;
  private readonly port: number;
  private readonly encoding: BufferEncoding;
  private readonly telnet: boolean;
  private readonly maxLineLength: number;
  private readonly connectTimeout: number;
  private readonly tlsOptions: ConnectionOptions | undefined;

  private session: Session | null = null;
  private connecting: Promise<void> | null = null;
  /** Where the lines of the next (or current) connection are emitted. */
  private lines = new Subject<string>();
  /** Lines received and not yet returned by `expectLine()`, oldest first. */
  private backlog: string[] = [];
  private readonly waiters = new Set<LineWaiter>();

  /**
   * @param options Where to connect and how; see {@link EarwaxClientOptions}.
   * @throws TypeError when `port` is not an integer from 1 to 65535, or
   * another option is out of range.
   */
  constructor(options: EarwaxClientOptions) {
    super();
    const port = options?.port;
    if (!Number.isInteger(port) || port < 1 || port > 65535)
      throw new TypeError(
        `EarwaxClient: options.port must be an integer from 1 to 65535, got ${String(port)}`,
      );
    this.port = port;
    this.host = options.host ?? DEFAULTS.host;
    this.encoding = options.encoding ?? DEFAULTS.encoding;
    if (!Buffer.isEncoding(this.encoding))
      throw new TypeError(
        `EarwaxClient: unknown encoding ${JSON.stringify(this.encoding)}`,
      );
    this.telnet = options.telnet ?? false;
    this.maxLineLength = positiveInteger(
      'maxLineLength',
      options.maxLineLength ?? DEFAULTS.maxLineLength,
    );
    this.connectTimeout = positiveInteger(
      'connectTimeout',
      options.connectTimeout ?? DEFAULTS.connectTimeout,
    );
    const tls = options.tls ?? false;
    this.tlsOptions = tls === true ? {} : tls === false ? undefined : tls;
  }

  /**
   * Every line the server sends, decoded, terminator removed (and, in
   * telnet mode, telnet commands stripped). Hot and shared: a subscriber
   * gets the lines received after it subscribed. It completes when the
   * connection closes (after the unterminated rest of the last line, if
   * any, is emitted as a line); a subscription made after that completes at
   * once, and one made before the next `connect()` follows that connection.
   * Lines do not wait for a subscriber: `expectLine()` keeps them too.
   */
  get lines$(): Observable<string> {
    return this.lines.asObservable();
  }

  /** Whether the connection is established and not closed. */
  get isConnected(): boolean {
    return this.session?.connected === true && !this.session.socket.destroyed;
  }

  /**
   * Connects to the server. Idempotent: while connecting or connected it
   * returns the same promise (after the connection closed, it connects
   * again). Lines not yet consumed by `expectLine()` are discarded when a
   * new connection is made.
   *
   * @throws Error (rejects) when the connection is refused or fails, with
   * the host, port and cause in the message and the system error's `code`
   * (`ECONNREFUSED`, ...) copied onto it; or when it does not complete
   * within `connectTimeout`.
   */
  override connect(): Promise<void> {
    if (this.connecting) return this.connecting;
    if (this.isConnected) return Promise.resolve();
    const promise = this.open();
    this.connecting = promise;
    promise.then(
      () => {
        if (this.connecting === promise) this.connecting = null;
      },
      () => {
        if (this.connecting === promise) this.connecting = null;
      },
    );
    return promise;
  }

  /**
   * Closes the connection: ends the socket (a connection still being made
   * is abandoned, its `connect()` rejecting) and resolves once it has
   * closed, `lines$` completed. Waits at most 2 s for the server to close
   * its side, then destroys the socket. Does nothing when not connected.
   */
  override async close(): Promise<void> {
    const session = this.session;
    if (!session) return;
    const { socket } = session;
    if (!session.connected) {
      socket.destroy();
    } else if (!socket.destroyed) {
      socket.end();
      const timer = setTimeout(() => socket.destroy(), CLOSE_GRACE_MS);
      timer.unref();
      void session.closed.then(() => clearTimeout(timer));
    }
    await session.closed;
  }

  /**
   * Sends one line: `text` and CRLF, encoded with `encoding` (0xFF bytes
   * doubled in telnet mode). A newline inside `text` is sent as it is, so
   * the server sees several lines.
   *
   * @throws Error when not connected.
   */
  sendLine(text: string): void {
    const session = this.session;
    if (!session || !this.isConnected || !session.socket.writable)
      throw new Error(
        `EarwaxClient: not connected to ${this.address()}; call connect() first`,
      );
    let bytes: Buffer = Buffer.from(text + '\r\n', this.encoding);
    if (session.parser) bytes = escapeIac(bytes);
    session.socket.write(bytes);
  }

  /**
   * Waits for a line: resolves with the first line matching `pattern` among
   * the lines received and not yet returned by an earlier `expectLine()`
   * (oldest first, at most the last 1000 are kept), or else among the lines
   * still to come. The line returned is consumed; the lines it skipped are
   * not, so a later `expectLine()` can still return them. Several calls
   * waiting at once get each line in the order they were made.
   *
   * @param pattern A string matches a line equal to it; a RegExp is tested
   * against each line.
   * @param timeoutMs How long to wait, in milliseconds.
   * @throws Error (rejects) when no line matches within `timeoutMs`, or when
   * the connection closes (or is not open) and no kept line matches; the
   * message lists the lines received and not consumed.
   */
  expectLine(
    pattern: string | RegExp,
    timeoutMs: number = DEFAULTS.expectTimeout,
  ): Promise<string> {
    if (!Number.isFinite(timeoutMs) || timeoutMs < 0)
      return Promise.reject(
        new TypeError(
          `EarwaxClient: timeoutMs must be a non-negative number, got ${timeoutMs}`,
        ),
      );
    const test =
      typeof pattern === 'string'
        ? (line: string) => line === pattern
        : (line: string) => {
            pattern.lastIndex = 0;
            return pattern.test(line);
          };
    const what = `a line matching ${typeof pattern === 'string' ? JSON.stringify(pattern) : String(pattern)}`;
    const index = this.backlog.findIndex(test);
    if (index !== -1) return Promise.resolve(this.backlog.splice(index, 1)[0]);
    if (!this.session)
      return Promise.reject(
        new Error(
          `EarwaxClient: not connected to ${this.address()}, and no kept line matches (${what}); ${this.describeBacklog()}`,
        ),
      );
    return new Promise<string>((resolve, reject) => {
      const timer = setTimeout(
        () => waiter.fail(`no line came within ${timeoutMs} ms`),
        timeoutMs,
      );
      const waiter: LineWaiter = {
        test,
        resolve: (line) => {
          clearTimeout(timer);
          this.waiters.delete(waiter);
          resolve(line);
        },
        fail: (why) => {
          clearTimeout(timer);
          this.waiters.delete(waiter);
          reject(
            new Error(
              `EarwaxClient: expected ${what}, but ${why}; ${this.describeBacklog()}`,
            ),
          );
        },
      };
      this.waiters.add(waiter);
    });
  }

  /**
   * Returns the socket (a `net.Socket`, or a `tls.TLSSocket` with `tls`).
   *
   * @throws Error when not connected (nor connecting).
   */
  override unwrap<T = Socket>(): T {
    if (!this.session)
      throw new Error(
        'EarwaxClient: not initialized; call the "connect" method first',
      );
    return this.session.socket as T;
  }

  /**
   * Sends `packet.data` (a string or an array of strings) as lines, then
   * calls back `{ response: undefined, isDisposed: true }`: a game server
   * does not answer requests, so `send()` emits nothing and completes. An
   * error (not connected, data not text) is called back as `err`.
   */
  protected override publish(
    packet: ReadPacket,
    callback: (packet: WritePacket) => void,
  ): () => void {
    try {
      this.sendData(packet.data);
    } catch (err) {
      callback({ err });
      return noop;
    }
    callback({ response: undefined, isDisposed: true });
    return noop;
  }

  /**
   * Sends `packet.data` (a string or an array of strings) as lines; the
   * pattern is ignored. Resolves with `undefined`, so `emit()` emits
   * `undefined` once, then completes.
   *
   * @throws Error (rejects) when not connected or the data is not text.
   */
  protected override async dispatchEvent<T = unknown>(
    packet: ReadPacket,
  ): Promise<T> {
    this.sendData(packet.data);
    return undefined as T;
  }

  private sendData(data: unknown): void {
    const lines = typeof data === 'string' ? [data] : data;
    if (
      !Array.isArray(lines) ||
      !lines.every((line) => typeof line === 'string')
    )
      throw new TypeError(
        'EarwaxClient sends text lines: the data must be a string or an array of strings',
      );
    for (const line of lines) this.sendLine(line);
  }

  private address(): string {
    return formatHostPort(this.host, this.port);
  }

  private describeBacklog(): string {
    const lines = this.backlog;
    if (lines.length === 0) return 'no unconsumed line was received';
    const listed = lines.slice(-MAX_LISTED_LINES);
    const omitted =
      lines.length > listed.length
        ? ` (the last ${listed.length} of ${lines.length})`
        : '';
    return `unconsumed lines received so far${omitted}: ${JSON.stringify(listed)}`;
  }

  /** Opens a new socket and resolves once it is connected. */
  private open(): Promise<void> {
    const socket = this.tlsOptions
      ? tlsConnect({ ...this.tlsOptions, host: this.host, port: this.port })
      : netConnect({ host: this.host, port: this.port });
    const connectEvent = this.tlsOptions ? 'secureConnect' : 'connect';
    if (this.lines.closed || this.lines.isStopped)
      this.lines = new Subject<string>();
    let onClosed!: () => void;
    const session: Session = {
      socket,
      framer: new LineFramer(this.maxLineLength),
      parser: this.telnet ? new TelnetParser() : null,
      lines: this.lines,
      connected: false,
      closed: new Promise((resolve) => (onClosed = resolve)),
    };
    this.session = session;
    this.backlog = [];

    const lineSink: LineSink = {
      onLine: (chunk, start, end) =>
        this.receive(session, chunk.toString(this.encoding, start, end)),
      onOverflow: () =>
        this.logger.warn(
          `A line from ${this.address()} longer than ${this.maxLineLength} bytes was dropped.`,
        ),
    };
    const telnetSink: TelnetSink = {
      onTelnetData: (chunk, start, end) =>
        session.framer.push(chunk.subarray(start, end), lineSink),
      onTelnetCommand: () => undefined,
      onTelnetNegotiation: (verb, option) => {
        // Refuse everything; WONT/DONT need no answer (RFC 1143: answering
        // them could loop).
        if (!socket.writable) return;
        if (verb === TelnetCommand.DO)
          socket.write(negotiation(TelnetCommand.WONT, option));
        else if (verb === TelnetCommand.WILL)
          socket.write(negotiation(TelnetCommand.DONT, option));
      },
      onTelnetSubnegotiation: () => undefined,
      onTelnetSubnegotiationError: () => undefined,
    };

    return new Promise<void>((resolve, reject) => {
      let settled = false;
      const fail = (err: Error) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        socket.destroy();
        // Cleared before the rejection is seen, so the client is reusable.
        this.detach(session);
        reject(err);
      };
      const timer = setTimeout(
        () =>
          fail(
            new Error(
              `EarwaxClient: connecting to ${this.address()} timed out after ${this.connectTimeout} ms`,
            ),
          ),
        this.connectTimeout,
      );
      socket.once(connectEvent, () => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        session.connected = true;
        socket.setNoDelay(true);
        if (this.session === session) this.setStatus('connected');
        resolve();
      });
      socket.on('data', (chunk: Buffer) => {
        if (session.parser) session.parser.push(chunk, telnetSink);
        else session.framer.push(chunk, lineSink);
      });
      socket.on('error', (err: NodeJS.ErrnoException) => {
        if (!settled) {
          const error = new Error(
            `EarwaxClient: could not connect to ${this.address()}: ${err.message}`,
            { cause: err },
          ) as NodeJS.ErrnoException;
          if (err.code) error.code = err.code;
          fail(error);
        } else if (session.connected) {
          this.logger.error(
            `Connection to ${this.address()} failed: ${err.message}`,
          );
        }
      });
      socket.once('close', () => {
        fail(
          new Error(
            `EarwaxClient: the connection to ${this.address()} was closed before it was established`,
          ),
        );
        this.ended(session);
        onClosed();
      });
    });
  }

  private setStatus(status: EarwaxClientStatus): void {
    this._status$.next(status);
  }

  /** One line received on `session`. */
  private receive(session: Session, line: string): void {
    if (this.session !== session) return;
    let consumed = false;
    for (const waiter of this.waiters) {
      if (waiter.test(line)) {
        waiter.resolve(line);
        consumed = true;
        break;
      }
    }
    if (!consumed) {
      this.backlog.push(line);
      if (this.backlog.length > MAX_BACKLOG) this.backlog.shift();
    }
    session.lines.next(line);
  }

  /** `session`'s socket has closed. */
  private ended(session: Session): void {
    const rest = session.framer.flush();
    if (rest && session.connected)
      this.receive(session, rest.toString(this.encoding));
    this.detach(session);
  }

  /**
   * `session` is over (closed, or failed to connect): completes its lines
   * and, if it is the current one, fails the waiting `expectLine()` calls.
   */
  private detach(session: Session): void {
    session.lines.complete();
    if (this.session !== session) return;
    const wasConnected = session.connected;
    session.connected = false;
    this.session = null;
    if (wasConnected) this.setStatus('disconnected');
    for (const waiter of [...this.waiters])
      waiter.fail('the connection closed');
  }
}

function positiveInteger(name: string, value: number): number {
  if (!Number.isInteger(value) || value < 1)
    throw new TypeError(
      `EarwaxClient: options.${name} must be a positive integer, got ${value}`,
    );
  return value;
}

function noop(): void {}
