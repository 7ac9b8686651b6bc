import type { IncomingMessage } from 'node:http';
import { WebSocket, type ClientOptions, type RawData } from 'ws';
import { Waiters } from './waiters.js';

/** Every MUD-standards subprotocol name. */
export type Subprotocol =
  | 'telnet.mudstandards.org'
  | 'gmcp.mudstandards.org'
  | 'terminal.mudstandards.org';

/** How a handshake the server refused was answered. */
export interface Refusal {
  status: number;
  body: string;
  headers: IncomingMessage['headers'];
}

/**
 * A WebSocket test client (the `ws` client) over a real socket: lines of
 * the binary frames, the text frames, every frame as it came, and the close
 * code. Waits end on events, never on time (see waiters.ts).
 */
export class WsClient {
  /** Complete lines of the binary frames' text, terminators removed. */
  readonly lines: string[] = [];
  /** Every binary frame, as bytes. */
  readonly frames: Buffer[] = [];
  /** Every text frame. */
  readonly texts: string[] = [];
  /** The close code and reason once closed. */
  closeCode: number | undefined;
  closeReason = '';
  private partial = '';
  private readonly waits = new Waiters(
    () =>
      `lines: ${JSON.stringify(this.lines)}, texts: ${JSON.stringify(this.texts)}, partial: ${JSON.stringify(this.partial)}, close: ${String(this.closeCode)}`,
  );

  private constructor(readonly ws: WebSocket) {
    ws.on('message', (data: RawData, binary: boolean) => {
      const bytes = Buffer.isBuffer(data)
        ? data
        : Array.isArray(data)
          ? Buffer.concat(data)
          : Buffer.from(data);
      if (binary) {
        this.frames.push(bytes);
        this.partial += bytes.toString('utf8');
        const parts = this.partial.split('\r\n');
        this.partial = parts.pop() ?? '';
        this.lines.push(...parts);
      } else {
        this.texts.push(bytes.toString('utf8'));
      }
      this.waits.wake();
    });
    ws.on('error', () => undefined);
    ws.on('close', (code: number, reason: Buffer) => {
      this.closeCode = code;
      this.closeReason = reason.toString();
      this.waits.end(`the WebSocket closed (${code})`);
    });
  }

  /** Opens a WebSocket and waits for the handshake to complete. */
  static connect(
    url: string,
    protocols: Subprotocol | Subprotocol[] | [] = [],
    options: ClientOptions = {},
  ): Promise<WsClient> {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(url, protocols, options);
      ws.once('open', () => resolve(new WsClient(ws)));
      ws.once('unexpected-response', (_req, res: IncomingMessage) =>
        reject(new Error(`refused with ${String(res.statusCode)}`)),
      );
      ws.once('error', reject);
    });
  }

  /** Opens a WebSocket the server must refuse: how it was answered. */
  static refused(
    url: string,
    protocols: string[] = [],
    options: ClientOptions = {},
  ): Promise<Refusal> {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(url, protocols, options);
      ws.once('open', () => {
        ws.terminate();
        reject(new Error('the handshake was accepted'));
      });
      ws.once('unexpected-response', (_req, res: IncomingMessage) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (body += chunk));
        res.on('end', () =>
          resolve({ status: res.statusCode ?? 0, body, headers: res.headers }),
        );
        res.on('error', reject);
      });
      ws.once('error', () => undefined);
    });
  }

  /** Sends a line (text and `\r\n`) in one binary frame. */
  send(line: string): void {
    this.ws.send(Buffer.from(`${line}\r\n`), { binary: true });
  }

  /** Sends bytes in one binary frame. */
  write(data: Buffer | string): void {
    this.ws.send(Buffer.from(data), { binary: true });
  }

  /** Sends a text frame. */
  sendText(text: string): void {
    this.ws.send(text, { binary: false });
  }

  /** Waits until a line matches, and returns it. */
  async expectLine(pattern: RegExp | string): Promise<string> {
    const test = (l: string) =>
      typeof pattern === 'string' ? l === pattern : pattern.test(l);
    await this.until(
      () => this.lines.some(test),
      `a line matching ${String(pattern)}`,
    );
    return this.lines.find(test) as string;
  }

  /** Waits until a text frame matches, and returns it. */
  async expectText(pattern: RegExp | string): Promise<string> {
    const test = (t: string) =>
      typeof pattern === 'string' ? t === pattern : pattern.test(t);
    await this.until(
      () => this.texts.some(test),
      `a text frame matching ${String(pattern)}`,
    );
    return this.texts.find(test) as string;
  }

  /** Waits for the close, and returns its code. */
  async closed(): Promise<number> {
    await this.waits
      .until(() => this.closeCode !== undefined, 'the close')
      .catch(() => undefined);
    return this.closeCode as number;
  }

  until(condition: () => boolean, what: string): Promise<void> {
    return this.waits.until(condition, what);
  }

  /** Closes cleanly and waits for the close. */
  async close(): Promise<void> {
    if (this.closeCode !== undefined) return;
    this.ws.close(1000);
    await this.closed();
  }
}
