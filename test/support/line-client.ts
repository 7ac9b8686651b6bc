import { connect, type Socket } from 'node:net';
import { Waiters } from './waiters.js';

/**
 * A test client that speaks lines over a real socket. A wait ends when what
 * it awaits has arrived, or fails at once with what was received once the
 * connection has closed without it; it has no time limit of its own (see
 * waiters.ts), so a slow machine cannot fail it.
 */
export class LineClient {
  /** Every complete line received, terminator removed. */
  readonly lines: string[] = [];
  /** Every byte received. */
  received = Buffer.alloc(0);
  /** Resolves when the socket has closed. */
  readonly closed: Promise<void>;
  /** Set once the server has closed its side. */
  ended = false;
  private partial = '';
  private readonly waits = new Waiters(
    () =>
      `received lines: ${JSON.stringify(this.lines)}, partial: ${JSON.stringify(this.partial)}`,
  );

  private constructor(readonly socket: Socket) {
    socket.on('data', (chunk: Buffer) => {
      this.received = Buffer.concat([this.received, chunk]);
      this.partial += chunk.toString('utf8');
      const parts = this.partial.split('\r\n');
      this.partial = parts.pop() ?? '';
      this.lines.push(...parts);
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
   * `from` picks the client's own loopback address (127.0.0.2, ...), so tests
   * can act as distinct client IPs.
   */
  static connect(port: number, from?: string): Promise<LineClient> {
    return LineClient.connectTo('127.0.0.1', port, from);
  }

  /** Opens a connection to any host (`'::1'`, say) and port. */
  static connectTo(
    host: string,
    port: number,
    from?: string,
  ): Promise<LineClient> {
    return new Promise((resolve, reject) => {
      const socket = connect({ port, host, localAddress: from });
      socket.once('connect', () => resolve(new LineClient(socket)));
      socket.once('error', reject);
    });
  }

  /** Sends `text` followed by `\r\n`. */
  send(text: string): void {
    this.socket.write(text + '\r\n');
  }

  /** Sends bytes as they are. */
  write(data: string | Buffer): void {
    this.socket.write(data);
  }

  /** Waits for the next line after the first `index` lines. */
  async line(index: number): Promise<string> {
    await this.until(() => this.lines.length > index, `line #${index}`);
    return this.lines[index];
  }

  /** Waits until a received line matches, and returns it. */
  async expectLine(pattern: RegExp | string): Promise<string> {
    const test = (l: string) =>
      typeof pattern === 'string' ? l === pattern : pattern.test(l);
    await this.until(
      () => this.lines.some(test),
      `a line matching ${String(pattern)}`,
    );
    return this.lines.find(test) as string;
  }

  /** Waits until at least `count` lines have arrived. */
  async waitForLines(count: number): Promise<string[]> {
    await this.until(() => this.lines.length >= count, `${count} lines`);
    return this.lines;
  }

  /** Waits until the server has closed the connection (EOF or close). */
  async expectClosedByServer(): Promise<void> {
    await this.until(
      () => this.ended || this.socket.destroyed,
      'the server to close',
    );
  }

  /**
   * Waits for any condition on what was received; fails at once if the
   * connection closes without it.
   */
  until(condition: () => boolean, what: string): Promise<void> {
    return this.waits.until(condition, what);
  }

  /** Closes our side cleanly and waits for the socket to close. */
  async end(): Promise<void> {
    this.socket.end();
    await this.closed;
  }

  /** Resets the connection (RST) and waits for it to close. */
  async reset(): Promise<void> {
    this.socket.resetAndDestroy();
    await this.closed;
  }

  private wake(): void {
    this.waits.wake();
  }
}
