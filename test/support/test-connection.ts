/**
 * Connections without a transport, for unit specs: a `Connection` over a
 * test medium (any `Writable` as its output, a claimed remote address), and
 * an owner that keeps a registry and records what its connections do.
 */
import { Writable } from 'node:stream';
import type { ConnectionContext } from '../../lib/connection/connection-context.js';
import type { ConnectionCounters } from '../../lib/connection/connection-owner.js';
import type { ConnectionOwner } from '../../lib/connection/connection-owner.js';
import type { ConnectionSettings } from '../../lib/connection/connection-settings.js';
import { Connection } from '../../lib/connection/connection.js';
import type { Medium, MediumSink } from '../../lib/connection/medium.js';
import { EARWAX_DEFAULTS } from '../../lib/earwax.constants.js';
import type {
  ConnectionAddress,
  DisconnectReason,
} from '../../lib/interfaces/connection.interface.js';
import { ConnectionRegistry } from '../../lib/registry/connection.registry.js';

/** A medium whose output is any `Writable`, and whose input the test feeds. */
export class TestMedium implements Medium {
  readonly remote: ConnectionAddress;
  readonly secure = false;
  readonly socket = undefined;
  bytesRead = 0;
  closed = false;
  peerEnded = false;
  paused = false;
  ends = 0;
  aborts: boolean[] = [];
  sink: MediumSink | undefined;
  private target: unknown;

  constructor(
    readonly output: Writable = new Writable({
      write: (_chunk, _encoding, done) => done(),
    }),
    remote = '203.0.113.9',
    port = 5000,
  ) {
    this.remote = {
      address: remote,
      port,
      family: remote.includes(':') ? 'IPv6' : 'IPv4',
    };
  }

  get remoteAddress(): string {
    return this.remote.address;
  }
  get remotePort(): number {
    return this.remote.port;
  }
  get bytesWritten(): number {
    return 0;
  }
  get outputBytes(): number {
    return 0;
  }
  get pendingBytes(): number {
    return this.output.writableLength;
  }
  tls(): undefined {
    return undefined;
  }
  attach<T>(sink: MediumSink<T>, target: T): void {
    this.sink = sink as MediumSink;
    this.target = target;
  }
  read(): void {
    this.paused = false;
  }
  pause(): void {
    this.paused = true;
  }
  resume(): void {
    this.paused = false;
  }
  end(): void {
    this.ends++;
  }
  destroy(): void {
    this.shut(false);
  }
  abort(discarding = false): void {
    this.aborts.push(discarding);
    this.shut(discarding || this.pendingBytes > 0);
  }
  /** The peer sends bytes. */
  feed(chunk: Buffer | string): void {
    this.sink?.receive(this.target, Buffer.from(chunk));
  }
  /** The peer ends its side. */
  endInput(): void {
    this.peerEnded = true;
    this.sink?.ended(this.target);
  }
  /** The peer closes the medium (a reset when `hadError`). */
  close(hadError: boolean): void {
    if (this.closed) return;
    this.closed = true;
    this.output.destroy();
    this.sink?.closed(this.target, hadError);
  }
  /** Closed from our side: reported a tick later, as a socket's close is. */
  private shut(hadError: boolean): void {
    if (this.closed) return;
    this.closed = true;
    this.output.destroy();
    process.nextTick(() => this.sink?.closed(this.target, hadError));
  }
}

/** The settings of a connection made by {@link testConnection}. */
export function testSettings(
  overrides: Partial<ConnectionSettings> = {},
): ConnectionSettings {
  const d = EARWAX_DEFAULTS;
  return {
    framing: 'line',
    encoding: 'utf8',
    maxLineLength: d.maxLineLength,
    overlongLinePolicy: 'disconnect',
    deliverPartialLineOnEnd: true,
    maxOutputBuffer: 1024,
    writeTimeout: d.writeTimeout,
    lingerTimeout: d.lingerTimeout,
    inputRate: null,
    sniffProtocols: true,
    messages: { ...d.messages, lineTooLong: 'Line too long.' },
    maxQueuedEvents: d.maxQueuedEvents,
    logConnections: false,
    ...overrides,
  };
}

/** An owner that keeps a registry and records its connections' steps. */
export interface RecordingOwner extends ConnectionOwner<Connection> {
  readonly counters: ConnectionCounters;
  readonly registry: ConnectionRegistry;
  /** `id:reason` of every `disconnect()` asked of its connections. */
  readonly disconnects: string[];
  /** Events run, as `event` or `event:data`. */
  readonly events: string[];
  /** Every settle() call. */
  settles: number;
  /** What a handler returns: `false` unless the test says. */
  handle: (
    ctx: ConnectionContext<object>,
    event: string,
    data: unknown,
  ) => boolean | Promise<boolean>;
}

export function recordingOwner(
  registry = new ConnectionRegistry(),
): RecordingOwner {
  const owner: RecordingOwner = {
    registry,
    disconnects: [],
    events: [],
    settles: 0,
    handle: () => false,
    counters: { linesReceived: 0, inputDropped: 0 },
    nested: false,
    run: (connection, event, data) => {
      owner.events.push(
        data === undefined ? event : `${event}:${String(data)}`,
      );
      return owner.handle(connection.context, event, data);
    },
    join: (connection, room) => registry.join(connection.context, room),
    leave: (connection, room) => registry.leave(connection.context, room),
    wait: (connection, event) => {
      const pending = { event, seenAt: 0, overdue: false };
      connection.waiting = pending;
      return pending;
    },
    done: (connection) => {
      connection.waiting = null;
    },
    admitted: (connection) => registry.add(connection.context),
    left: (connection) => registry.delete(connection.context),
    settle: () => void owner.settles++,
    msspStatus: () => ({}),
  };
  return owner;
}

const made = new Set<Connection>();

/**
 * A connection over `medium` (a test medium on a discarding output unless
 * given), owned by `owner`; its `disconnect()` calls are recorded in
 * `owner.disconnects`.
 */
export function testConnection(
  options: {
    medium?: Medium;
    owner?: RecordingOwner;
    settings?: Partial<ConnectionSettings>;
    telnet?: boolean;
  } = {},
): { connection: Connection; ctx: ConnectionContext; owner: RecordingOwner } {
  const owner = options.owner ?? recordingOwner();
  const connection = new Connection(
    options.medium ?? new TestMedium(),
    owner,
    testSettings(options.settings),
    { name: 'default', isTls: false, telnet: null },
  );
  const disconnect = connection.disconnect.bind(connection);
  connection.disconnect = (reason: DisconnectReason) => {
    owner.disconnects.push(`${connection.id}:${reason}`);
    disconnect(reason);
  };
  made.add(connection);
  return {
    connection,
    ctx: connection.context as ConnectionContext,
    owner,
  };
}

/** Clears the timers of every connection made so far (call in afterEach). */
export function releaseTestConnections(): void {
  for (const connection of made) connection.release();
  made.clear();
}
