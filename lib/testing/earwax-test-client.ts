import { connect as netConnect, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { LineFramer, type LineSink } from '../framing/line-framer.js';
import { escapeIac } from '../telnet/telnet-parser.js';
import { formatHostPort } from '../utils/host-port.js';
import { EarwaxTestTelnet } from './earwax-test-telnet.js';
import type {
  EarwaxTestClientOptions,
  EarwaxTestWaitOptions,
} from './interfaces/earwax-test-client-options.interface.js';
import {
  describePattern,
  lineMatcher,
  Transcript,
  type LinePattern,
} from './transcript.js';

/**
 * Where a test client's connection stands:
 * - `'open'`: connected; lines may still come.
 * - `'server-closed'`: the server closed the connection (TCP FIN).
 * - `'server-reset'`: the server reset it (TCP RST, `ECONNRESET`).
 * - `'failed'`: another socket error ended it (see the failure messages).
 * - `'client-closed'`: this client closed it (`close()` or `reset()`).
 *
 * @publicApi
 */
export type EarwaxTestClientState =
  'open' | 'server-closed' | 'server-reset' | 'failed' | 'client-closed';

const DEFAULT_HOST = '127.0.0.1';
const DEFAULT_TIMEOUT = 5000;
const DEFAULT_MAX_LINE_LENGTH = 8 * 1024 * 1024;
/** How long `close()` lets the server close its side before destroying. */
const CLOSE_GRACE_MS = 2000;
const CR = 0x0d;
const LF = 0x0a;

/**
 * A real TCP client for tests of a game server: it connects like a player
 * (optionally from another loopback address, optionally telnet-aware), sends
 * lines, and waits for what the server says, every wait bounded and failing
 * with a message that shows what was received.
 *
 * Lines are read through a cursor: `expectLine()`, `readLine()`,
 * `readLines()` and `readUntil()` consume the lines up to what they return,
 * so each call looks at what came after the previous one, while `lines`
 * keeps everything received. Lines end at `\r\n`, `\n` or a lone `\r` (the
 * library's own `LineFramer`); in telnet mode also at `IAC GA` / `IAC EOR`,
 * so prompts are lines too.
 *
 * Usually opened by `EarwaxTestServer.connect()`, which closes it with the
 * server; `EarwaxTestClient.connect()` opens one to any server.
 *
 * @example
 * ```ts
 * const client = await EarwaxTestClient.connect({ port: 4000 });
 * await client.expectLine(/^Welcome/);
 * client.send('look');
 * expect(await client.readLine()).toBe('A dark room.');
 * await client.close();
 * ```
 *
 * @publicApi
 */
export class EarwaxTestClient {
  private readonly transcript: Transcript;
  private readonly framer: LineFramer;
  private readonly lineSink: LineSink;
  private readonly telnetSide: EarwaxTestTelnet | null;
  private readonly kind: string;
  private readonly defaultTimeout: number;
  private readonly maxLineLength: number;
  private encoding: BufferEncoding;
  private status: EarwaxTestClientState = 'open';
  private resetByUs = false;
  private lastError: Error | undefined;
  private overflows = 0;
  /** The bytes after the last line end (the unterminated line). */
  private tail: Buffer[] = [];
  private tailLength = 0;
  private readonly chunks: Buffer[] = [];
  private receivedCache: Buffer | undefined;
  private local = '?';
  private readonly remote: string;
  private readonly whenClosed: Promise<void>;
  private socketClosed = false;

  private constructor(
    /** The client's socket, for what the kit does not cover. */
    readonly socket: Socket,
    options: EarwaxTestClientOptions,
  ) {
    this.encoding = options.encoding ?? 'utf8';
    this.defaultTimeout = options.timeout ?? DEFAULT_TIMEOUT;
    this.maxLineLength = options.maxLineLength ?? DEFAULT_MAX_LINE_LENGTH;
    this.remote = formatHostPort(options.host ?? DEFAULT_HOST, options.port);
    // eslint-disable-next-line @typescript-eslint/no-this-alias
    const client = this;
    this.transcript = new Transcript({
      get label() {
        return client.label;
      },
      get isOpen() {
        return client.isOpen;
      },
      get partial() {
        return client.partial;
      },
      describeState: () => this.describeState(),
      notes: () => this.notes(),
    });
    this.framer = new LineFramer(this.maxLineLength);
    this.lineSink = {
      onLine: (chunk, start, end) => {
        this.transcript.lines.push(chunk.toString(this.encoding, start, end));
      },
      onOverflow: () => {
        this.overflows++;
      },
    };
    const telnet = options.telnet ?? false;
    const traits = [telnet === false ? '' : 'telnet', options.tls ? 'TLS' : '']
      .filter(Boolean)
      .join(', ');
    this.kind = traits ? ` (${traits})` : '';
    this.telnetSide =
      telnet === false
        ? null
        : EarwaxTestTelnet.create(
            {
              get label() {
                return client.label;
              },
              transcript: this.transcript,
              defaultTimeout: this.defaultTimeout,
              write: (bytes) => {
                if (!socket.destroyed && socket.writable) socket.write(bytes);
              },
              data: (chunk, start, end) => this.frame(chunk, start, end),
              endPrompt: () => this.endPrompt(),
              setEncoding: (encoding) => {
                this.encoding = encoding;
              },
            },
            telnet === true ? {} : telnet,
          );
    socket.on('data', (chunk: Buffer) => this.receive(chunk));
    socket.on('end', () => {
      if (this.status === 'open') this.status = 'server-closed';
      this.transcript.wake();
    });
    socket.on('error', (err: NodeJS.ErrnoException) => {
      this.lastError = err;
      if (this.status === 'open') {
        this.status = err.code === 'ECONNRESET' ? 'server-reset' : 'failed';
      }
      this.transcript.wake();
    });
    this.whenClosed = new Promise((resolve) =>
      socket.once('close', () => {
        this.socketClosed = true;
        if (this.status === 'open') this.status = 'server-closed';
        this.transcript.wake();
        resolve();
      }),
    );
  }

  /**
   * Opens a connection and resolves once it is established (the server may
   * still be deciding whether to admit it: wait for its greeting).
   *
   * @throws TypeError for an option out of range.
   * @throws Error (rejects) when the connection is refused, fails or takes
   *   longer than `connectTimeout`; the message names both ends, and the
   *   system error's `code` (`ECONNREFUSED`, `EADDRNOTAVAIL`) is kept.
   */
  static connect(options: EarwaxTestClientOptions): Promise<EarwaxTestClient> {
    try {
      checkOptions(options);
    } catch (err) {
      return Promise.reject(err);
    }
    const host = options.host ?? DEFAULT_HOST;
    const target = formatHostPort(host, options.port);
    const connectTimeout = options.connectTimeout ?? DEFAULT_TIMEOUT;
    const where = { host, port: options.port, localAddress: options.from };
    const tls = options.tls;
    const socket = tls
      ? tlsConnect({ ...(tls === true ? {} : tls), ...where })
      : netConnect(where);
    const connectEvent = tls ? 'secureConnect' : 'connect';
    let client: EarwaxTestClient;
    try {
      client = new EarwaxTestClient(socket, options);
    } catch (err) {
      socket.destroy();
      return Promise.reject(err);
    }
    return new Promise((resolve, reject) => {
      const from = options.from === undefined ? '' : ` from ${options.from}`;
      const fail = (error: Error) => {
        clearTimeout(timer);
        socket.destroy();
        reject(error);
      };
      const timer = setTimeout(
        () =>
          fail(
            new Error(
              `EarwaxTestClient: connecting to ${target}${from} took longer than ${connectTimeout} ms`,
            ),
          ),
        connectTimeout,
      );
      const onError = (err: NodeJS.ErrnoException) => {
        const error = new Error(
          `EarwaxTestClient: could not connect to ${target}${from}: ${err.message}`,
          { cause: err },
        ) as NodeJS.ErrnoException;
        if (err.code) error.code = err.code;
        fail(error);
      };
      socket.once('error', onError);
      socket.once(connectEvent, () => {
        clearTimeout(timer);
        socket.off('error', onError);
        socket.setNoDelay(true);
        client.local = formatHostPort(
          socket.localAddress ?? '?',
          socket.localPort ?? 0,
        );
        resolve(client);
      });
    });
  }

  /** `client 127.0.0.2:40112 → 127.0.0.1:4000`, as failure messages name it. */
  get label(): string {
    return `client ${this.local} → ${this.remote}${this.kind}`;
  }

  /** The client's own address, as the server sees it (`127.0.0.2`). */
  get localAddress(): string {
    return this.socket.localAddress ?? this.local.replace(/:\d+$/, '');
  }

  /** Every complete line received, in order, read or not. */
  get lines(): readonly string[] {
    return this.transcript.lines;
  }

  /** The lines received that no read has consumed yet. */
  get unread(): readonly string[] {
    return this.transcript.unread;
  }

  /** The text received after the last line end: a prompt, or a line still coming. */
  get partial(): string {
    if (this.tailLength === 0) return '';
    return Buffer.concat(this.tail, this.tailLength).toString(this.encoding);
  }

  /** Every byte received, exactly as it came (telnet commands included). */
  get received(): Buffer {
    this.receivedCache ??= Buffer.concat(this.chunks);
    return this.receivedCache;
  }

  /** Where the connection stands. */
  get state(): EarwaxTestClientState {
    return this.status;
  }

  /** Whether the connection is open (neither side has closed it). */
  get isOpen(): boolean {
    return this.status === 'open';
  }

  /**
   * The telnet side: negotiation and subnegotiations received, prompts,
   * GMCP, MSSP, and `sendGmcp()` / `sendNaws()`.
   *
   * @throws Error when the client was connected without the `telnet` option.
   */
  get telnet(): EarwaxTestTelnet {
    if (this.telnetSide === null) {
      throw new Error(
        `${this.label} is not telnet-aware: connect with { telnet: true } (or telnet options) to use client.telnet`,
      );
    }
    return this.telnetSide;
  }

  /**
   * Sends one line: `line` and CR LF, in the client's encoding (0xFF
   * doubled in telnet mode). A newline inside `line` is sent as it is.
   *
   * @throws Error when the connection is no longer open, saying who closed it.
   */
  send(line: string): void {
    if (typeof line !== 'string') {
      throw new TypeError(
        `${this.label}: send() takes a string, got ${typeof line}; use sendRaw() for bytes`,
      );
    }
    let bytes: Buffer = Buffer.from(line, this.encoding);
    if (this.telnetSide) bytes = escapeIac(bytes);
    this.write(
      Buffer.concat([bytes, CRLF]),
      `the line ${JSON.stringify(line)}`,
    );
  }

  /**
   * Sends bytes exactly as given: no line end, no telnet escaping. A string
   * is encoded in the client's encoding.
   *
   * @throws Error when the connection is no longer open.
   */
  sendRaw(data: Uint8Array | string): void {
    if (typeof data !== 'string' && !(data instanceof Uint8Array)) {
      throw new TypeError(
        `${this.label}: sendRaw() takes bytes or a string, got ${typeof data}`,
      );
    }
    const bytes =
      typeof data === 'string' ? Buffer.from(data, this.encoding) : data;
    this.write(bytes, `${bytes.length} raw bytes`);
  }

  /**
   * Waits for a line matching `pattern` among the unread lines and those
   * still to come, and resolves with it; the lines before it are read too
   * (skipped).
   *
   * @param pattern A string matches a line equal to it; a RegExp is tested
   *   against each line; a function decides.
   * @throws EarwaxExpectationError (rejects) when no line matches within the
   *   timeout, or the connection closes first; the message lists the lines
   *   received, the unterminated rest, and who closed the connection.
   */
  async expectLine(
    pattern: LinePattern,
    options: EarwaxTestWaitOptions = {},
  ): Promise<string> {
    const read = await this.readUntil(pattern, options);
    return read[read.length - 1];
  }

  /**
   * Like {@link expectLine}, but resolves with every line read: those it
   * skipped, then the match.
   */
  readUntil(
    pattern: LinePattern,
    options: EarwaxTestWaitOptions = {},
  ): Promise<string[]> {
    let matches: (line: string) => boolean;
    try {
      matches = lineMatcher(pattern);
    } catch (err) {
      return Promise.reject(err);
    }
    return this.transcript.readUntil(
      matches,
      describePattern(pattern),
      this.timeoutOf(options),
    );
  }

  /**
   * Reads the next unread line, waiting for it.
   *
   * @throws EarwaxExpectationError (rejects) when none comes in time.
   */
  async readLine(options: EarwaxTestWaitOptions = {}): Promise<string> {
    const [line] = await this.transcript.readLines(1, this.timeoutOf(options));
    return line;
  }

  /**
   * Reads the next `count` unread lines, waiting for them all.
   *
   * @throws EarwaxExpectationError (rejects) when they do not all come in time.
   */
  readLines(
    count: number,
    options: EarwaxTestWaitOptions = {},
  ): Promise<string[]> {
    return this.transcript.readLines(count, this.timeoutOf(options));
  }

  /**
   * Waits until `condition()` holds, checked whenever something arrives or
   * the connection changes (for what the other waits do not cover: bytes in
   * `received`, telnet events). Reads nothing.
   *
   * @param description What is awaited, for the failure message.
   * @throws EarwaxExpectationError (rejects) when it does not hold in time.
   */
  waitFor(
    condition: () => boolean,
    description: string,
    options: EarwaxTestWaitOptions = {},
  ): Promise<void> {
    return this.transcript.waitFor(
      condition,
      description,
      this.timeoutOf(options),
    );
  }

  /**
   * Waits until the server closes (or resets) the connection.
   *
   * @throws EarwaxExpectationError (rejects) when it is still open after the
   *   timeout, or this client closed it first.
   */
  expectClose(options: EarwaxTestWaitOptions = {}): Promise<void> {
    return this.transcript.wait<void>(
      'the server to close the connection',
      this.timeoutOf(options),
      false,
      () => {
        switch (this.status) {
          case 'open':
            return undefined;
          case 'client-closed':
            return { fail: 'this client closed it itself first' };
          default:
            return { value: undefined };
        }
      },
      'it is still open',
    );
  }

  /**
   * Closes the connection cleanly (TCP FIN) and resolves once the socket
   * has closed: the server sees its player leave (`client_closed`). A server
   * that does not close its side within 2 s is cut off. Does nothing more
   * once closed.
   */
  async close(): Promise<void> {
    if (this.socketClosed) return;
    if (this.status === 'open') this.status = 'client-closed';
    this.transcript.wake();
    this.socket.end();
    const timer = setTimeout(() => this.socket.destroy(), CLOSE_GRACE_MS);
    await this.whenClosed;
    clearTimeout(timer);
  }

  /**
   * Resets the connection (TCP RST) and resolves once the socket has
   * closed: the server sees a connection reset.
   */
  async reset(): Promise<void> {
    if (this.socketClosed) return;
    if (this.status === 'open') {
      this.status = 'client-closed';
      this.resetByUs = true;
    }
    this.transcript.wake();
    this.socket.resetAndDestroy();
    await this.whenClosed;
  }

  /** The client's label. */
  toString(): string {
    return this.label;
  }

  private timeoutOf(options: EarwaxTestWaitOptions): number {
    return options.timeout ?? this.defaultTimeout;
  }

  private write(bytes: Uint8Array, what: string): void {
    if (!this.isOpen || !this.socket.writable) {
      throw new Error(
        `${this.label}: cannot send ${what}: ${this.describeState()}`,
      );
    }
    this.socket.write(bytes);
  }

  private receive(chunk: Buffer): void {
    this.chunks.push(chunk);
    this.receivedCache = undefined;
    if (this.telnetSide) this.telnetSide.push(chunk);
    else this.frame(chunk, 0, chunk.length);
    this.transcript.wake();
  }

  /** Frames clean data bytes into lines and keeps the unterminated rest. */
  private frame(chunk: Buffer, start: number, end: number): void {
    const bytes =
      start === 0 && end === chunk.length ? chunk : chunk.subarray(start, end);
    this.framer.push(bytes, this.lineSink);
    // Every CR and LF ends a line for the framer, so the rest is what
    // follows the last of them.
    const last = Math.max(bytes.lastIndexOf(CR), bytes.lastIndexOf(LF));
    if (last !== -1) {
      this.tail = [];
      this.tailLength = 0;
    }
    const rest = bytes.subarray(last + 1);
    if (rest.length > 0 && this.tailLength <= this.maxLineLength) {
      // Copied: telnet hands out views that are only valid during the call.
      this.tail.push(Buffer.from(rest));
      this.tailLength += rest.length;
    }
  }

  /** Telnet GA / EOR: the text before it is a prompt line. */
  private endPrompt(): void {
    if (this.tailLength === 0) return;
    this.tail = [];
    this.tailLength = 0;
    // The rest never ends in CR, so flushing loses no CR LF state.
    const rest = this.framer.flush();
    if (rest !== undefined) {
      this.transcript.lines.push(rest.toString(this.encoding));
    }
  }

  private describeState(): string {
    switch (this.status) {
      case 'open':
        return 'the connection is still open';
      case 'server-closed':
        return 'the server closed the connection';
      case 'server-reset':
        return 'the server reset the connection (ECONNRESET)';
      case 'failed':
        return `the connection failed (${this.lastError?.message ?? 'socket error'})`;
      case 'client-closed':
        return this.resetByUs
          ? 'this client reset the connection (reset())'
          : 'this client closed the connection (close())';
    }
  }

  private notes(): string[] {
    const notes: string[] = [];
    if (this.overflows > 0) {
      notes.push(
        `${this.overflows} line(s) longer than ${this.maxLineLength} bytes were dropped.`,
      );
    }
    if (this.telnetSide) notes.push(this.telnetSide.describe());
    return notes;
  }
}

const CRLF = Buffer.from('\r\n');

function checkOptions(options: EarwaxTestClientOptions): void {
  const { port, timeout, connectTimeout, maxLineLength, encoding } =
    options ?? {};
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    throw new TypeError(
      `EarwaxTestClient: port must be a whole number from 1 to 65535, got ${String(port)}`,
    );
  }
  for (const [name, value] of [
    ['timeout', timeout],
    ['connectTimeout', connectTimeout],
    ['maxLineLength', maxLineLength],
  ] as const) {
    if (value !== undefined && (!Number.isFinite(value) || value <= 0)) {
      throw new TypeError(
        `EarwaxTestClient: ${name} must be a positive number, got ${String(value)}`,
      );
    }
  }
  if (encoding !== undefined && !Buffer.isEncoding(encoding)) {
    throw new TypeError(
      `EarwaxTestClient: unknown encoding ${JSON.stringify(encoding)}`,
    );
  }
}
