import { connect, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { LineFramer, type LineSink } from '../../framing/line-framer.js';
import { TelnetParser, type TelnetSink } from '../../telnet/telnet-parser.js';
import type {
  HostileConnectionOutcome,
  HostileEnding,
} from './hostile.interfaces.js';

/** Lines longer than this are not kept whole: only their ending matters. */
const MAX_TRACKED_LINE = 4096;
/** How much of the last line a result shows. */
const MAX_SHOWN = 200;

/**
 * How a {@link HostileSocket} connects and what it watches for.
 *
 * @internal
 */
export interface HostileSocketOptions {
  host: string;
  port: number;
  /** The local address to connect from. */
  from?: string;
  /** Read what the server sends; `false` never reads a byte. */
  read: boolean;
  /** Strip telnet commands from what is read. */
  telnet: boolean;
  /** Decodes the lines read. */
  encoding: BufferEncoding;
  /** The probe's reply; lines matching it are counted in `answers`. */
  expect: string | RegExp;
  /** A line matching it sets `greeted`. */
  greeting?: string | RegExp;
  /** Speak TLS: the handshake (a ClientHello) starts on connect. */
  tls?: { servername?: string };
  /**
   * The attack's deadline: every wait of this socket ends on it (the owner
   * calls {@link HostileSocket.wake} when it fires).
   */
  signal: AbortSignal;
}

/**
 * One hostile connection: a raw socket that keeps counters, the last line
 * it read and how it ended, never everything it received, so thousands fit
 * in memory. Every wait it offers also ends on the attack's deadline.
 *
 * @internal
 */
export class HostileSocket {
  /** What the attack reads and writes: the TCP socket, or TLS over it. */
  readonly socket: Socket;
  /** The TCP socket. */
  private readonly raw: Socket;
  /** Resolves `true` once connected, `false` if it never will. */
  readonly ready: Promise<boolean>;
  /** Resolves once the socket has closed. */
  readonly closed: Promise<void>;
  connected = false;
  /** Lines received that match the probe's `expect`. */
  answers = 0;
  greeted = false;
  bytesReceived = 0;
  private ending: HostileEnding | undefined;
  private serverClosedAt: number | undefined;
  private connectedAt = 0;
  private error: string | undefined;
  private lastLine = '';
  private clientEnded = false;
  private isClosed = false;
  private readonly framer = new LineFramer(MAX_TRACKED_LINE);
  private readonly parser: TelnetParser | null;
  /** Called whenever something a waiter may look at changed. */
  private readonly changed = new Set<() => void>();

  constructor(private readonly options: HostileSocketOptions) {
    const { host, port, from, tls } = options;
    this.raw = connect({ host, port, localAddress: from });
    this.socket = tls
      ? tlsConnect({
          socket: this.raw,
          servername: tls.servername,
          // It only has to send a ClientHello; nothing is trusted.
          rejectUnauthorized: false,
        })
      : this.raw;
    this.parser = options.telnet ? new TelnetParser() : null;
    const socket = this.socket;
    socket.setNoDelay(true);
    // Never read: the handle is not read from at all (pausing before the
    // connect completes keeps Node from starting to read).
    if (!options.read) socket.pause();
    this.ready = new Promise((resolve) => {
      this.raw.once('connect', () => {
        this.connected = true;
        this.connectedAt = Date.now();
        resolve(true);
      });
      socket.once('close', () => resolve(false));
    });
    if (options.read) socket.on('data', (chunk: Buffer) => this.read(chunk));
    socket.on('end', () => this.serverClosed('closed_by_server'));
    socket.on('error', (err: NodeJS.ErrnoException) => {
      this.error ??= err.code ?? err.message;
      if (!this.connected) {
        this.ending ??= 'failed';
      } else if (err.code === 'ECONNRESET' || err.code === 'EPIPE') {
        this.serverClosed('reset_by_server');
      } else {
        // The client gave up on what it read (a TLS client reading
        // plaintext): it closes, whatever the server meant to do.
        this.clientEnded = true;
      }
    });
    this.closed = new Promise((resolve) =>
      socket.once('close', () => {
        const rest = this.framer.flush();
        if (rest) this.line(rest, 0, rest.length);
        this.ending ??= !this.connected
          ? 'failed'
          : this.clientEnded
            ? 'closed_by_client'
            : 'closed_by_server';
        if (!this.clientEnded && this.connected) {
          this.serverClosedAt ??= Date.now();
        }
        this.isClosed = true;
        this.wake();
        resolve();
      }),
    );
  }

  /** Whether the client may still write. */
  get writable(): boolean {
    return (
      this.connected &&
      this.serverClosedAt === undefined &&
      !this.clientEnded &&
      this.socket.writable
    );
  }

  /** Whether the server has closed (or reset) its side. */
  get serverHasClosed(): boolean {
    return this.serverClosedAt !== undefined;
  }

  /**
   * Writes, waiting for the socket to drain when it is full.
   *
   * @returns Whether the connection can take more.
   */
  async write(data: Uint8Array | string): Promise<boolean> {
    if (!this.writable) return false;
    if (this.socket.write(data)) return true;
    await this.until(() => !this.socket.writableNeedDrain || !this.writable);
    return this.writable;
  }

  /**
   * Writes and waits until the bytes have left, so that the next write goes
   * out as a packet of its own.
   */
  writeAlone(data: Uint8Array | string): Promise<boolean> {
    if (!this.writable) return Promise.resolve(false);
    return new Promise((resolve) =>
      this.socket.write(data, (err) => resolve(!err && this.writable)),
    );
  }

  /** Ends the client's side (FIN) and keeps reading, as a half-open client. */
  halfClose(): void {
    this.clientEnded = true;
    this.socket.end();
  }

  /**
   * Closes cleanly: FIN, then up to `graceMs` for the server to close its
   * side, then destroys the socket.
   */
  async close(graceMs: number): Promise<void> {
    if (this.socket.destroyed) return this.closed;
    this.clientEnded = true;
    this.socket.end();
    const timer = setTimeout(() => this.socket.destroy(), graceMs);
    await this.closed;
    clearTimeout(timer);
  }

  /** Resets the connection (RST). */
  reset(): void {
    this.clientEnded = true;
    if (this.connected && !this.socket.destroyed) {
      this.socket.resetAndDestroy();
    } else {
      this.socket.destroy();
    }
  }

  /** Destroys the socket at once. */
  destroy(): void {
    if (!this.socket.destroyed) this.clientEnded = true;
    this.socket.destroy();
  }

  /**
   * Resolves once `condition()` holds, the socket has closed, or the
   * attack's deadline has passed, whichever comes first.
   */
  until(condition: () => boolean): Promise<void> {
    if (this.done() || condition()) return Promise.resolve();
    return new Promise((resolve) => {
      const check = () => {
        if (!this.done() && !condition()) return;
        this.changed.delete(check);
        this.socket.off('drain', check);
        resolve();
      };
      this.changed.add(check);
      // Writes wait on drain, which is not one of this socket's own events.
      this.socket.on('drain', check);
    });
  }

  /** What happened to the connection, for a result. */
  outcome(): HostileConnectionOutcome {
    return {
      ending: this.ending ?? 'closed_by_client',
      serverClosed: this.serverClosedAt !== undefined,
      afterMs:
        this.serverClosedAt === undefined
          ? undefined
          : this.serverClosedAt - this.connectedAt,
      bytesSent: this.raw.bytesWritten ?? 0,
      bytesReceived: this.bytesReceived,
      lastReceived: printable(this.lastLine),
      answered: this.answers > 0,
      error: this.error,
    };
  }

  private done(): boolean {
    return this.isClosed || this.options.signal.aborted;
  }

  private serverClosed(ending: HostileEnding): void {
    if (!this.connected) return;
    this.serverClosedAt ??= Date.now();
    if (!this.clientEnded) this.ending ??= ending;
    this.wake();
  }

  private read(chunk: Buffer): void {
    this.bytesReceived += chunk.length;
    if (this.parser) this.parser.push(chunk, this.telnetSink);
    else this.framer.push(chunk, this.lineSink);
    this.wake();
  }

  private line(chunk: Buffer, start: number, end: number): void {
    if (end === start) return;
    const text = chunk.toString(this.options.encoding, start, end);
    this.lastLine = text;
    if (matches(this.options.expect, text)) this.answers++;
    const greeting = this.options.greeting;
    if (!this.greeted && greeting !== undefined && matches(greeting, text)) {
      this.greeted = true;
    }
  }

  private readonly lineSink: LineSink = {
    onLine: (chunk, start, end) => this.line(chunk, start, end),
    // An over-long line is not kept: a report shows lines, not floods.
    onOverflow: () => undefined,
  };

  private readonly telnetSink: TelnetSink = {
    onTelnetData: (chunk, start, end) =>
      this.framer.push(chunk.subarray(start, end), this.lineSink),
    onTelnetCommand: () => undefined,
    onTelnetNegotiation: () => undefined,
    onTelnetSubnegotiation: () => undefined,
    onTelnetSubnegotiationError: () => undefined,
  };

  /** Re-checks every pending wait (the owner calls it at the deadline). */
  readonly wake = (): void => {
    for (const check of [...this.changed]) check();
  };
}

/**
 * Whether a line matches a probe's `expect` (or a greeting).
 *
 * @internal
 */
export function matches(pattern: string | RegExp, line: string): boolean {
  if (typeof pattern === 'string') return line === pattern;
  pattern.lastIndex = 0;
  return pattern.test(line);
}

/**
 * A line for a report: control bytes escaped, at most 200 characters.
 *
 * @internal
 */
export function printable(text: string): string {
  const escaped = text.replace(
    // eslint-disable-next-line no-control-regex
    /[\u0000-\u001f\u007f-\u009f]/g,
    (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`,
  );
  return escaped.length > MAX_SHOWN
    ? `${escaped.slice(0, MAX_SHOWN - 3)}...`
    : escaped;
}
