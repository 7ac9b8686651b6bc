import { Logger } from '@nestjs/common';
import { randomUUID } from 'node:crypto';
import type { StringDecoder } from 'node:string_decoder';
import type { Writable } from 'node:stream';
import type { LineFramer, LineSink } from '../framing/line-framer.js';
import type {
  ConnectionAddress,
  ConnectionState,
  DisconnectReason,
} from '../interfaces/connection.interface.js';
import type { PendingHandler } from '../limits/handler-watch.js';
import type { InputRateLimiter } from '../limits/input-rate-limiter.js';
import type { TelnetSession } from '../telnet/telnet-session.js';
import { formatHostPort, unmapIPv4 } from '../utils/host-port.js';
import type { ConnectionOwner } from './connection-owner.js';
import type {
  ConnectionSettings,
  ListenerInfo,
} from './connection-settings.js';
import type { Medium } from './medium.js';

/** Input modes: how a chunk of an open connection is read. */
export const enum InputMode {
  /** Not reading yet (pending), or no longer. */
  None,
  Lines,
  Telnet,
  Text,
  Raw,
}

/**
 * The state of one client connection and everything it holds: its state
 * machine (`pending` → `open` → `closing` → `closed`), its medium, its
 * input (framer, telnet, rate), its event queue and its output.
 * Independent of `net.Socket`: what it needs from below is a
 * {@link Medium}.
 *
 * The inbound path (`inbound.ts`), the event queue (`event-queue.ts`) and
 * the outbound path (`outbox.ts`) are functions over this state rather than
 * objects of their own, so that a connection costs one object besides its
 * public context, and a line no extra call layer. They call the steps,
 * which are abstract here and implemented by `Connection` (`connection.ts`),
 * so that they import only this file and nothing imports back (no cycle).
 *
 * @internal
 */
export abstract class ConnectionCore {
  readonly id: string = randomUUID();
  readonly connectedAt = Date.now();
  state: ConnectionState = 'pending';
  disconnectReason: DisconnectReason | undefined = undefined;
  address: ConnectionAddress;
  hostname: string;
  port: number;
  proxy: ConnectionAddress | undefined = undefined;
  /** A TLS listener's connection until its handshake is done. */
  tlsPending: boolean;
  /** Counted in the per-address limits (under `hostname`). */
  held = false;
  lastError: Error | undefined = undefined;
  /** The rooms it is in; kept by the registry. */
  rooms: Set<string> | null = null;
  data: object | undefined = undefined;

  // Input.
  mode = InputMode.None;
  /** The line framer, which is also its own sink (see `inbound.ts`). */
  framer: (LineFramer & LineSink) | null = null;
  telnet: TelnetSession | null = null;
  decoder: StringDecoder | null = null;
  rateLimiter: InputRateLimiter | null = null;
  /** The first chunk has been read (and sniffed). */
  chunkSeen = false;
  /** Set by every input event, not by bytes; read by the idle sweep. */
  inputSeen = false;
  /** When the idle sweep last saw input; 0 before any. */
  lastInputAt = 0;
  inputPaused = false;

  // Events.
  /** Events waiting behind a running handler: name, data, name, data... */
  queue: unknown[] | null = null;
  busy = false;
  /** The handler the next events wait for, while one has not settled. */
  waiting: PendingHandler | null = null;
  /** Cleared once a connection no longer open gave up on a handler. */
  waitsForHandlers = true;

  // Output.
  /** Where output goes: the medium's, or a compressor in front of it. */
  out: Writable;
  /** Output held until the end of the turn (see `turn-output.ts`). */
  turnOutput: string | Uint8Array | (string | Uint8Array)[] | null = null;
  /** The size of `turnOutput` (UTF-16 units for text: an estimate). */
  turnBytes = 0;
  drainTimer: NodeJS.Timeout | undefined = undefined;
  lingerTimer: NodeJS.Timeout | undefined = undefined;

  private log: Logger | undefined;

  constructor(
    readonly medium: Medium,
    readonly owner: ConnectionOwner<ConnectionCore>,
    readonly settings: ConnectionSettings,
    readonly listener: ListenerInfo,
  ) {
    this.address = medium.remote;
    this.hostname = unmapIPv4(medium.remote.address);
    this.port = medium.remote.port;
    this.tlsPending = listener.isTls;
    this.out = medium.output;
  }

  /** A logger named after the connection, made on first use. */
  get logger(): Logger {
    return (this.log ??= new Logger(this.toString()));
  }

  /** The encoding of its text (a telnet client may agree to another). */
  get encoding(): BufferEncoding {
    return this.telnet?.encoding ?? this.settings.encoding ?? 'utf8';
  }

  /**
   * The real client, from a PROXY protocol header: becomes `address`,
   * `hostname` and `port`; the medium's own remote end becomes `proxy`.
   */
  setProxiedRemote(
    address: string,
    port: number,
    family: 'IPv4' | 'IPv6',
  ): void {
    this.proxy = this.address;
    this.address = { address, port, family };
    this.hostname = unmapIPv4(address);
    this.port = port;
    this.log = undefined;
  }

  /**
   * The server ends the connection: output already sent is flushed (unless
   * it is a slow consumer), and an open connection is closed with `reason`.
   */
  abstract disconnect(reason: DisconnectReason): void;

  /**
   * Moves an open connection to `closing`: out of the registry, with
   * `on_disconnect` queued.
   */
  abstract close(reason: DisconnectReason): void;

  /** After `on_disconnect` has run: closes our side. */
  abstract finish(): void;

  /**
   * The turn's held output was written; `ok` is what the write returned.
   * Applies the slow-consumer policy.
   */
  abstract written(ok: boolean): void;

  /** Whether events (`on_disconnect` last) are still to run. */
  get eventsLeft(): boolean {
    return this.state === 'open' || this.state === 'closing';
  }

  /** `hostname:port`, with an IPv6 hostname in brackets. */
  toString(): string {
    return formatHostPort(this.hostname, this.port);
  }
}
