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
import { ConnectionContext } from './connection-context.js';
import type { ConnectionOwner } from './connection-owner.js';
import type {
  ConnectionSettings,
  ListenerInfo,
} from './connection-settings.js';
import { enqueue } from './event-queue.js';
import {
  endOfInput,
  lineTooLong,
  receive,
  receiveLine,
  startInput,
} from './inbound.js';
import type { Medium, MediumReceiver } from './medium.js';
import { abort, hangUp, releaseOutput } from './outbox.js';

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
 * One client connection and everything it holds: its state machine
 * (`pending` → `open` → `closing` → `closed`), its medium, its input
 * (framer, telnet, rate), its event queue and its output. Independent of
 * `net.Socket`: what it needs from below is a {@link Medium}.
 *
 * The inbound path ({@link receive} in `inbound.ts`), the event queue
 * (`event-queue.ts`) and the outbound path (`outbox.ts`) are functions over
 * this state rather than objects of their own, so that a connection costs
 * one object besides its public context, and a line no extra call layer.
 *
 * Its verbs, one per step of its life: `open()` (admitted), `disconnect()`
 * (the server ends it), `close()` (it stops being open, `on_disconnect`
 * queued), `finish()` (after `on_disconnect`), and `mediumClosed()` then the
 * owner's `settle()` (its places given back).
 *
 * @internal
 */
export class Connection implements MediumReceiver, LineSink {
  readonly id: string = randomUUID();
  readonly connectedAt = Date.now();
  /** The public face handlers get. */
  readonly context: ConnectionContext;
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
  framer: LineFramer | null = null;
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
  drainTimer: NodeJS.Timeout | undefined = undefined;
  lingerTimer: NodeJS.Timeout | undefined = undefined;

  private log: Logger | undefined;

  constructor(
    readonly medium: Medium,
    readonly owner: ConnectionOwner,
    readonly settings: ConnectionSettings,
    readonly listener: ListenerInfo,
  ) {
    this.address = medium.remote;
    this.hostname = unmapIPv4(medium.remote.address);
    this.port = medium.remote.port;
    this.tlsPending = listener.isTls;
    this.out = medium.output;
    this.context = new ConnectionContext(this);
    medium.attach(this);
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

  /** Admitted: reads input, and `on_connect` runs first. */
  open(): void {
    this.state = 'open';
    this.owner.admitted(this);
    startInput(this);
    if (this.settings.logConnections) {
      this.logger.log('Connection established.');
    }
    enqueue(this, 'on_connect', undefined);
    this.medium.read();
  }

  /**
   * The server ends the connection: output already sent is flushed (unless
   * it is a slow consumer, whose output will never drain), and an open
   * connection is closed with `reason`.
   */
  disconnect(reason: DisconnectReason): void {
    const state = this.state;
    if (state === 'pending') {
      // A refused connection: it is being closed after on_block anyway.
      if (reason === 'slow_consumer') abort(this);
      else hangUp(this);
      return;
    }
    if (state !== 'open') return;
    if (reason === 'slow_consumer') abort(this);
    else hangUp(this);
    this.close(reason);
  }

  /**
   * Moves an open connection to `closing`: out of the registry, with
   * `on_disconnect` queued. The only way a connection stops being open, so
   * `on_disconnect` runs exactly once per `on_connect`.
   */
  close(reason: DisconnectReason): void {
    if (this.state !== 'open') return;
    this.state = 'closing';
    this.disconnectReason = reason;
    this.owner.left(this, reason);
    endOfInput(this, reason);
    enqueue(this, 'on_disconnect', reason);
  }

  /** After `on_disconnect` has run: close our side, and maybe forget it. */
  finish(): void {
    this.state = 'closed';
    this.queue = null;
    this.framer = null;
    const medium = this.medium;
    if (
      medium.peerEnded &&
      this.out === medium.output &&
      medium.pendingBytes === 0 &&
      !medium.closed
    ) {
      // The client has closed its side and nothing is left to flush: closed
      // now (a FIN; the kernel still delivers what it holds), so that its
      // places are given back with on_disconnect, not a turn later, and a
      // player who leaves can come straight back.
      medium.destroy();
    }
    hangUp(this);
    this.owner.settle(this);
  }

  /** Whether events (`on_disconnect` last) are still to run. */
  get eventsLeft(): boolean {
    return this.state === 'open' || this.state === 'closing';
  }

  /** What the connection holds beyond its medium: timers, compressor. */
  release(): void {
    if (this.lingerTimer) clearTimeout(this.lingerTimer);
    if (this.drainTimer) clearTimeout(this.drainTimer);
    releaseOutput(this);
  }

  // The medium's events (MediumReceiver).

  receive(chunk: Buffer): void {
    receive(this, chunk);
  }

  ended(): void {
    this.close('client_closed');
  }

  closed(hadError: boolean): void {
    if (this.state === 'open') {
      this.close(hadError || this.lastError ? 'reset' : 'client_closed');
    }
    this.owner.settle(this);
  }

  failed(err: Error): void {
    this.lastError = err;
    this.logger.debug(`Socket error: ${err.message}`);
  }

  // The framer's events (LineSink).

  onLine(chunk: Buffer, start: number, end: number): void {
    receiveLine(this, chunk, start, end);
  }

  onOverflow(): void {
    lineTooLong(this);
  }

  /** `hostname:port`, with an IPv6 hostname in brackets. */
  toString(): string {
    return formatHostPort(this.hostname, this.port);
  }
}
