import type { Socket } from 'node:net';
import type { Writable } from 'node:stream';
import type {
  ConnectionAddress,
  TlsDetails,
} from '../interfaces/connection.interface.js';
import type { GmcpMessage } from '../interfaces/telnet.interface.js';
import type {
  EarwaxMedium,
  WebSocketSubprotocol,
} from '../interfaces/websocket.interface.js';

/**
 * What a medium tells the connection it carries (`target`). One object for
 * every connection, so a medium needs no closure per connection.
 *
 * @internal
 */
export interface MediumSink<T = unknown> {
  /** Bytes arrived (only between `read()` and the end). */
  receive(target: T, chunk: Buffer): void;
  /** The peer ended its sending side; output may still flow. */
  ended(target: T): void;
  /** The medium is closed for good; `hadError` after a reset or failure. */
  closed(target: T, hadError: boolean): void;
  /** The medium failed; `closed` follows. */
  failed(target: T, err: Error): void;
  /** A GMCP message arrived on a channel of the medium's own. */
  gmcp?(target: T, message: GmcpMessage): void;
}

/**
 * What a connection needs from the byte stream below it: chunks in, a
 * writable with backpressure out, ending, destroying, and who is at the
 * other end. TCP and TLS sockets are one ({@link TcpMedium}); WebSocket
 * frames, a portal link or a test double are others, and nothing above the
 * medium changes for them.
 *
 * @internal
 */
export interface Medium {
  /** What the medium is, as `ctx.medium` tells it (`'tcp'` when absent). */
  readonly kind?: EarwaxMedium;
  /** The WebSocket subprotocol agreed on; absent for other media. */
  readonly subprotocol?: WebSocketSubprotocol;
  /**
   * Sends a GMCP message (`Package.Name json`) on a channel of the medium's
   * own (a WebSocket's text frames), for a connection without telnet.
   * Absent when the medium has none.
   *
   * @returns Whether it was queued.
   */
  sendGmcp?(text: string): boolean;
  /** The remote end as the medium reports it. */
  readonly remote: ConnectionAddress;
  /**
   * `remote.address` and `remote.port`, for a medium that can give them
   * without building `remote` (which most connections never need).
   */
  readonly remoteAddress: string;
  readonly remotePort: number;
  /**
   * Where output is written: Node's `Writable` contract is the backpressure
   * contract (`write()` returns `false` past the high-water mark, then
   * `'drain'`), so the send path costs no layer of its own.
   */
  readonly output: Writable;
  /** Whether the medium is encrypted (a finished TLS handshake). */
  readonly secure: boolean;
  /** TLS details of a secure medium. */
  tls(): TlsDetails | undefined;
  /** The socket under a TCP or TLS medium, for code that needs one. */
  readonly socket: Socket | undefined;
  /** Bytes read and written on the wire, for the metrics. */
  readonly bytesRead: number;
  readonly bytesWritten: number;
  /** Bytes of output the medium has sent (before any encryption). */
  readonly outputBytes: number;
  /** Bytes written but not yet handed to the wire, in every layer. */
  readonly pendingBytes: number;
  /** Whether the medium is closed (nothing can be read or written). */
  readonly closed: boolean;
  /** Whether the peer ended its sending side. */
  readonly peerEnded: boolean;
  /** Starts reporting events (`closed`, `failed`) of `target` to `sink`. */
  attach<T>(sink: MediumSink<T>, target: T): void;
  /** Starts delivering input (`receive`, `ended`). */
  read(): void;
  pause(): void;
  resume(): void;
  /** Flushes what was written, then ends our side. */
  end(): void;
  /** Closes now; what was written and not sent is lost. */
  destroy(): void;
  /**
   * Closes now, telling the peer that output was lost (a TCP reset) when any
   * was; a plain close when nothing was pending.
   *
   * @param discarding Output queued above the medium (a compressor) is lost.
   */
  abort(discarding?: boolean): void;
}
