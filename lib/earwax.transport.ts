import { Logger } from '@nestjs/common';
import {
  type CustomTransportStrategy,
  type MessageHandler,
  Server,
} from '@nestjs/microservices';
import {
  createServer,
  type AddressInfo,
  type Server as NetServer,
  type Socket,
} from 'node:net';
import { StringDecoder } from 'node:string_decoder';
import { isObservable, lastValueFrom } from 'rxjs';
import {
  BUILT_IN_EVENTS,
  EARWAX_DEFAULTS,
  EARWAX_PATTERN_PREFIX,
  EARWAX_TRANSPORT,
  EVENT_HANDLED,
  EXTRA_ORIGIN,
  EXTRA_PRIORITY,
} from './constants.js';
import {
  ConnectionContext,
  type ConnectionHost,
} from './connection-context.js';
import type { ConnectionGuard } from './connection.guard.js';
import { ConnectionRegistry } from './connection.registry.js';
import { EventNameError } from './errors.js';
import { LineFramer } from './framing/line-framer.js';
import type {
  BlockReason,
  DisconnectReason,
} from './interfaces/connection.interface.js';
import type {
  EarwaxTransportOptions,
  FramingMode,
  HandlerErrorPolicy,
  OverlongLinePolicy,
} from './interfaces/earwax-options.interface.js';

/**
 * The states the transport reports on its `status` stream.
 *
 * @publicApi
 */
export enum EarwaxStatus {
  /** Bound and accepting connections. */
  LISTENING = 'listening',
  /** `close()` is running: no new connections, open ones are being ended. */
  CLOSING = 'closing',
  /** Not listening (after `close()`, or when `listen()` failed). */
  CLOSED = 'closed',
}

/**
 * The events of the underlying `net.Server` that `on()` subscribes to.
 *
 * @publicApi
 */
export type EarwaxServerEvents = {
  listening: () => void;
  connection: (socket: Socket) => void;
  close: () => void;
  error: (err: Error) => void;
};

/**
 * What the `EarwaxModule` hands a transport of its application.
 *
 * @internal
 */
export interface EarwaxBindings {
  guard?: ConnectionGuard;
  registry: ConnectionRegistry;
  defaults?: EarwaxTransportOptions;
}

interface HandlerEntry {
  readonly handler: MessageHandler;
  readonly priority: number;
  readonly seq: number;
  readonly origin: string;
}

interface Settings {
  host: string;
  port: number;
  backlog: number;
  ipv6Only: boolean;
  reusePort: boolean;
  noDelay: boolean;
  keepAlive: false | number;
  framing: FramingMode;
  encoding: BufferEncoding | undefined;
  maxLineLength: number;
  overlongLinePolicy: OverlongLinePolicy;
  overlongLineMessage: string | false;
  deliverPartialLineOnEnd: boolean;
  maxOutputBuffer: number;
  maxQueuedEvents: number;
  handlerErrorPolicy: HandlerErrorPolicy;
  logConnections: boolean;
  closeTimeout: number;
  lingerTimeout: number;
}

const kContext = Symbol('earwax:context');
type TrackedSocket = Socket & { [kContext]?: ConnectionContext };

/**
 * A NestJS custom transport that runs a raw-TCP game server: the NestJS form
 * of `earwax_server.Server`. It accepts connections, asks the
 * `ConnectionGuard`, frames input into lines (or raw chunks), and routes the
 * events `on_connect`, `on_data`, `on_disconnect`, `on_block` and any
 * registered with {@link EarwaxTransport.registerEventType} to
 * `@EarwaxEvent` handlers through Nest's whole pipeline.
 *
 * Events of one connection are handled one at a time, in the order they
 * happened, each handler awaited; different connections run concurrently.
 * Everything runs on the one Node thread, so a handler that blocks (CPU-bound
 * work, synchronous I/O) stalls every connection: move such work off the
 * event loop.
 *
 * @example
 * ```ts
 * const app = await NestFactory.createMicroservice(AppModule, {
 *   strategy: new EarwaxTransport({ host: '0.0.0.0', port: 4000 }),
 * });
 * await app.listen();
 * ```
 *
 * @publicApi
 */
export class EarwaxTransport
  extends Server<EarwaxServerEvents, EarwaxStatus>
  implements CustomTransportStrategy
{
  /** Binds `@EarwaxEvent` handlers to this transport. */
  override transportId: symbol = EARWAX_TRANSPORT;
  /** Handler failures are reported here, once, with the connection named. */
  override readonly propagatesEventHandlerErrors = true;

  protected override readonly logger = new Logger(EarwaxTransport.name);

  private readonly server: NetServer;
  private readonly ownOptions: EarwaxTransportOptions;
  private settings: Settings;
  private guard: ConnectionGuard | undefined;
  private registry: ConnectionRegistry;
  private readonly eventTypes = new Set<string>(BUILT_IN_EVENTS);
  private readonly chains = new Map<string, readonly HandlerEntry[]>();
  private handlerSeq = 0;
  private hasProcessingHooks = false;
  /** Every accepted socket whose connection has not fully ended. */
  private readonly live = new Set<ConnectionContext>();
  private closing = false;
  private closePromise: Promise<void> | undefined;
  private onLiveEmpty: (() => void) | undefined;
  private readonly connectionHost: ConnectionHost;

  /**
   * @param options Where to listen and how to treat connections; every
   *   option has a default.
   */
  constructor(options: EarwaxTransportOptions = {}) {
    super();
    this.ownOptions = options;
    this.settings = resolveSettings(options);
    this.guard = options.guard;
    this.registry = options.registry ?? new ConnectionRegistry();
    for (const name of options.eventTypes ?? []) this.registerEventType(name);
    // One object for every connection of this transport: the callbacks its
    // sockets need, without a closure per connection.
    this.connectionHost = {
      encoding: this.settings.encoding ?? 'utf8',
      maxOutputBuffer: this.settings.maxOutputBuffer,
      disconnect: (ctx, reason) => this.disconnect(ctx, reason),
      receive: (ctx, data) => {
        if (ctx.state === 'open') this.enqueue(ctx, 'on_data', data);
      },
      receiveLine: (ctx, chunk, start, end) =>
        this.enqueue(ctx, 'on_data', this.decodeLine(chunk, start, end)),
      lineOverflow: (ctx) => this.lineTooLong(ctx),
      ended: (ctx) => this.finish(ctx, 'client_closed'),
      closed: (ctx, hadError) => {
        if (ctx.state === 'open') {
          this.finish(
            ctx,
            hadError || ctx.lastError ? 'reset' : 'client_closed',
          );
        }
        this.settle(ctx);
      },
      failed: (ctx, err) => {
        ctx.lastError = err;
        ctx.logger.debug(`Socket error: ${err.message}`);
      },
    };
    // Created here, as Nest's own TCP server is, so `on()` works before
    // `listen()`.
    this.server = createServer(
      { allowHalfOpen: true, pauseOnConnect: true },
      (socket) => this.accept(socket),
    );
    this.server.on('error', (err) => {
      if (this.server.listening) this.logger.error(err);
    });
  }

  /** The live connections of this transport's application. */
  get connections(): ConnectionRegistry {
    return this.registry;
  }

  /**
   * The address the server is bound to, once listening (read the real port
   * here after listening on port 0).
   */
  address(): AddressInfo | null {
    const address = this.server.address();
    return typeof address === 'object' ? address : null;
  }

  /**
   * Receives the guard and registry of the application's `EarwaxModule`.
   * Options given to the constructor win over module defaults.
   *
   * @internal
   */
  bind(bindings: EarwaxBindings): void {
    if (this.server.listening) {
      this.logger.warn(
        'EarwaxModule bound to a transport that is already listening; its guard applies to new connections only.',
      );
    }
    this.guard = this.ownOptions.guard ?? bindings.guard ?? this.guard;
    if (!this.ownOptions.registry && this.live.size === 0) {
      this.registry = bindings.registry;
    }
    if (bindings.defaults) {
      this.settings = resolveSettings({
        ...bindings.defaults,
        ...this.ownOptions,
      });
      this.connectionHost.encoding = this.settings.encoding ?? 'utf8';
      this.connectionHost.maxOutputBuffer = this.settings.maxOutputBuffer;
    }
  }

  /**
   * Registers a new event type, so handlers can subscribe to it with
   * `@EarwaxEvent(name)` and code can fire it with {@link dispatchEvent}.
   *
   * @param name The new event type.
   * @returns `name`.
   * @throws EventNameError if `name` is already registered (or empty).
   */
  registerEventType(name: string): string {
    if (typeof name !== 'string' || name.length === 0) {
      throw new EventNameError(
        String(name),
        'An event type must be a non-empty string.',
      );
    }
    if (this.eventTypes.has(name)) {
      throw new EventNameError(
        name,
        `Event type "${name}" is already registered.`,
      );
    }
    this.eventTypes.add(name);
    return name;
  }

  /** The registered event types, built-in ones first. */
  getEventTypes(): string[] {
    return [...this.eventTypes];
  }

  /**
   * Runs the handlers of `name` for `ctx` now, in chain order, and tells
   * whether one of them returned `EVENT_HANDLED`. It does not wait behind
   * the connection's queued events, so a handler may await it for its own
   * connection. A handler that throws is reported like any other (exception
   * filters, then the log) and ends the chain with `false`.
   *
   * @param name A registered event type.
   * @param ctx The connection the event concerns.
   * @param data The payload handlers receive through `@Payload()`.
   * @returns Whether the event was handled.
   * @throws EventNameError (as a rejection) if `name` is not registered.
   */
  dispatchEvent(
    name: string,
    ctx: ConnectionContext,
    data?: unknown,
  ): Promise<boolean> {
    if (!this.eventTypes.has(name)) {
      return Promise.reject(
        new EventNameError(name, `Event type "${name}" is not registered.`),
      );
    }
    return this.process(ctx, name, data, false);
  }

  /**
   * Collects `@EarwaxEvent` handlers into ordered chains. Other patterns
   * (a plain `@EventPattern` or `@MessagePattern` without a transport) are
   * kept by the base class and never dispatched here.
   *
   * @internal
   */
  override addHandler(
    pattern: unknown,
    callback: MessageHandler,
    isEventHandler = false,
    extras: Record<string, unknown> = {},
  ): void {
    if (
      !isEventHandler ||
      typeof pattern !== 'string' ||
      !pattern.startsWith(EARWAX_PATTERN_PREFIX)
    ) {
      super.addHandler(pattern, callback, isEventHandler, extras);
      return;
    }
    const event = pattern.slice(EARWAX_PATTERN_PREFIX.length);
    const priority = Number(extras[EXTRA_PRIORITY] ?? 0);
    const entry: HandlerEntry = {
      handler: callback,
      priority: Number.isFinite(priority) ? priority : 0,
      seq: this.handlerSeq++,
      origin: String(extras[EXTRA_ORIGIN] ?? 'anonymous handler'),
    };
    // A new array each time: a chain being dispatched is never changed under
    // its feet (earwax_server re-ran handlers when a list changed mid-dispatch).
    const chain = [...(this.chains.get(event) ?? []), entry].sort(
      (a, b) => b.priority - a.priority || a.seq - b.seq,
    );
    this.chains.set(event, chain);
  }

  /**
   * The handlers of one event, in the order they run.
   *
   * @param name An event type.
   * @returns Each handler's `Class.method`.
   */
  getHandlerOrder(name: string): string[] {
    return (this.chains.get(name) ?? []).map((entry) => entry.origin);
  }

  /** @internal */
  override setOnProcessingStartHook(
    hook: Parameters<Server['setOnProcessingStartHook']>[0],
  ): void {
    this.hasProcessingHooks = true;
    super.setOnProcessingStartHook(hook);
  }

  /** @internal */
  override setOnProcessingEndHook(
    hook: Parameters<Server['setOnProcessingEndHook']>[0],
  ): void {
    this.hasProcessingHooks = true;
    super.setOnProcessingEndHook(hook);
  }

  /**
   * Starts listening. Calls `callback(err)` (so `app.listen()` rejects) when
   * an `@EarwaxEvent` handler names an unregistered event type, or when the
   * port cannot be bound (`EADDRINUSE`, a bad host, ...).
   *
   * @param callback Nest's completion callback.
   */
  listen(callback: (err?: unknown) => void): void {
    try {
      this.checkHandlerEvents();
    } catch (err) {
      callback(err);
      return;
    }
    const { host, port, backlog, ipv6Only, reusePort } = this.settings;
    const onError = (err: Error) => {
      this.server.off('listening', onListening);
      this._status$.next(EarwaxStatus.CLOSED);
      callback(err);
    };
    const onListening = () => {
      this.server.off('error', onError);
      this._status$.next(EarwaxStatus.LISTENING);
      const bound = this.address();
      this.logger.log(
        `Listening on ${bound ? formatHostPort(bound.address, bound.port) : `${host}:${port}`}`,
      );
      callback();
    };
    this.server.once('error', onError);
    this.server.once('listening', onListening);
    try {
      this.server.listen({ host, port, backlog, ipv6Only, reusePort });
    } catch (err) {
      // A bad port is thrown, not emitted.
      this.server.off('error', onError);
      this.server.off('listening', onListening);
      this._status$.next(EarwaxStatus.CLOSED);
      callback(err);
    }
  }

  /**
   * Closes gracefully: stops accepting, disconnects every connection with
   * reason `server_shutdown` (so `on_disconnect` runs for each), waits for
   * those handlers and for output to flush (up to `closeTimeout`), destroys
   * whatever is left, and resolves. Calling it again returns the same promise.
   */
  close(): Promise<void> {
    this.closePromise ??= this.shutdown();
    return this.closePromise;
  }

  /** The underlying `net.Server`. */
  unwrap<T = NetServer>(): T {
    return this.server as T;
  }

  /**
   * Subscribes to an event of the underlying `net.Server`; works before
   * `listen()`.
   *
   * @param event `listening`, `connection`, `close` or `error`.
   * @param callback The listener.
   */
  on<K extends keyof EarwaxServerEvents>(
    event: K,
    callback: EarwaxServerEvents[K],
  ): void {
    this.server.on(event, callback as (...args: unknown[]) => void);
  }

  private checkHandlerEvents(): void {
    for (const [event, chain] of this.chains) {
      if (this.eventTypes.has(event)) continue;
      const where = chain.map((entry) => entry.origin).join(', ');
      throw new EventNameError(
        event,
        `@EarwaxEvent('${event}') on ${where}: event type "${event}" is not registered. ` +
          `Register it with transport.registerEventType('${event}') or the "eventTypes" option.`,
      );
    }
  }

  private accept(socket: TrackedSocket): void {
    if (this.closing) {
      socket.destroy();
      return;
    }
    const ctx = new ConnectionContext(socket, this.connectionHost);
    socket[kContext] = ctx;
    this.live.add(ctx);
    socket.on('error', onSocketError);
    socket.on('close', onSocketClose);
    const { noDelay, keepAlive } = this.settings;
    if (noDelay) socket.setNoDelay(true);
    if (keepAlive !== false) socket.setKeepAlive(true, keepAlive);

    const guard = this.guard;
    if (!guard) {
      this.admit(ctx, true);
      return;
    }
    let verdict: boolean | Promise<boolean>;
    try {
      verdict = guard.canConnect(ctx);
    } catch (err) {
      this.block(ctx, 'guard_error', err);
      return;
    }
    if (isThenable(verdict)) {
      verdict.then(
        (allowed) => this.admit(ctx, allowed),
        (err: unknown) => this.block(ctx, 'guard_error', err),
      );
    } else {
      this.admit(ctx, verdict);
    }
  }

  private admit(ctx: ConnectionContext, allowed: boolean): void {
    const socket = ctx.socket;
    if (socket.destroyed || this.closing) {
      // Gone (or shutting down) while the guard decided: never admitted.
      socket.destroy();
      return;
    }
    if (allowed !== true) {
      this.block(ctx, 'refused');
      return;
    }
    ctx.state = 'open';
    this.registry.add(ctx);
    if (this.settings.framing === 'line') {
      ctx.framer = new LineFramer(this.settings.maxLineLength);
      socket.on('data', onLineData);
    } else if (this.settings.encoding) {
      const decoder = new StringDecoder(this.settings.encoding);
      socket.on('data', (chunk: Buffer) =>
        this.connectionHost.receive(ctx, decoder.write(chunk)),
      );
    } else {
      socket.on('data', onRawData);
    }
    socket.on('end', onSocketEnd);
    if (this.settings.logConnections) ctx.logger.log('Connection established.');
    this.enqueue(ctx, 'on_connect', undefined);
    socket.resume();
  }

  private block(
    ctx: ConnectionContext,
    reason: BlockReason,
    err?: unknown,
  ): void {
    const socket = ctx.socket;
    if (reason === 'guard_error') {
      ctx.logger.error(
        `ConnectionGuard failed; connection refused: ${describe(err)}`,
        err instanceof Error ? err.stack : undefined,
      );
    } else if (this.settings.logConnections) {
      ctx.logger.log('Connection blocked.');
    }
    if (socket.destroyed) return;
    void this.process(ctx, 'on_block', reason, false).then(() =>
      this.endSocket(ctx),
    );
  }

  /** Called by `ctx.disconnect()` and on server-side failures. */
  private disconnect(ctx: ConnectionContext, reason: DisconnectReason): void {
    const socket = ctx.socket;
    if (ctx.state === 'pending') {
      // A refused connection: it is being closed after on_block anyway.
      if (reason === 'slow_consumer') socket.destroy();
      else this.endSocket(ctx);
      return;
    }
    if (ctx.state !== 'open') return;
    if (reason === 'slow_consumer') {
      // Its output will never drain: flushing would wait forever.
      socket.destroy();
    } else {
      this.endSocket(ctx);
    }
    this.finish(ctx, reason);
  }

  /**
   * Moves an open connection to `closing`: out of the registry, with
   * `on_disconnect` queued. The only way a connection stops being open, so
   * `on_disconnect` runs exactly once per `on_connect`.
   */
  private finish(ctx: ConnectionContext, reason: DisconnectReason): void {
    if (ctx.state !== 'open') return;
    ctx.state = 'closing';
    ctx.disconnectReason = reason;
    this.registry.delete(ctx);
    if (this.settings.logConnections) {
      ctx.logger.log(`Disconnected (${reason}).`);
    }
    const framer = ctx.framer;
    if (reason === 'client_closed') {
      // A clean close keeps everything the client sent, in order.
      const rest = framer?.flush();
      if (rest && this.settings.deliverPartialLineOnEnd) {
        this.enqueue(ctx, 'on_data', this.decodeLine(rest, 0, rest.length));
      }
    } else {
      ctx.queue = null;
      framer?.halt();
    }
    this.enqueue(ctx, 'on_disconnect', reason);
  }

  /** After `on_disconnect` has run: close our side, and forget the context. */
  private finalize(ctx: ConnectionContext): void {
    ctx.state = 'closed';
    ctx.queue = null;
    ctx.framer = null;
    this.endSocket(ctx);
    this.settle(ctx);
  }

  /** Flushes and closes our side; destroys the socket if the peer lingers. */
  private endSocket(ctx: ConnectionContext): void {
    const socket = ctx.socket;
    if (socket.destroyed) {
      this.settle(ctx);
      return;
    }
    // Input is read and thrown away (the connection is no longer open), so a
    // client still sending can finish, read what we sent, and see our FIN;
    // one that never stops is destroyed when the linger time runs out.
    socket.resume();
    if (!socket.writableEnded) socket.end();
    if (!ctx.lingerTimer) {
      ctx.lingerTimer = setTimeout(
        () => socket.destroy(),
        this.settings.lingerTimeout,
      );
      ctx.lingerTimer.unref();
    }
  }

  /** Forgets a context once its socket is closed and its events are done. */
  private settle(ctx: ConnectionContext): void {
    if (!ctx.socket.destroyed) return;
    if (ctx.state === 'open' || ctx.state === 'closing') return;
    if (!this.live.delete(ctx)) return;
    if (ctx.lingerTimer) clearTimeout(ctx.lingerTimer);
    if (this.live.size === 0) this.onLiveEmpty?.();
  }

  private decodeLine(
    chunk: Buffer,
    start: number,
    end: number,
  ): Buffer | string {
    const encoding = this.settings.encoding;
    if (encoding) return chunk.toString(encoding, start, end);
    // A view, not a copy: socket chunks are never reused by Node.
    return start === 0 && end === chunk.length
      ? chunk
      : chunk.subarray(start, end);
  }

  private lineTooLong(ctx: ConnectionContext): void {
    const { maxLineLength, overlongLinePolicy, overlongLineMessage } =
      this.settings;
    ctx.logger.warn(
      `Line longer than ${maxLineLength} bytes: ${overlongLinePolicy === 'disconnect' ? 'disconnecting' : 'discarded'}.`,
    );
    if (overlongLineMessage !== false) {
      ctx.sendString(overlongLineMessage);
    }
    if (overlongLinePolicy === 'disconnect')
      this.disconnect(ctx, 'line_too_long');
  }

  /**
   * Queues an event for a connection; runs it at once if the connection is
   * idle. Reading pauses while too many events wait, so a flood slows the
   * client down through TCP instead of filling memory.
   */
  private enqueue(ctx: ConnectionContext, event: string, data: unknown): void {
    if (!ctx.busy) {
      ctx.busy = true;
      void this.process(ctx, event, data, true);
      return;
    }
    const queue = (ctx.queue ??= []);
    queue.push(event, data);
    // Two entries per event. Pause at maxQueuedEvents waiting, resume (in
    // drain) at half that, so a busy connection does not flap.
    if (
      !ctx.inputPaused &&
      queue.length >= this.settings.maxQueuedEvents * 2 &&
      ctx.state === 'open'
    ) {
      ctx.inputPaused = true;
      ctx.socket.pause();
    }
  }

  /**
   * Runs an event's handler chain for `ctx` and, with `drainQueue`, then the
   * connection's queued events one after another until none is left. One
   * async function for both, so a queued event costs no extra promise.
   *
   * @returns Whether the (last) event was handled; never rejects.
   */
  private async process(
    ctx: ConnectionContext,
    event: string,
    data: unknown,
    drainQueue: boolean,
  ): Promise<boolean> {
    for (;;) {
      let handled = false;
      const chain = this.chains.get(event);
      if (chain !== undefined) {
        for (let i = 0; i < chain.length; i++) {
          const entry = chain[i];
          let result: unknown;
          try {
            result = this.hasProcessingHooks
              ? await this.invokeWithHooks(entry.handler, data, ctx)
              : await entry.handler(data, ctx);
            if (isObservable(result)) {
              result = await lastValueFrom(result, { defaultValue: undefined });
            }
          } catch (err) {
            this.handlerFailed(entry, event, ctx, err);
            break;
          }
          if (result === EVENT_HANDLED) {
            handled = true;
            break;
          }
        }
      }
      if (!drainQueue) return handled;
      if (event === 'on_disconnect') {
        ctx.busy = false;
        this.finalize(ctx);
        return handled;
      }
      const queue = ctx.queue;
      if (queue === null || queue.length === 0) {
        ctx.busy = false;
        return handled;
      }
      event = queue.shift() as string;
      data = queue.shift();
      if (ctx.inputPaused && queue.length <= this.settings.maxQueuedEvents) {
        ctx.inputPaused = false;
        if (ctx.state === 'open') ctx.socket.resume();
      }
    }
  }

  /** Runs a handler between Nest's processing start and end hooks. */
  private invokeWithHooks(
    handler: MessageHandler,
    data: unknown,
    ctx: ConnectionContext,
  ): Promise<unknown> {
    return new Promise<unknown>((resolve, reject) => {
      // Our own once-only runner: Nest 11's Server has no
      // createProcessingEndHookRunner.
      let ended = false;
      const runEndHook = () => {
        if (ended) return;
        ended = true;
        this.onProcessingEndHook?.(this.transportId, ctx);
      };
      const run = async () => {
        try {
          let result: unknown = await handler(data, ctx);
          if (isObservable(result)) {
            result = await lastValueFrom(result, { defaultValue: undefined });
          }
          resolve(result);
        } catch (err) {
          reject(err);
        } finally {
          runEndHook();
        }
      };
      try {
        this.onProcessingStartHook(this.transportId, ctx, run);
      } catch (err) {
        reject(err);
      }
    });
  }

  private handlerFailed(
    entry: HandlerEntry,
    event: string,
    ctx: ConnectionContext,
    err: unknown,
  ): void {
    const disconnect =
      this.settings.handlerErrorPolicy === 'disconnect' && ctx.state === 'open';
    ctx.logger.warn(
      `${entry.origin} failed on ${event}: ${describe(err)}${disconnect ? '; disconnecting' : ''}`,
    );
    if (disconnect) this.disconnect(ctx, 'error');
  }

  private async shutdown(): Promise<void> {
    this.closing = true;
    this._status$.next(EarwaxStatus.CLOSING);
    const serverClosed = new Promise<void>((resolve) => {
      if (!this.server.listening) return resolve();
      this.server.close(() => resolve());
    });
    for (const ctx of [...this.live]) {
      if (ctx.state === 'pending') ctx.socket.destroy();
      else this.disconnect(ctx, 'server_shutdown');
    }
    if (this.live.size > 0) {
      let timer: NodeJS.Timeout | undefined;
      await new Promise<void>((resolve) => {
        this.onLiveEmpty = resolve;
        timer = setTimeout(resolve, this.settings.closeTimeout);
      });
      clearTimeout(timer);
      this.onLiveEmpty = undefined;
      for (const ctx of this.live) {
        ctx.logger.warn('Still busy at shutdown deadline; destroyed.');
        ctx.state = 'closed';
        ctx.socket.destroy();
      }
      this.live.clear();
    }
    await serverClosed;
    this._status$.next(EarwaxStatus.CLOSED);
  }
}

// Listeners shared by every socket (one function each, not one closure per
// connection): each finds its connection through the socket.
function contextOf(socket: TrackedSocket): ConnectionContext {
  return socket[kContext] as ConnectionContext;
}
function onLineData(this: TrackedSocket, chunk: Buffer): void {
  const ctx = contextOf(this);
  if (ctx.state === 'open') ctx.framer?.push(chunk, ctx);
}
function onRawData(this: TrackedSocket, chunk: Buffer): void {
  const ctx = contextOf(this);
  ctx.host.receive(ctx, chunk);
}
function onSocketEnd(this: TrackedSocket): void {
  const ctx = contextOf(this);
  ctx.host.ended(ctx);
}
function onSocketClose(this: TrackedSocket, hadError: boolean): void {
  const ctx = contextOf(this);
  ctx.host.closed(ctx, hadError);
}
function onSocketError(this: TrackedSocket, err: Error): void {
  const ctx = contextOf(this);
  ctx.host.failed(ctx, err);
}

function isThenable(value: unknown): value is PromiseLike<boolean> {
  return (
    typeof value === 'object' &&
    value !== null &&
    typeof (value as PromiseLike<unknown>).then === 'function'
  );
}

function describe(err: unknown): string {
  if (err instanceof Error) return err.message;
  if (typeof err === 'object' && err !== null && 'message' in err) {
    return String((err as { message: unknown }).message);
  }
  return String(err);
}

function formatHostPort(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}

function resolveSettings(options: EarwaxTransportOptions): Settings {
  const d = EARWAX_DEFAULTS;
  const maxLineLength = positive(
    options.maxLineLength,
    d.maxLineLength,
    'maxLineLength',
  );
  return {
    host: options.host ?? d.host,
    port: options.port ?? d.port,
    backlog: options.backlog ?? d.backlog,
    ipv6Only: options.ipv6Only ?? false,
    reusePort: options.reusePort ?? false,
    noDelay: options.noDelay ?? true,
    keepAlive: options.keepAlive ?? false,
    framing: options.framing ?? 'line',
    encoding: options.encoding,
    maxLineLength,
    overlongLinePolicy: options.overlongLinePolicy ?? 'disconnect',
    overlongLineMessage:
      options.overlongLineMessage ??
      `Line too long (at most ${maxLineLength} bytes).`,
    deliverPartialLineOnEnd: options.deliverPartialLineOnEnd ?? true,
    maxOutputBuffer: positive(
      options.maxOutputBuffer,
      d.maxOutputBuffer,
      'maxOutputBuffer',
    ),
    maxQueuedEvents: positive(
      options.maxQueuedEvents,
      d.maxQueuedEvents,
      'maxQueuedEvents',
    ),
    handlerErrorPolicy: options.handlerErrorPolicy ?? 'keep',
    logConnections: options.logConnections ?? true,
    closeTimeout: options.closeTimeout ?? d.closeTimeout,
    lingerTimeout: options.lingerTimeout ?? d.lingerTimeout,
  };
}

function positive(
  value: number | undefined,
  fallback: number,
  name: string,
): number {
  if (value === undefined) return fallback;
  if (!Number.isInteger(value) || value <= 0) {
    throw new RangeError(
      `EarwaxTransport option "${name}" must be a positive integer; got ${value}.`,
    );
  }
  return value;
}
