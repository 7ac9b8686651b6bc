import { connect, type Socket } from 'node:net';
import { Waiters } from './waiters.js';

/**
 * Options of {@link CountingClient.connect}.
 */
export interface CountingClientOptions {
  /** The client's own loopback address (127.0.0.2, ...). */
  from?: string;
  /**
   * Read in small bursts: pause after every chunk and resume on the next
   * turn of the event loop, so the server's output waits on this reader.
   */
  bursty?: boolean;
}

/**
 * A light test client for hundreds of connections and megabytes of output:
 * it checks each line as it arrives with `check` and keeps only counters,
 * the unterminated tail and the first mismatch, never everything received.
 */
export class CountingClient {
  /** Complete lines received. */
  lines = 0;
  /** Bytes received. */
  bytes = 0;
  /** The last complete line. */
  lastLine: string | undefined;
  /** The first line `check` rejected, with its index. */
  mismatch: string | undefined;
  /** Set once the server has closed its side (EOF). */
  ended = false;
  /** What arrived after the last complete line. */
  get partial(): string {
    return this.tail;
  }
  /** Resolves when the socket has closed. */
  readonly closed: Promise<void>;
  private tail = '';
  private readonly waits = new Waiters(() => `${this.describe()}`);

  private constructor(
    readonly socket: Socket,
    private readonly check: (line: string, index: number) => boolean,
    bursty: boolean,
  ) {
    socket.on('data', (chunk: Buffer) => {
      this.bytes += chunk.length;
      // latin1 maps each byte to one character: no split-character worries.
      let text = this.tail + chunk.toString('latin1');
      let start = 0;
      for (;;) {
        const end = text.indexOf('\r\n', start);
        if (end === -1) break;
        this.accept(text.slice(start, end));
        start = end + 2;
      }
      text = text.slice(start);
      this.tail = text;
      if (bursty) {
        socket.pause();
        setImmediate(() => socket.resume());
      }
      this.wake();
    });
    socket.on('end', () => {
      this.ended = true;
      this.wake();
    });
    socket.on('error', () => undefined);
    this.closed = new Promise((resolve) =>
      socket.once('close', () => {
        this.waits.end('the connection closed');
        resolve();
      }),
    );
  }

  /**
   * Opens a connection to 127.0.0.1 and waits until it is established.
   *
   * @param check Tells whether line number `index` (from 0) is the expected
   *   one; the first that is not is kept in `mismatch`.
   */
  static connect(
    port: number,
    check: (line: string, index: number) => boolean = () => true,
    options: CountingClientOptions = {},
  ): Promise<CountingClient> {
    return new Promise((resolve, reject) => {
      const socket = connect({
        port,
        host: '127.0.0.1',
        localAddress: options.from,
      });
      socket.once('connect', () => {
        socket.off('error', reject);
        resolve(new CountingClient(socket, check, options.bursty ?? false));
      });
      socket.once('error', reject);
    });
  }

  /**
   * Opens `count` connections, `batch` at a time (a burst of thousands of
   * SYNs at once would overflow the listen backlog).
   */
  static async connectMany(
    port: number,
    count: number,
    check: (line: string, index: number) => boolean = () => true,
    batch = 100,
    into: CountingClient[] = [],
  ): Promise<CountingClient[]> {
    while (into.length < count) {
      const size = Math.min(batch, count - into.length);
      into.push(
        ...(await Promise.all(
          Array.from({ length: size }, () =>
            CountingClient.connect(port, check),
          ),
        )),
      );
    }
    return into;
  }

  /** The client's own port: the server's `ctx.port` for this connection. */
  get localPort(): number {
    return this.socket.localPort ?? 0;
  }

  /**
   * Waits for a condition on what was received; fails at once if the
   * connection closes without it.
   */
  until(condition: () => boolean, what: string): Promise<void> {
    return this.waits.until(condition, what);
  }

  /** What was received so far, for failure messages. */
  describe(): string {
    return `received ${this.lines} lines (${this.bytes} bytes), last ${JSON.stringify(this.lastLine)}, tail ${JSON.stringify(this.tail.slice(0, 80))}, mismatch ${JSON.stringify(this.mismatch?.slice(0, 120))}, ended ${this.ended}, destroyed ${this.socket.destroyed}`;
  }

  private accept(line: string): void {
    if (this.mismatch === undefined && !this.check(line, this.lines)) {
      this.mismatch = `#${this.lines}: ${line}`;
    }
    this.lines++;
    this.lastLine = line;
  }

  private wake(): void {
    this.waits.wake();
  }
}
