import type { Socket } from 'node:net';
import type { AnyConnectionContext, EarwaxTransport } from '../../lib/index.js';
import { connectionOf } from '../../lib/connection/connection-context.js';
import { Waiters } from './waiters.js';

/** What one server-side connection holds in memory at one moment. */
export interface BufferSample {
  /**
   * Input bytes held: the partial line in the connection's framer, plus
   * what the socket has read from the kernel and not yet handed on.
   */
  inputBytes: number;
  /** Events waiting behind a running handler. */
  queuedEvents: number;
  /** Output bytes waiting to be written to the kernel. */
  outputBytes: number;
}

/** How often every tracked socket is sampled, besides on each read. */
const SAMPLE_EVERY_MS = 50;

/**
 * Measures what the server holds per connection while hostile clients run,
 * by reading the buffers themselves rather than the process's memory.
 *
 * Why not heap or RSS figures: the hostile clients run in the same process
 * as the server, so the process's memory counts their buffers too; heap
 * numbers move with the garbage collector's timing (and `global.gc` is not
 * exposed under Jest), so a bound tight enough to catch a 10 MiB line held
 * in memory would flake on a loaded machine. The buffers that an attack
 * could grow without bound are few and each is readable: the framer's
 * partial line, the socket's read buffer, the event queue, the output
 * queue. Their sizes do not depend on timing or the collector, only on what
 * the server kept, so a bound on them cannot flake and still fails at once
 * if a buffer grows with the attack.
 *
 * Every socket the transport accepts is tracked from its `connection`
 * event (before any admission check), sampled on each read and every
 * 50 ms, and forgotten when it closes; peaks are kept per client address.
 */
export class ServerBufferGauge {
  /** The highest sample of any connection from each address. */
  readonly peaks = new Map<string, BufferSample>();
  /** Sockets accepted from each address, in all. */
  readonly accepted = new Map<string, number>();
  private readonly open = new Map<Socket, string>();
  /** Why a sample could not be read, reported by `peakOf`. */
  private failure: Error | undefined;
  private readonly contexts = new WeakMap<Socket, AnyConnectionContext>();
  private readonly timer: NodeJS.Timeout;
  private readonly waits = new Waiters(
    () =>
      `open server sockets by address: ${JSON.stringify(this.openByAddress())}`,
  );

  /** Starts tracking; call before the transport listens. */
  constructor(transport: EarwaxTransport) {
    transport.on('connection', (socket) => this.track(socket));
    this.timer = setInterval(() => {
      for (const socket of this.open.keys()) this.sample(socket);
    }, SAMPLE_EVERY_MS);
    this.timer.unref();
  }

  /** Links an admitted connection to its socket (call it from on_connect). */
  adopt(ctx: AnyConnectionContext): void {
    this.contexts.set(ctx.socket, ctx);
    this.sample(ctx.socket);
  }

  /** The peak of connections from `address` (all zero if none was seen). */
  peakOf(address: string): BufferSample {
    if (this.failure) throw this.failure;
    return (
      this.peaks.get(address) ?? {
        inputBytes: 0,
        queuedEvents: 0,
        outputBytes: 0,
      }
    );
  }

  /** Server sockets from `address` not yet closed. */
  openFrom(address: string): number {
    let count = 0;
    for (const from of this.open.values()) if (from === address) count++;
    return count;
  }

  /** Waits until every server socket from `address` has closed. */
  allClosedFrom(address: string): Promise<void> {
    return this.waits.until(
      () => this.openFrom(address) === 0,
      `every server socket from ${address} to close`,
    );
  }

  /** Stops sampling. */
  stop(): void {
    clearInterval(this.timer);
  }

  private track(socket: Socket): void {
    const address = unmap(socket.remoteAddress ?? '?');
    this.open.set(socket, address);
    this.accepted.set(address, (this.accepted.get(address) ?? 0) + 1);
    // A 'data' listener on a socket in neither flowing nor paused mode
    // would start it flowing before the transport listens: only attach one
    // once the transport has chosen (pauseOnConnect, or its own listener).
    if (socket.readableFlowing !== null) {
      socket.on('data', () => this.sample(socket));
    }
    socket.once('close', () => {
      this.sample(socket);
      this.open.delete(socket);
      this.waits.wake();
    });
  }

  private sample(socket: Socket): void {
    const address = this.open.get(socket);
    if (address === undefined) return;
    const ctx = this.contexts.get(socket);
    let pending: number;
    try {
      pending = pendingLineBytes(ctx);
    } catch (err) {
      this.failure ??= err as Error;
      return;
    }
    const connection = ctx === undefined ? undefined : connectionOf(ctx);
    const out = connection?.out;
    const inputBytes = socket.readableLength + pending;
    const queuedEvents = (connection?.queue?.length ?? 0) / 2;
    const outputBytes =
      socket.writableLength +
      (out !== undefined && out !== socket ? out.writableLength : 0);
    const peak = this.peaks.get(address);
    if (!peak) {
      this.peaks.set(address, { inputBytes, queuedEvents, outputBytes });
      return;
    }
    if (inputBytes > peak.inputBytes) peak.inputBytes = inputBytes;
    if (queuedEvents > peak.queuedEvents) peak.queuedEvents = queuedEvents;
    if (outputBytes > peak.outputBytes) peak.outputBytes = outputBytes;
  }

  private openByAddress(): Record<string, number> {
    const counts: Record<string, number> = {};
    for (const from of this.open.values())
      counts[from] = (counts[from] ?? 0) + 1;
    return counts;
  }
}

/**
 * The bytes of the partial line a connection's framer holds. `LineFramer`
 * keeps that count private (its public face only says whether there is a
 * partial line), so the gauge reads the field, and fails loudly if it is
 * renamed rather than reading zero.
 */
function pendingLineBytes(ctx: AnyConnectionContext | undefined): number {
  const framer = ctx === undefined ? undefined : connectionOf(ctx).framer;
  if (!framer) return 0;
  const pending = (framer as unknown as { pendingLength?: unknown })
    .pendingLength;
  if (typeof pending !== 'number') {
    throw new Error(
      'ServerBufferGauge: LineFramer has no numeric pendingLength any more; update the gauge to read its partial-line size.',
    );
  }
  return pending;
}

function unmap(address: string): string {
  return address.startsWith('::ffff:') ? address.slice(7) : address;
}
