import { Logger } from '@nestjs/common';
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
import { connectionId } from './connection-id.js';
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
  readonly connectedAt = Date.now();
  state: ConnectionState = 'pending';
  disconnectReason: DisconnectReason | undefined = undefined;
  /**
   * The client's IP address (the key of the per-address limits): the
   * medium's, or the real client's behind a PROXY-protocol proxy.
   */
  hostname: string;
  /** The rooms it is in; kept by the registry. */
  rooms: Set<string> | null = null;
  data: object | undefined = undefined;

  // Input.
  mode = InputMode.None;
  /** The line framer, which is also its own sink (see `inbound.ts`). */
  framer: (LineFramer & LineSink) | null = null;
  telnet: TelnetSession | null = null;
  rateLimiter: InputRateLimiter | null = null;
  /** When the idle sweep last saw input; 0 before any. */
  lastInputAt = 0;

  // Events.
  /** Events waiting behind a running handler: name, data, name, data... */
  queue: unknown[] | null = null;
  /** The handler the next events wait for, while one has not settled. */
  waiting: PendingHandler | null = null;

  // Output.
  /** Where output goes: the medium's, or a compressor in front of it. */
  out: Writable;
  /** Output held until the end of the turn (see `turn-output.ts`). */
  turnOutput: string | Uint8Array | (string | Uint8Array)[] | null = null;
  /** The size of `turnOutput` (UTF-16 units for text: an estimate). */
  turnBytes = 0;

  /**
   * Its yes/no state (the accessors `tlsPending` to `waitsForHandlers`
   * below), one bit each: one field instead of seven on every connection.
   */
  private flags: number = Flag.WaitsForHandlers;
  /** What few connections need (see {@link Seldom}); made on first need. */
  private seldom: Seldom | null = null;
  /** `id`, made when first asked for: many connections never are. */
  private ident: string | undefined = undefined;

  constructor(
    readonly medium: Medium,
    readonly owner: ConnectionOwner<ConnectionCore>,
    readonly settings: ConnectionSettings,
    readonly listener: ListenerInfo,
  ) {
    // The address string only: the medium's `remote` object is made when
    // something asks for it, which most connections never do.
    this.hostname = unmapIPv4(medium.remoteAddress);
    if (listener.isTls) this.flags |= Flag.TlsPending;
    this.out = medium.output;
  }

  /** A unique id (a random UUID), stable for the life of the connection. */
  get id(): string {
    return (this.ident ??= connectionId());
  }

  /** A TLS listener's connection until its handshake is done. */
  get tlsPending(): boolean {
    return (this.flags & Flag.TlsPending) !== 0;
  }
  set tlsPending(on: boolean) {
    this.flag(Flag.TlsPending, on);
  }

  /** Counted in the per-address limits (under `hostname`). */
  get held(): boolean {
    return (this.flags & Flag.Held) !== 0;
  }
  set held(on: boolean) {
    this.flag(Flag.Held, on);
  }

  /** The first chunk has been read (and sniffed). */
  get chunkSeen(): boolean {
    return (this.flags & Flag.ChunkSeen) !== 0;
  }
  set chunkSeen(on: boolean) {
    this.flag(Flag.ChunkSeen, on);
  }

  /** Set by every input event, not by bytes; read by the idle sweep. */
  get inputSeen(): boolean {
    return (this.flags & Flag.InputSeen) !== 0;
  }
  set inputSeen(on: boolean) {
    this.flag(Flag.InputSeen, on);
  }

  /** Reading is paused while too many events wait. */
  get inputPaused(): boolean {
    return (this.flags & Flag.InputPaused) !== 0;
  }
  set inputPaused(on: boolean) {
    this.flag(Flag.InputPaused, on);
  }

  /** An event of the connection is running. */
  get busy(): boolean {
    return (this.flags & Flag.Busy) !== 0;
  }
  set busy(on: boolean) {
    this.flag(Flag.Busy, on);
  }

  /** Cleared once a connection no longer open gave up on a handler. */
  get waitsForHandlers(): boolean {
    return (this.flags & Flag.WaitsForHandlers) !== 0;
  }
  set waitsForHandlers(on: boolean) {
    this.flag(Flag.WaitsForHandlers, on);
  }

  /** The last error its medium reported. */
  get lastError(): Error | undefined {
    return this.seldom?.lastError;
  }
  set lastError(err: Error | undefined) {
    this.more().lastError = err;
  }

  /** The decoder of a connection that reads text without framing it. */
  get decoder(): StringDecoder | null {
    return this.seldom?.decoder ?? null;
  }
  set decoder(decoder: StringDecoder | null) {
    this.more().decoder = decoder;
  }

  /** Armed while output waits to drain past the high-water mark. */
  get drainTimer(): NodeJS.Timeout | undefined {
    return this.seldom?.drainTimer;
  }
  set drainTimer(timer: NodeJS.Timeout | undefined) {
    if (timer !== undefined || this.seldom !== null) {
      this.more().drainTimer = timer;
    }
  }

  /** Armed when our side has ended, until the peer closes. */
  get lingerTimer(): NodeJS.Timeout | undefined {
    return this.seldom?.lingerTimer;
  }
  set lingerTimer(timer: NodeJS.Timeout | undefined) {
    if (timer !== undefined || this.seldom !== null) {
      this.more().lingerTimer = timer;
    }
  }

  /**
   * The remote end: the medium's, or the real client a PROXY protocol
   * header announced.
   */
  get address(): ConnectionAddress {
    return this.seldom?.proxied ?? this.medium.remote;
  }

  /** The remote port (the real client's behind a PROXY-protocol proxy). */
  get port(): number {
    return this.seldom?.proxied?.port ?? this.medium.remotePort;
  }

  /** The medium's own remote end when a PROXY header named another client. */
  get proxy(): ConnectionAddress | undefined {
    return this.seldom?.proxied === undefined ? undefined : this.medium.remote;
  }

  /**
   * Logs `message` at `log` level under the connection's name, as its
   * `logger` would, without making it one: with `logConnections`, every
   * connection logs when it opens and closes, and most never otherwise.
   */
  logEvent(message: string): void {
    const log = this.seldom?.log;
    if (log !== undefined) log.log(message);
    else EVENTS.log(message, this.toString());
  }

  /** A logger named after the connection, made on first use. */
  get logger(): Logger {
    const seldom = this.more();
    return (seldom.log ??= new Logger(this.toString()));
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
    const seldom = this.more();
    seldom.proxied = { address, port, family };
    seldom.log = undefined;
    this.hostname = unmapIPv4(address);
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

  private flag(bit: Flag, on: boolean): void {
    this.flags = on ? this.flags | bit : this.flags & ~bit;
  }

  private more(): Seldom {
    return (this.seldom ??= new Seldom());
  }
}

/**
 * Logs the connections' opening and closing, each under its connection's
 * name (a logger's context given per call is printed as its own would be).
 */
const EVENTS = new Logger();

/** The bits of `ConnectionCore.flags`. */
const enum Flag {
  TlsPending = 1,
  Held = 2,
  ChunkSeen = 4,
  InputSeen = 8,
  InputPaused = 16,
  Busy = 32,
  WaitsForHandlers = 64,
}

/**
 * The state of a connection that few connections ever have (a PROXY
 * header's client, a medium error, a text decoder, a logger, output that
 * does not drain, a peer that lingers): one object, made on first need, so
 * that the others do not carry a field for each.
 */
class Seldom {
  proxied: ConnectionAddress | undefined = undefined;
  lastError: Error | undefined = undefined;
  decoder: StringDecoder | null = null;
  log: Logger | undefined = undefined;
  drainTimer: NodeJS.Timeout | undefined = undefined;
  lingerTimer: NodeJS.Timeout | undefined = undefined;
}
