import type { DisconnectReason } from '../interfaces/connection.interface.js';
import { ConnectionContext } from './connection-context.js';
import { ConnectionCore } from './connection-core.js';
import type { ConnectionOwner } from './connection-owner.js';
import type {
  ConnectionSettings,
  ListenerInfo,
} from './connection-settings.js';
import { enqueue } from './event-queue.js';
import { endOfInput, receive, startInput, withinRate } from './inbound.js';
import type { Medium, MediumSink } from './medium.js';
import { abort, checkOutput, hangUp, releaseOutput } from './outbox.js';
import { startTelnet } from './telnet-link.js';
import { flushOutput, readInput } from './turn-output.js';

/**
 * One client connection: its state (see {@link ConnectionCore}) and its
 * steps, one verb each: `open()` (admitted), `disconnect()` (the server
 * ends it), `close()` (it stops being open, `on_disconnect` queued),
 * `finish()` (after `on_disconnect`), `release()` (its medium closed), after
 * which its owner's `settle()` gives its places back. Independent of
 * `net.Socket`: what it needs from below is a {@link Medium}.
 *
 * @internal
 */
export class Connection extends ConnectionCore {
  /** The public face handlers get. */
  readonly context: ConnectionContext;

  constructor(
    medium: Medium,
    owner: ConnectionOwner<Connection>,
    settings: ConnectionSettings,
    listener: ListenerInfo,
  ) {
    super(medium, owner as ConnectionOwner<ConnectionCore>, settings, listener);
    this.context = new ConnectionContext(this);
    medium.attach(SINK, this);
  }

  /** Admitted: reads input, and `on_connect` runs first. */
  open(): void {
    this.state = 'open';
    this.owner.admitted(this);
    startInput(this);
    const telnet = this.listener.telnet;
    if (telnet !== null) startTelnet(this, telnet);
    if (this.settings.logConnections) {
      this.logEvent('Connection established.');
    }
    enqueue(this, 'on_connect', undefined);
    this.medium.read();
  }

  disconnect(reason: DisconnectReason): void {
    const state = this.state;
    // A pending one is a refused connection, closed after on_block anyway.
    if (state !== 'pending' && state !== 'open') return;
    // A slow consumer's output will never drain: flushing would wait forever.
    if (reason === 'slow_consumer') abort(this);
    else hangUp(this);
    if (state === 'open') this.close(reason);
  }

  close(reason: DisconnectReason): void {
    // The only way a connection stops being open, so `on_disconnect` runs
    // exactly once per `on_connect`.
    if (this.state !== 'open') return;
    this.state = 'closing';
    this.disconnectReason = reason;
    this.owner.left(this, reason);
    endOfInput(this, reason);
    enqueue(this, 'on_disconnect', reason);
  }

  finish(): void {
    // What the turn held is written now, so `pendingBytes` below tells
    // what the client has not taken.
    flushOutput(this);
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

  written(ok: boolean): void {
    checkOutput(this, ok);
  }

  /** What the connection holds beyond its medium: timers, compressor. */
  release(): void {
    clearTimeout(this.lingerTimer);
    clearTimeout(this.drainTimer);
    this.lingerTimer = undefined;
    this.drainTimer = undefined;
    releaseOutput(this);
  }
}

/** What a medium tells its connection: one object for every connection. */
const SINK: MediumSink<Connection> = {
  receive: (connection, chunk) => readInput(connection, receive, chunk),
  ended: (connection) => connection.close('client_closed'),
  closed: (connection, hadError) => {
    if (connection.state === 'open') {
      connection.close(
        hadError || connection.lastError ? 'reset' : 'client_closed',
      );
    }
    connection.owner.settle(connection);
  },
  failed: (connection, err) => {
    connection.lastError = err;
    connection.logger.debug(`Socket error: ${err.message}`);
  },
  gmcp: (connection, message) => {
    // As a telnet GMCP subnegotiation: one event from the input rate.
    if (connection.state !== 'open' || !withinRate(connection)) return;
    connection.inputSeen = true;
    enqueue(connection, 'on_gmcp', message);
  },
};
