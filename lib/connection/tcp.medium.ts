import type { Socket } from 'node:net';
import { TLSSocket } from 'node:tls';
import type {
  ConnectionAddress,
  TlsDetails,
} from '../interfaces/connection.interface.js';
import type { Medium, MediumSink } from './medium.js';

const kSink = Symbol('earwax:sink');
const kTarget = Symbol('earwax:target');
type TrackedSocket = Socket & {
  [kSink]?: MediumSink;
  [kTarget]?: unknown;
};

/**
 * A connection over a TCP socket, and over TLS once a handshake on that
 * socket is done ({@link TcpMedium.upgrade}). Socket events reach the
 * connection through listeners shared by every socket (one function each,
 * not one closure per connection), as `ws` does.
 *
 * @internal
 */
export class TcpMedium implements Medium {
  /** The accepted TCP socket: under TLS, the one the TLS socket wraps. */
  readonly tcp: Socket;
  private current: TrackedSocket;
  /** `remote`, made on first use. */
  private peer: ConnectionAddress | undefined = undefined;

  constructor(socket: Socket) {
    this.tcp = socket;
    this.current = socket;
  }

  get kind(): 'tcp' | 'tls' {
    return this.current === this.tcp ? 'tcp' : 'tls';
  }

  get subprotocol(): undefined {
    return undefined;
  }

  get remoteAddress(): string {
    return this.tcp.remoteAddress ?? '';
  }

  get remotePort(): number {
    return this.tcp.remotePort ?? 0;
  }

  get remote(): ConnectionAddress {
    // Node keeps the peer's address once read (as admission does first),
    // so it is the same after the socket has closed.
    const socket = this.tcp;
    return (this.peer ??= {
      address: socket.remoteAddress ?? '',
      port: socket.remotePort ?? 0,
      family: socket.remoteFamily === 'IPv6' ? 'IPv6' : 'IPv4',
    });
  }

  get socket(): Socket {
    return this.current;
  }

  get output(): Socket {
    return this.current;
  }

  get secure(): boolean {
    return this.current !== this.tcp;
  }

  get bytesRead(): number {
    return this.tcp.bytesRead;
  }

  get bytesWritten(): number {
    return this.tcp.bytesWritten;
  }

  get outputBytes(): number {
    return this.current.bytesWritten;
  }

  get pendingBytes(): number {
    return this.current.writableLength + this.tcp.writableLength;
  }

  get closed(): boolean {
    return this.current.destroyed;
  }

  get peerEnded(): boolean {
    return this.current.readableEnded;
  }

  tls(): TlsDetails | undefined {
    return tlsDetailsOf(this.current);
  }

  attach<T>(sink: MediumSink<T>, target: T): void {
    // Kept on the socket only: a medium holds no field for them.
    listen(this.current, sink as MediumSink, target);
  }

  /**
   * The TLS handshake is done: the TLS socket carries the connection from
   * now on. The TCP socket's listeners go, so its close is not seen twice.
   */
  upgrade(tls: TLSSocket): void {
    const from = this.current;
    const sink = from[kSink];
    if (sink === undefined) return;
    unlisten(from);
    this.current = tls;
    listen(tls, sink, from[kTarget]);
  }

  read(): void {
    const socket = this.current;
    socket.on('data', onData);
    socket.on('end', onEnd);
    socket.resume();
  }

  pause(): void {
    this.current.pause();
  }

  resume(): void {
    this.current.resume();
  }

  end(): void {
    const socket = this.current;
    if (!socket.writableEnded) socket.end();
  }

  destroy(): void {
    this.current.destroy();
  }

  abort(discarding = false): void {
    const { tcp, current } = this;
    // Output queued and thrown away: the TCP connection is reset (RST), so
    // the peer's stack reports a reset to a reader, not an end that looks
    // like a complete answer. Output already handed to the kernel is not
    // known to Node: with nothing in Node's buffers the close is a FIN and
    // the kernel still delivers what it holds. A TLS socket is reset
    // through the TCP socket under it.
    if ((discarding || this.pendingBytes > 0) && !tcp.destroyed) {
      tcp.resetAndDestroy();
    }
    current.destroy();
  }
}

/**
 * The TLS details of a socket; `undefined` unless it is a `TLSSocket`.
 *
 * @internal
 */
export function tlsDetailsOf(socket: Socket): TlsDetails | undefined {
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

/**
 * What a socket of a {@link TcpMedium} carries (for the TLS engine's
 * events, which name the TCP socket).
 *
 * @internal
 */
export function targetOf(socket: Socket): unknown {
  return (socket as TrackedSocket)[kTarget];
}

function listen(
  socket: TrackedSocket,
  sink: MediumSink,
  target: unknown,
): void {
  socket[kSink] = sink;
  socket[kTarget] = target;
  socket.on('error', onError);
  socket.on('close', onClose);
}

function unlisten(socket: TrackedSocket): void {
  socket.off('error', onError);
  socket.off('close', onClose);
}

function onData(this: TrackedSocket, chunk: Buffer): void {
  (this[kSink] as MediumSink).receive(this[kTarget], chunk);
}
function onEnd(this: TrackedSocket): void {
  (this[kSink] as MediumSink).ended(this[kTarget]);
}
function onClose(this: TrackedSocket, hadError: boolean): void {
  (this[kSink] as MediumSink).closed(this[kTarget], hadError);
}
function onError(this: TrackedSocket, err: Error): void {
  (this[kSink] as MediumSink).failed(this[kTarget], err);
}
