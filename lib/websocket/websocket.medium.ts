import { STATUS_CODES, type IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import { Writable } from 'node:stream';
import { TLSSocket } from 'node:tls';
import { WebSocket, type RawData } from 'ws';
import type { Medium, MediumSink } from '../connection/medium.js';
import { tlsDetailsOf } from '../connection/tcp.medium.js';
import type {
  BlockReason,
  ConnectionAddress,
  TlsDetails,
} from '../interfaces/connection.interface.js';
import type { WebSocketSubprotocol } from '../interfaces/websocket.interface.js';
import { parseGmcpText } from './gmcp-text.js';

/**
 * What a {@link WebSocketMedium} needs of the listener it came in on.
 *
 * @internal
 */
export interface WebSocketHost {
  /** Completes the HTTP 101 handshake (ws's `handleUpgrade`). */
  upgrade(medium: WebSocketMedium, done: (ws: WebSocket) => void): void;
  /** The listener is shutting down: close frames say 1001 (going away). */
  readonly goingAway: boolean;
  /** A medium is open (for the keepalive pings) or has closed. */
  opened(medium: WebSocketMedium): void;
  closed(medium: WebSocketMedium): void;
}

/** Refusals that are the server's state, not the client's doing. */
const UNAVAILABLE: ReadonlySet<BlockReason> = new Set<BlockReason>([
  'server_full',
  'rate_limited',
]);

/**
 * A connection over a WebSocket, one of the mudstandards.org subprotocols.
 * It starts as an HTTP upgrade request held open while admission decides:
 * refused, it answers 403 or 503 with what was written as the body and
 * never becomes a WebSocket; admitted ({@link WebSocketMedium.accept}), the
 * handshake completes and BINARY frames carry the byte stream. Each
 * `output.write()` is one frame, so a turn's output (written once, see
 * turn-output.ts) is one frame.
 *
 * @internal
 */
export class WebSocketMedium implements Medium {
  readonly kind = 'websocket';
  readonly output: FrameWriter;
  /** Whether the last ping was answered. */
  alive = true;
  /** The WebSocket once the handshake is done. */
  ws: WebSocket | null = null;
  private sink: MediumSink | undefined = undefined;
  private target: unknown = undefined;
  private refusal: BlockReason | undefined = undefined;
  /** What was written before the handshake: a refusal's body. */
  private early: Buffer[] = [];
  private sent = 0;
  private readonly address: string;
  private readonly port: number;
  private peer: ConnectionAddress | undefined = undefined;

  constructor(
    readonly raw: Socket,
    readonly request: IncomingMessage,
    readonly head: Buffer,
    readonly subprotocol: WebSocketSubprotocol,
    private readonly host: WebSocketHost,
  ) {
    this.address = raw.remoteAddress ?? '';
    this.port = raw.remotePort ?? 0;
    this.output = new FrameWriter(this);
    raw.on('close', onRawClose);
    raw.on('error', onRawError);
    (raw as RawSocket)[kMedium] = this;
  }

  get remoteAddress(): string {
    return this.address;
  }

  get remotePort(): number {
    return this.port;
  }

  get remote(): ConnectionAddress {
    return (this.peer ??= {
      address: this.address,
      port: this.port,
      family: this.raw.remoteFamily === 'IPv6' ? 'IPv6' : 'IPv4',
    });
  }

  get socket(): Socket {
    return this.raw;
  }

  get secure(): boolean {
    return this.raw instanceof TLSSocket;
  }

  tls(): TlsDetails | undefined {
    return tlsDetailsOf(this.raw);
  }

  get bytesRead(): number {
    return this.raw.bytesRead;
  }

  get bytesWritten(): number {
    return this.raw.bytesWritten;
  }

  get outputBytes(): number {
    return this.sent;
  }

  get pendingBytes(): number {
    return this.output.writableLength + (this.ws?.bufferedAmount ?? 0);
  }

  get closed(): boolean {
    return this.raw.destroyed;
  }

  get peerEnded(): boolean {
    // A close frame from the peer is answered and the socket closed by ws.
    return false;
  }

  attach<T>(sink: MediumSink<T>, target: T): void {
    this.sink = sink as MediumSink;
    this.target = target;
  }

  /**
   * Admitted: completes the handshake (HTTP 101), then calls `open`. A
   * request that fails ws's own checks gets its 400 and the socket closes.
   */
  accept(open: () => void): void {
    this.host.upgrade(this, (ws) => {
      this.ws = ws;
      (ws as TrackedWebSocket)[kMedium] = this;
      // The WebSocket reports the socket's end from now on.
      this.raw.off('close', onRawClose);
      ws.on('close', onClose);
      ws.on('error', onError);
      ws.on('pong', onPong);
      this.host.opened(this);
      open();
    });
  }

  /** Refused: the answer is an HTTP error, not a WebSocket. */
  refuse(reason: BlockReason): void {
    this.refusal = reason;
  }

  read(): void {
    this.ws?.on('message', onMessage);
  }

  pause(): void {
    if (this.ws === null) this.raw.pause();
    else this.ws.pause();
  }

  resume(): void {
    if (this.ws === null) this.raw.resume();
    else this.ws.resume();
  }

  end(): void {
    if (!this.output.writableEnded) this.output.end();
  }

  destroy(): void {
    this.output.destroy();
    if (this.ws === null) this.raw.destroy();
    else this.ws.terminate();
  }

  abort(): void {
    // No close frame: the peer sees the connection drop (1006).
    this.destroy();
  }

  sendGmcp(text: string): boolean {
    const ws = this.ws;
    if (ws === null || ws.readyState !== WebSocket.OPEN) return false;
    this.sent += Buffer.byteLength(text);
    ws.send(text, { binary: false });
    return true;
  }

  /** One frame of output (see {@link FrameWriter}). */
  frame(chunk: Buffer, done: () => void): void {
    const ws = this.ws;
    if (ws === null) {
      this.early.push(chunk);
      done();
      return;
    }
    if (ws.readyState !== WebSocket.OPEN) {
      done();
      return;
    }
    this.sent += chunk.length;
    // Done once the socket took it: the writer's own buffer then holds what
    // waits, which is what the slow-consumer check measures.
    ws.send(chunk, { binary: true }, () => done());
  }

  /** Our side ends: a close frame, or a refusal's HTTP answer. */
  finish(): void {
    const ws = this.ws;
    if (ws !== null) {
      if (ws.readyState === WebSocket.OPEN) {
        ws.close(this.host.goingAway ? 1001 : 1000);
      }
      return;
    }
    const raw = this.raw;
    if (raw.destroyed) return;
    const reason = this.refusal ?? 'refused';
    const status = UNAVAILABLE.has(reason) ? 503 : 403;
    const body =
      this.early.length > 0
        ? Buffer.concat(this.early)
        : Buffer.from(`${reason}\r\n`);
    this.early = [];
    raw.end(
      Buffer.concat([
        Buffer.from(
          `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ''}\r\n` +
            'Connection: close\r\n' +
            'Content-Type: text/plain; charset=utf-8\r\n' +
            `X-Earwax-Refusal: ${reason}\r\n` +
            `Content-Length: ${body.length}\r\n\r\n`,
        ),
        body,
      ]),
    );
  }

  /** A message arrived. */
  message(data: RawData, isBinary: boolean): void {
    const sink = this.sink;
    if (sink === undefined) return;
    if (isBinary) {
      sink.receive(this.target, toBuffer(data));
      return;
    }
    if (this.subprotocol !== 'gmcp.mudstandards.org') {
      // RFC 6455 7.4.1: a type of data the endpoint cannot accept.
      this.ws?.close(1003, `text frames are not used by ${this.subprotocol}`);
      return;
    }
    // ws has checked the UTF-8 (invalid: closed with 1007).
    const message = parseGmcpText(toBuffer(data).toString('utf8'));
    // One that is not GMCP is ignored, as a telnet client's would be.
    if (!(message instanceof Error)) sink.gmcp?.(this.target, message);
  }

  /** The socket or the WebSocket closed. */
  closedNow(hadError: boolean): void {
    this.host.closed(this);
    this.sink?.closed(this.target, hadError);
  }

  failedNow(err: Error): void {
    this.sink?.failed(this.target, err);
  }
}

/**
 * A WebSocket medium's output: Node's `Writable` contract (its buffer, the
 * high-water mark, `'drain'`), each write one frame.
 *
 * @internal
 */
export class FrameWriter extends Writable {
  constructor(private readonly medium: WebSocketMedium) {
    super({ decodeStrings: true });
  }

  override _write(
    chunk: Buffer,
    _encoding: BufferEncoding,
    callback: (error?: Error | null) => void,
  ): void {
    this.medium.frame(chunk, callback);
  }

  override _final(callback: (error?: Error | null) => void): void {
    this.medium.finish();
    callback();
  }
}

const kMedium = Symbol('earwax:websocket-medium');
type RawSocket = Socket & { [kMedium]?: WebSocketMedium };
type TrackedWebSocket = WebSocket & { [kMedium]?: WebSocketMedium };

function toBuffer(data: RawData): Buffer {
  if (Buffer.isBuffer(data)) return data;
  if (Array.isArray(data)) return Buffer.concat(data);
  return Buffer.from(data);
}

// Listeners shared by every medium (one function each, not a closure per
// connection), as for TCP.
function onRawClose(this: RawSocket, hadError: boolean): void {
  this[kMedium]?.closedNow(hadError);
}
function onRawError(this: RawSocket, err: Error): void {
  this[kMedium]?.failedNow(err);
}
function onClose(this: TrackedWebSocket, code: number): void {
  // 1006: no close frame (a reset, a dead peer dropped, a terminate()).
  this[kMedium]?.closedNow(code === 1006);
}
function onError(this: TrackedWebSocket, err: Error): void {
  this[kMedium]?.failedNow(err);
}
function onPong(this: TrackedWebSocket): void {
  const medium = this[kMedium];
  if (medium !== undefined) medium.alive = true;
}
function onMessage(
  this: TrackedWebSocket,
  data: RawData,
  isBinary: boolean,
): void {
  this[kMedium]?.message(data, isBinary);
}
