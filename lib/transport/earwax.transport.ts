import { Logger } from '@nestjs/common';
import {
  type CustomTransportStrategy,
  type MessageHandler,
  Server,
} from '@nestjs/microservices';
import type { AddressInfo, Server as NetServer, Socket } from 'node:net';
import { StringDecoder } from 'node:string_decoder';
import type { SecureContextOptions, TLSSocket } from 'node:tls';
import { constants as zlibConstants, createDeflate } from 'node:zlib';
import { BlockListService } from '../block-list/block-list.service.js';
import {
  ConnectionContext,
  type AnyConnectionContext,
  type ConnectionHost,
} from '../connection/connection-context.js';
import type { ConnectionGuard } from '../guard/connection.guard.js';
import { ConnectionRegistry } from '../registry/connection.registry.js';
import {
  BUILT_IN_EVENTS,
  EARWAX_PATTERN_PREFIX,
  EARWAX_TRANSPORT,
  EXTRA_METHOD,
  EXTRA_ORIGIN,
  EXTRA_PRIORITY,
} from '../earwax.constants.js';
import { EarwaxListener, type ListenerSink } from './earwax.listener.js';
import { EventNameError } from '../errors/event-name.error.js';
import { LineFramer } from '../framing/line-framer.js';
import { foreignProtocol } from '../framing/protocol-sniffer.js';
import { EarwaxMetrics } from '../metrics/earwax-metrics.js';
import type { DirectDispatcher } from '../pipeline/direct-dispatch.js';
import { HandlerChains } from '../pipeline/handler-chains.js';
import { isThenable } from '../utils/is-thenable.js';
import {
  ProxyHeaderParser,
  type ProxyParseResult,
} from '../proxy/proxy-protocol.js';
import type {
  BlockReason,
  DisconnectReason,
} from '../interfaces/connection.interface.js';
import type {
  EarwaxMessages,
  EarwaxTransportOptions,
} from '../interfaces/earwax-options.interface.js';
import { ConnectionLimits } from '../limits/connection-limits.js';
import { HandlerWatch } from '../limits/handler-watch.js';
import { IdleSweep } from '../limits/idle-sweep.js';
import { LogThrottle } from '../limits/log-throttle.js';
import {
  InputRateLimiter,
  type RateVerdict,
} from '../limits/input-rate-limiter.js';
import { TelnetSession, type TelnetSettings } from '../telnet/telnet-session.js';
import {
  resolveSettings,
  type ResolvedProxyProtocol,
  type TransportSettings,
} from './transport-settings.js';

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
  blockList?: BlockListService;
  defaults?: EarwaxTransportOptions;
  metrics?: EarwaxMetrics;
  /** Calls handlers that Nest's pipeline has nothing to apply to directly. */
  dispatcher?: DirectDispatcher;
}

const kContext = Symbol('earwax:context');
/** Refusals logged only with `logConnections`, at `log` level. */
const QUIET_REFUSALS: ReadonlySet<BlockReason> = new Set<BlockReason>([
  'blocked',
  'refused',
]);
/** Queued events one connection handles before others get a turn. */
const FAIR_SHARE = 64;
/** Node's default `writableHighWaterMark` for sockets. */
const SOCKET_HIGH_WATER_MARK = 16 * 1024;
const BLOCK_MESSAGE: Partial<Record<BlockReason, keyof EarwaxMessages>> = {
  server_full: 'serverFull',
  blocked: 'blocked',
  too_many_connections: 'tooManyConnections',
  rate_limited: 'rateLimited',
};
type TrackedSocket = Socket & { [kContext]?: AnyConnectionContext };

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
  protected override readonly logger = new Logger(EarwaxTransport.name);

  private readonly listeners: readonly EarwaxListener[];
  private readonly ownOptions: EarwaxTransportOptions;
  private settings: TransportSettings;
  private guard: ConnectionGuard | undefined;
  private registry: ConnectionRegistry;
  private blocks: BlockListService;
  private limits: ConnectionLimits;
  private idleSweep: IdleSweep | undefined;
  /** When the transport started listening (MSSP's UPTIME). */
  private startedAt = Date.now();
  private readonly eventTypes = new Set<string>(BUILT_IN_EVENTS);
  private readonly handlers = new HandlerChains((origin, event, ctx, err) =>
    this.handlerFailed(origin, event, ctx, err),
  );
  private dispatcher: DirectDispatcher | undefined;
  /** Holds back repeated refusal logs (`refusalLogInterval`). */
  private refusalLog: LogThrottle | null = null;
  /** Every accepted connection whose socket has not closed. */
  private readonly live = new Set<AnyConnectionContext>();
  /**
   * Connections whose socket has closed (and released what it held) while
   * their events, `on_disconnect` last, still run.
   */
  private readonly ending = new Set<AnyConnectionContext>();
  private handlerWatch: HandlerWatch;
  /** This transport's counters, or the application's once bound. */
  private counters: EarwaxMetrics = new EarwaxMetrics().attach(this);
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
    // Handler failures are reported here, once, with the connection named.
    // Set, not declared: Nest 12's Server has this flag and Nest 11's has
    // not, so a declaration would need `override` on one and not the other.
    (
      this as { propagatesEventHandlerErrors?: boolean }
    ).propagatesEventHandlerErrors = true;
    if (
      options.listeners !== undefined &&
      (options.port !== undefined || options.tls !== undefined)
    ) {
      throw new RangeError(
        'EarwaxTransport: "port" and "tls" describe the one listener of a transport without "listeners"; with "listeners", give each listener its own.',
      );
    }
    this.ownOptions = options;
    this.settings = resolveSettings(options);
    this.guard = options.guard;
    this.registry = options.registry ?? new ConnectionRegistry();
    this.blocks = new BlockListService(this.registry);
    this.addConfiguredBans(this.blocks, this.settings.blockList);
    this.limits = this.createLimits();
    this.refusalLog = this.createRefusalLog();
    this.handlerWatch = this.createHandlerWatch();
    for (const name of options.eventTypes ?? []) this.registerEventType(name);
    // eslint-disable-next-line @typescript-eslint/no-this-alias
    const transport = this;
    // One object for every connection of this transport: the callbacks its
    // sockets need, without a closure per connection.
    this.connectionHost = {
      encoding: this.settings.encoding ?? 'utf8',
      maxOutputBuffer: this.settings.maxOutputBuffer,
      checkEveryWrite: this.settings.maxOutputBuffer < SOCKET_HIGH_WATER_MARK,
      get registry() {
        return transport.registry;
      },
      awaitDrain: (ctx) => {
        ctx.drainTimer = setTimeout(
          onDrainTimeout,
          this.settings.writeTimeout,
          ctx,
        );
        ctx.out.once('drain', onSocketDrain);
      },
      disconnect: (ctx, reason) => this.disconnect(ctx, reason),
      firstInput: (ctx, chunk) => this.sniff(ctx, chunk),
      receive: (ctx, data) => {
        if (ctx.state !== 'open') return;
        ctx.inputSeen = true;
        this.counters.linesReceived++;
        if (!this.withinRate(ctx)) return;
        this.enqueue(ctx, 'on_data', data);
      },
      receiveLine: (ctx, chunk, start, end) => {
        // Only whole lines keep a connection alive: a client trickling bytes
        // that never end a line (slowloris) is idle.
        ctx.inputSeen = true;
        this.counters.linesReceived++;
        // Its bytes were taken with the chunk they came in.
        if (!this.withinRate(ctx)) return;
        this.enqueue(ctx, 'on_data', this.decodeLine(ctx, chunk, start, end));
      },
      lineOverflow: (ctx) => this.lineTooLong(ctx),
      overRate: (ctx, verdict) => this.overRate(ctx, verdict),
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
    const sink: ListenerSink = {
      accepted: (socket, listener) => this.accept(socket, listener),
      secured: (tls, raw) => this.secured(tls, raw),
      handshakeFailed: (err, tls, raw) => this.handshakeFailed(err, tls, raw),
    };
    this.listeners = this.settings.listeners.map((listener) => {
      const created = new EarwaxListener(listener, sink);
      created.server.on('error', (err) => {
        if (created.listening) this.logger.error(err);
      });
      return created;
    });
  }

  /** Whether a listener of this transport speaks TLS. */
  get isTls(): boolean {
    return this.listeners.some((listener) => listener.isTls);
  }

  /** The names of this transport's listeners, in order. */
  get listenerNames(): string[] {
    return this.listeners.map((listener) => listener.name);
  }

  /**
   * Replaces the TLS certificate and key (or any secure-context option) for
   * new connections, without dropping the ones already open: how a renewed
   * certificate is put in service.
   *
   * @param options What `tls.createSecureContext()` takes (`key`, `cert`,
   *   `ca`, ...).
   * @param listener The TLS listener to change; every TLS listener when
   *   omitted.
   * @throws TypeError when there is no such TLS listener.
   */
  setSecureContext(options: SecureContextOptions, listener?: string): void {
    const targets = this.listeners.filter(
      (candidate) =>
        candidate.isTls &&
        (listener === undefined || candidate.name === listener),
    );
    if (targets.length === 0) {
      throw new TypeError(
        listener === undefined
          ? 'setSecureContext(): this EarwaxTransport has no TLS listener.'
          : `setSecureContext(): this EarwaxTransport has no TLS listener named "${listener}".`,
      );
    }
    for (const target of targets) target.setSecureContext(options);
    this.logger.log(
      `TLS secure context replaced for new connections (${targets.map((t) => t.name).join(', ')}).`,
    );
  }

  /** The live connections of this transport's application. */
  get connections(): ConnectionRegistry {
    return this.registry;
  }

  /**
   * The block list this transport checks: the application's
   * `BlockListService` under `EarwaxModule`, else the transport's own.
   */
  get blockList(): BlockListService {
    return this.blocks;
  }

  /**
   * The counters this transport feeds: the application's `EarwaxMetrics`
   * under `EarwaxModule`, else the transport's own.
   */
  get metrics(): EarwaxMetrics {
    return this.counters;
  }

  /**
   * The address a listener is bound to, once listening (read the real port
   * here after listening on port 0).
   *
   * @param listener A listener's name; the first listener when omitted.
   * @returns `null` before listening, after closing, or for an unknown name.
   */
  address(listener?: string): AddressInfo | null {
    const found =
      listener === undefined
        ? this.listeners[0]
        : this.listeners.find((candidate) => candidate.name === listener);
    return found?.address() ?? null;
  }

  /**
   * Receives the guard and registry of the application's `EarwaxModule`.
   * Options given to the constructor win over module defaults.
   *
   * @internal
   */
  bind(bindings: EarwaxBindings): void {
    if (this.listeners.some((listener) => listener.listening)) {
      this.logger.warn(
        'EarwaxModule bound to a transport that is already listening; its guard applies to new connections only.',
      );
    }
    this.guard = this.ownOptions.guard ?? bindings.guard ?? this.guard;
    this.dispatcher = bindings.dispatcher ?? this.dispatcher;
    if (!this.ownOptions.registry && this.live.size === 0) {
      this.registry = bindings.registry;
    }
    if (
      bindings.metrics &&
      bindings.metrics !== this.counters &&
      this.live.size === 0
    ) {
      // Only while nothing is held: a held socket is released into the
      // counters it was opened in.
      this.counters.detach(this);
      this.counters = bindings.metrics.attach(this);
    }
    if (bindings.defaults) {
      this.settings = resolveSettings({
        ...bindings.defaults,
        ...this.ownOptions,
      });
      // The same listeners (their number and TLS are the transport's own);
      // what they inherit may come from the defaults.
      this.settings.listeners.forEach((resolved, index) => {
        this.listeners[index].settings = resolved;
      });
      const host = this.connectionHost;
      host.encoding = this.settings.encoding ?? 'utf8';
      host.maxOutputBuffer = this.settings.maxOutputBuffer;
      host.checkEveryWrite =
        this.settings.maxOutputBuffer < SOCKET_HIGH_WATER_MARK;
      if (this.live.size === 0 && this.ending.size === 0) {
        this.limits = this.createLimits();
        this.handlerWatch = this.createHandlerWatch();
      }
      this.refusalLog?.flush();
      this.refusalLog = this.createRefusalLog();
    }
    if (bindings.blockList && bindings.blockList !== this.blocks) {
      this.blocks.onModuleDestroy();
      this.blocks = bindings.blockList;
      this.addConfiguredBans(this.blocks, this.settings.blockList);
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
    ctx: AnyConnectionContext,
    data?: unknown,
  ): Promise<boolean> {
    if (!this.eventTypes.has(name)) {
      return Promise.reject(
        new EventNameError(name, `Event type "${name}" is not registered.`),
      );
    }
    const handled = this.handlers.run(ctx, name, data);
    return handled === true || handled === false
      ? Promise.resolve(handled)
      : handled;
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
    this.handlers.add(
      event,
      callback,
      Number.isFinite(priority) ? priority : 0,
      String(extras[EXTRA_ORIGIN] ?? 'anonymous handler'),
      (extras as Record<PropertyKey, unknown>)[EXTRA_METHOD],
    );
  }

  /**
   * The handlers of one event, in the order they run.
   *
   * @param name An event type.
   * @returns Each handler's `Class.method`.
   */
  getHandlerOrder(name: string): string[] {
    return this.handlers.order(name);
  }

  /** @internal */
  override setOnProcessingStartHook(
    hook: Parameters<Server['setOnProcessingStartHook']>[0],
  ): void {
    super.setOnProcessingStartHook(hook);
    this.useProcessingHooks();
  }

  /** @internal */
  override setOnProcessingEndHook(
    hook: Parameters<Server['setOnProcessingEndHook']>[0],
  ): void {
    super.setOnProcessingEndHook(hook);
    this.useProcessingHooks();
  }

  /** Runs every handler between Nest's processing hooks from now on. */
  private useProcessingHooks(): void {
    this.handlers.hooks ??= {
      start: (ctx, run) =>
        this.onProcessingStartHook(this.transportId, ctx, run),
      end: (ctx) => this.onProcessingEndHook?.(this.transportId, ctx),
    };
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
    this.compileHandlers();
    void this.listenAll().then(
      () => callback(),
      (err: unknown) => {
        this._status$.next(EarwaxStatus.CLOSED);
        callback(err);
      },
    );
  }

  private async listenAll(): Promise<void> {
    try {
      for (const listener of this.listeners) {
        const bound = await listener.listen();
        const { name, host, port, tls, proxyProtocol, telnet } =
          listener.settings;
        const traits = [
          tls !== null ? 'TLS' : null,
          proxyProtocol !== null ? 'PROXY protocol' : null,
          telnet !== null ? 'telnet' : null,
        ].filter((trait) => trait !== null);
        this.logger.log(
          `Listening on ${bound ? formatHostPort(bound.address, bound.port) : `${host}:${port}`}` +
            (this.listeners.length > 1 || traits.length > 0
              ? ` (${[name, ...traits].join(', ')})`
              : ''),
        );
      }
    } catch (err) {
      // All or none: a listener that did bind is closed again.
      await Promise.all(this.listeners.map((listener) => listener.close()));
      throw err;
    }
    this.startedAt = Date.now();
    this.idleSweep ??= new IdleSweep(
      this.settings.idleTimeout,
      this.settings.firstInputTimeout,
      (ctx, why) => this.dropIdle(ctx, why),
    );
    this.idleSweep.start(this.live);
    this.handlerWatch.start();
    this._status$.next(EarwaxStatus.LISTENING);
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

  /**
   * The first listener's `net.Server` (a TLS listener's too: TLS starts
   * after admission, on the accepted TCP socket).
   */
  unwrap<T = NetServer>(): T {
    return this.listeners[0].server as T;
  }

  /**
   * Subscribes to an event of every listener's `net.Server`; works before
   * `listen()`. A `connection` is a TCP connection, before any admission
   * check, PROXY header or TLS handshake.
   *
   * @param event `listening`, `connection`, `close` or `error`.
   * @param callback The listener.
   */
  on<K extends keyof EarwaxServerEvents>(
    event: K,
    callback: EarwaxServerEvents[K],
  ): void {
    for (const listener of this.listeners) {
      listener.server.on(event, callback as (...args: unknown[]) => void);
    }
  }

  /**
   * Lets each handler that Nest's pipeline has nothing to apply to skip it
   * (see `NestDirectDispatcher`); says at debug level which ones do.
   */
  private compileHandlers(): void {
    this.handlers.compile(this.dispatcher, (origin, event, direct) =>
      this.logger.debug(
        `${origin} handles ${event} ${direct ? 'directly (no guard, interceptor, pipe or filter applies)' : "through Nest's pipeline"}.`,
      ),
    );
  }

  private checkHandlerEvents(): void {
    for (const [event, origins] of this.handlers.events()) {
      if (this.eventTypes.has(event)) continue;
      const where = origins.join(', ');
      throw new EventNameError(
        event,
        `@EarwaxEvent('${event}') on ${where}: event type "${event}" is not registered. ` +
          `Register it with transport.registerEventType('${event}') or the "eventTypes" option.`,
      );
    }
  }

  private accept(socket: TrackedSocket, listener: EarwaxListener): void {
    if (this.closing) {
      socket.destroy();
      return;
    }
    // Node asks the kernel for the peer's address (getpeername) on first
    // use, here, as early as it can: libuv's accept() does not keep it. A
    // connection the peer reset while it waited in the accept queue has
    // none left, and nothing to serve: it is closed before any admission
    // check, so that it is never logged, limited or rate-counted under an
    // empty address (a reset storm would share one bucket).
    if (socket.remoteAddress === undefined) {
      // Accepted, never admitted nor refused, like a failed TLS handshake.
      this.counters.accepted++;
      this.logger.debug('A connection reset before it was accepted: closed.');
      socket.on('error', ignoreError);
      socket.destroy();
      return;
    }
    const ctx = new ConnectionContext(socket, this.connectionHost, listener);
    socket[kContext] = ctx;
    this.live.add(ctx);
    this.counters.opened(ctx);
    socket.on('error', onSocketError);
    socket.on('close', onSocketClose);
    const { noDelay, keepAlive } = this.settings;
    if (noDelay) socket.setNoDelay(true);
    if (keepAlive !== false) socket.setKeepAlive(true, keepAlive);

    const proxy = listener.settings.proxyProtocol;
    if (proxy !== null) {
      this.readProxyHeader(ctx, proxy);
      return;
    }
    this.checkAdmission(ctx);
  }

  /**
   * Past the checks that need no handshake: a TLS listener's connection
   * starts its handshake now (so a refused address never cost one), any
   * other goes to the guard.
   */
  private passChecks(ctx: AnyConnectionContext, late: boolean): void {
    if (!ctx.tlsPending) {
      this.askGuard(ctx, late);
      return;
    }
    const socket = ctx.socket;
    if (socket.destroyed || this.closing) {
      socket.destroy();
      return;
    }
    ctx.via?.handshake(socket);
  }

  /** A TLS listener's handshake is done: the guard decides next. */
  private secured(tls: TLSSocket, raw: Socket | undefined): void {
    const ctx = raw ? (raw as TrackedSocket)[kContext] : undefined;
    if (ctx === undefined || ctx.state !== 'pending' || !ctx.tlsPending) {
      tls.destroy();
      return;
    }
    // The TLS socket carries the connection from now on; the TCP socket's
    // listeners go, so its close is not seen twice.
    ctx.socket.off('error', onSocketError);
    ctx.socket.off('close', onSocketClose);
    ctx.secure(tls);
    (tls as TrackedSocket)[kContext] = ctx;
    tls.on('error', onSocketError);
    tls.on('close', onSocketClose);
    this.askGuard(ctx, true);
  }

  /** Plaintext on the TLS port, a scanner, a silent client: this one only. */
  private handshakeFailed(
    err: Error,
    tls: TLSSocket,
    raw: Socket | undefined,
  ): void {
    const ctx = raw ? (raw as TrackedSocket)[kContext] : undefined;
    const reason =
      (err as NodeJS.ErrnoException).code === 'ERR_TLS_HANDSHAKE_TIMEOUT'
        ? 'timed out'
        : `failed: ${err.message}`;
    (ctx?.logger ?? this.logger).warn(`TLS handshake ${reason}; closed.`);
    // Node leaves a timed-out one open; the TCP socket's close then
    // releases the connection's place.
    tls.destroy();
    raw?.destroy();
  }

  /**
   * A listener behind a proxy: the connection must come from a trusted
   * proxy and start with a PROXY header, which names the real client before
   * any admission check runs.
   */
  private readProxyHeader(
    ctx: AnyConnectionContext,
    settings: ResolvedProxyProtocol,
  ): void {
    const socket = ctx.socket;
    const from = ctx.address;
    const family = from.family === 'IPv6' ? 'ipv6' : 'ipv4';
    if (!settings.trusted.check(from.address, family)) {
      ctx.logger.warn(
        'Connection from an address that is not a trusted proxy, on a PROXY-protocol listener: closed.',
      );
      socket.destroy();
      return;
    }
    const parser = new ProxyHeaderParser({ versions: settings.versions });
    const timer = setTimeout(() => {
      socket.off('data', onData);
      ctx.logger.warn(
        `No complete PROXY header within ${settings.headerTimeout} ms: closed.`,
      );
      socket.destroy();
    }, settings.headerTimeout);
    // A proxy's health check connects and closes without a header: no
    // warning for it, and no timer left behind.
    const onEarlyClose = () => {
      clearTimeout(timer);
      ctx.logger.debug('Closed before a complete PROXY header.');
    };
    socket.once('close', onEarlyClose);
    const onData = (chunk: Buffer) => {
      let result: ProxyParseResult;
      try {
        result = parser.push(chunk);
      } catch (err) {
        clearTimeout(timer);
        socket.off('close', onEarlyClose);
        socket.off('data', onData);
        ctx.logger.warn(`${describe(err)}: closed.`);
        socket.destroy();
        return;
      }
      if (result.state === 'incomplete') return;
      clearTimeout(timer);
      socket.off('close', onEarlyClose);
      socket.off('data', onData);
      socket.pause();
      // Whatever followed the header in its packet is the client's.
      if (result.rest.length > 0) socket.unshift(result.rest);
      const { header } = result;
      if (
        header.command === 'PROXY' &&
        header.source !== undefined &&
        (header.family === 'IPv4' || header.family === 'IPv6')
      ) {
        ctx.setProxiedRemote(
          header.source.address,
          header.source.port,
          header.family,
        );
      }
      if (this.closing) {
        socket.destroy();
        return;
      }
      this.checkAdmission(ctx);
    };
    socket.on('data', onData);
    socket.resume();
  }

  /** The admission checks, cheapest and most certain first. */
  private checkAdmission(ctx: AnyConnectionContext): void {
    const { maxConnections } = this.settings;
    // Every held socket counts, under the client's (real) address.
    const ip = ctx.hostname;
    const withinIpLimit = this.limits.hold(ip);
    ctx.held = true;
    if (this.live.size > maxConnections) {
      this.block(ctx, 'server_full');
    } else if (this.blocks.isBlocked(ip)) {
      this.block(ctx, 'blocked');
    } else if (!withinIpLimit) {
      this.block(ctx, 'too_many_connections');
    } else {
      const withinRate = this.limits.consume(ip);
      if (withinRate === true) {
        this.passChecks(ctx, false);
      } else {
        void withinRate.then((allowed) => {
          if (allowed) this.passChecks(ctx, true);
          else this.block(ctx, 'rate_limited');
        });
      }
    }
  }

  private askGuard(ctx: AnyConnectionContext, late: boolean): void {
    if (ctx.socket.destroyed || this.closing) {
      ctx.socket.destroy();
      return;
    }
    const guard = this.guard;
    if (!guard) {
      this.admit(ctx, true, late);
      return;
    }
    let verdict: boolean | Promise<boolean>;
    try {
      verdict = guard.canConnect(ctx as ConnectionContext);
    } catch (err) {
      this.block(ctx, 'guard_error', err);
      return;
    }
    if (isThenable<boolean>(verdict)) {
      verdict.then(
        (allowed) => this.admit(ctx, allowed, true),
        (err: unknown) => this.block(ctx, 'guard_error', err),
      );
    } else {
      this.admit(ctx, verdict, late);
    }
  }

  private admit(
    ctx: AnyConnectionContext,
    allowed: boolean,
    late: boolean,
  ): void {
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
    // Banned while an async limiter or guard was deciding: a ban kicks only
    // admitted connections, so it is checked again here.
    if (late && this.blocks.isBlocked(ctx.hostname)) {
      this.block(ctx, 'blocked');
      return;
    }
    ctx.state = 'open';
    this.registry.add(ctx);
    this.counters.admitted++;
    const inputRate = this.settings.inputRate;
    if (inputRate !== null) {
      ctx.rateLimiter = new InputRateLimiter(inputRate, Date.now());
    }
    const telnet = (ctx.via ?? this.listeners[0]).settings.telnet;
    if (telnet !== null) {
      this.startTelnet(ctx, telnet);
    } else if (this.settings.framing === 'line') {
      ctx.framer = new LineFramer(this.settings.maxLineLength);
      socket.on('data', onLineData);
    } else if (this.settings.encoding) {
      const decoder = new StringDecoder(this.settings.encoding);
      socket.on('data', (chunk: Buffer) => {
        if (ctx.state !== 'open' || !takeChunk(ctx, chunk)) return;
        const text = decoder.write(chunk);
        // A chunk ending mid-character decodes to nothing: no empty event.
        if (text.length > 0) this.connectionHost.receive(ctx, text);
      });
    } else {
      socket.on('data', onRawData);
    }
    socket.on('end', onSocketEnd);
    if (this.settings.logConnections) ctx.logger.log('Connection established.');
    this.enqueue(ctx, 'on_connect', undefined);
    socket.resume();
  }

  /**
   * Telnet mode: the socket's bytes go through the connection's telnet
   * session, whose clean data goes on to the framer (or to raw `on_data`).
   */
  private startTelnet(ctx: AnyConnectionContext, settings: TelnetSettings) {
    const line = this.settings.framing === 'line';
    if (line) ctx.framer = new LineFramer(this.settings.maxLineLength);
    let decoder: StringDecoder | undefined;
    let decoderEncoding: BufferEncoding | undefined;
    // No compression under encryption (MCCP2 over TLS invites CRIME-style
    // attacks, and TLS links are rarely the slow ones).
    if (settings.mccp2 && ctx.via?.isTls) {
      settings = { ...settings, mccp2: false };
    }
    const session = new TelnetSession(settings, {
      data: (chunk, start, end) => {
        const bytes =
          start === 0 && end === chunk.length
            ? chunk
            : chunk.subarray(start, end);
        if (line) {
          ctx.framer?.push(bytes, ctx);
        } else if (this.settings.encoding) {
          // The client may agree to another charset mid-stream.
          const encoding = ctx.encoding;
          if (decoder === undefined || decoderEncoding !== encoding) {
            decoder = new StringDecoder(encoding);
            decoderEncoding = encoding;
          }
          const text = decoder.write(bytes);
          if (text.length > 0) this.connectionHost.receive(ctx, text);
        } else {
          this.connectionHost.receive(ctx, bytes);
        }
      },
      // Every command, negotiation and subnegotiation takes an event from
      // the input rate, as a line does: a negotiation flood is dropped, then
      // disconnected, like a line flood, and a dropped one is not answered.
      allow: () => ctx.state === 'open' && this.withinRate(ctx),
      overBudget: () => {
        if (ctx.state !== 'open') return;
        ctx.logger.warn(
          'Telnet answers would pass twice the input: disconnecting (flood).',
        );
        const message = this.settings.messages.flood;
        if (message !== false) ctx.sendString(message);
        this.disconnect(ctx, 'flood');
      },
      emit: (event, payload) => {
        if (ctx.state !== 'open') return;
        ctx.inputSeen = true;
        // The subnegotiation it comes from took its event (allow()).
        this.enqueue(ctx, event, payload);
      },
      msspStatus: () => ({
        PLAYERS: String(
          settings.mssp === false || settings.mssp.players === undefined
            ? this.registry.size
            : settings.mssp.players(),
        ),
        UPTIME: String(Math.floor(this.startedAt / 1000)),
        ...this.msspPorts(),
      }),
      get logger() {
        return ctx.logger;
      },
      get out() {
        return ctx.out;
      },
      write: (bytes) => ctx.writeProtocol(bytes),
      startCompression: () => this.compress(ctx),
    });
    ctx.telnet = session;
    ctx.socket.on('data', onTelnetData);
    session.start();
  }

  /**
   * MCCP2: from now on the connection's output goes through zlib, each write
   * flushed (Z_SYNC_FLUSH) so a line is never held back, the dictionary kept
   * between writes so repeated text still compresses.
   */
  private compress(ctx: AnyConnectionContext): void {
    const socket = ctx.socket;
    if (ctx.out !== socket || !socket.writable) return;
    // A 4 KiB window and small hash tables: about 48 KiB of zlib state per
    // connection instead of 256 KiB; any client's inflater reads it.
    const deflate = createDeflate({
      flush: zlibConstants.Z_SYNC_FLUSH,
      windowBits: 12,
      memLevel: 6,
    });
    (deflate as unknown as TrackedSocket)[kContext] = ctx;
    deflate.on('error', (err: Error) => {
      ctx.logger.warn(`Compression failed (${err.message}): disconnecting.`);
      abortSocket(ctx);
    });
    deflate.pipe(socket);
    ctx.out = deflate;
    ctx.logger.debug('MCCP2 compression on.');
  }

  /**
   * MSSP's PORT (plain telnet listeners) and SSL (TLS telnet listeners),
   * once bound: where a MUD crawler or client can reach the game. A raw
   * listener (telnet off, for bots) is not advertised.
   */
  private msspPorts(): Record<string, string[]> {
    const plain: string[] = [];
    const secure: string[] = [];
    for (const listener of this.listeners) {
      const port = listener.address()?.port;
      if (port !== undefined && listener.settings.telnet !== null) {
        (listener.isTls ? secure : plain).push(String(port));
      }
    }
    const ports: Record<string, string[]> = {};
    if (plain.length > 0) ports.PORT = plain;
    if (secure.length > 0) ports.SSL = secure;
    return ports;
  }

  private block(
    ctx: AnyConnectionContext,
    reason: BlockReason,
    err?: unknown,
  ): void {
    const socket = ctx.socket;
    this.counters.countRefusal(reason);
    const quiet =
      this.refusalLog !== null &&
      (this.settings.logConnections || !QUIET_REFUSALS.has(reason)) &&
      !this.refusalLog.allow(
        reason === 'server_full' || reason === 'guard_error'
          ? reason
          : `${reason}|${ctx.hostname}`,
      );
    switch (quiet ? 'counted' : reason) {
      case 'counted':
        break;
      case 'guard_error':
        ctx.logger.error(
          `ConnectionGuard failed; connection refused: ${describe(err)}`,
          err instanceof Error ? err.stack : undefined,
        );
        break;
      case 'server_full':
        ctx.logger.warn(
          `Connection refused (server_full): ${this.settings.maxConnections} connections held.`,
        );
        break;
      case 'too_many_connections':
        ctx.logger.warn(
          `Connection refused (too_many_connections): ${this.limits.heldBy(ctx.hostname) - 1} held from ${ctx.hostname}, at most ${String(this.settings.maxConnectionsPerIp)}.`,
        );
        break;
      case 'rate_limited':
        ctx.logger.warn(
          `Connection refused (rate_limited): ${ctx.hostname} opens connections too fast.`,
        );
        break;
      default:
        if (this.settings.logConnections) {
          ctx.logger.log(`Connection refused (${reason}).`);
        }
    }
    if (socket.destroyed) return;
    const handled = this.handlers.run(ctx, 'on_block', reason);
    if (handled === true || handled === false) {
      this.refuse(ctx, reason, handled);
      return;
    }
    const pending = this.handlerWatch.wait(ctx, 'on_block');
    void handled.then((stopped) => {
      if (ctx.waiting !== pending) return;
      this.handlerWatch.done(ctx);
      this.refuse(ctx, reason, stopped);
    });
  }

  /** After `on_block`: the refusal message (unless handled), then the end. */
  private refuse(
    ctx: AnyConnectionContext,
    reason: BlockReason,
    handled: boolean,
  ): void {
    // A handler that returns EVENT_HANDLED has said what it wanted to.
    const key = BLOCK_MESSAGE[reason];
    const message = key && !handled ? this.settings.messages[key] : false;
    if (message !== false) ctx.sendString(message);
    this.endSocket(ctx);
  }

  /** Called by `ctx.disconnect()` and on server-side failures. */
  private disconnect(
    ctx: AnyConnectionContext,
    reason: DisconnectReason,
  ): void {
    if (ctx.state === 'pending') {
      // A refused connection: it is being closed after on_block anyway.
      if (reason === 'slow_consumer') abortSocket(ctx);
      else this.endSocket(ctx);
      return;
    }
    if (ctx.state !== 'open') return;
    if (reason === 'slow_consumer') {
      // Its output will never drain: flushing would wait forever.
      abortSocket(ctx);
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
  private finish(ctx: AnyConnectionContext, reason: DisconnectReason): void {
    if (ctx.state !== 'open') return;
    ctx.state = 'closing';
    ctx.disconnectReason = reason;
    this.registry.delete(ctx);
    this.counters.countDisconnection(reason);
    if (this.settings.logConnections) {
      ctx.logger.log(`Disconnected (${reason}).`);
    }
    const framer = ctx.framer;
    if (reason === 'client_closed') {
      // A clean close keeps everything the client sent, in order.
      const rest = framer?.flush();
      if (rest && this.settings.deliverPartialLineOnEnd) {
        this.counters.linesReceived++;
        this.enqueue(
          ctx,
          'on_data',
          this.decodeLine(ctx, rest, 0, rest.length),
        );
      }
    } else {
      ctx.queue = null;
      framer?.halt();
    }
    this.enqueue(ctx, 'on_disconnect', reason);
  }

  /** After `on_disconnect` has run: close our side, and forget the context. */
  private finalize(ctx: AnyConnectionContext): void {
    ctx.state = 'closed';
    ctx.queue = null;
    ctx.framer = null;
    const socket = ctx.socket;
    if (
      socket.readableEnded &&
      ctx.out === socket &&
      socket.writableLength === 0 &&
      !socket.destroyed
    ) {
      // The client has closed its side and nothing is left to flush: closed
      // now (a FIN; the kernel still delivers what it holds), so that its
      // places are given back with on_disconnect, not a turn later, and a
      // player who leaves can come straight back.
      socket.destroy();
    }
    this.endSocket(ctx);
    this.settle(ctx);
  }

  /** Flushes and closes our side; destroys the socket if the peer lingers. */
  private endSocket(ctx: AnyConnectionContext): void {
    const socket = ctx.socket;
    if (socket.destroyed) {
      this.settle(ctx);
      return;
    }
    // Input is read and thrown away (the connection is no longer open), so a
    // client still sending can finish, read what we sent, and see our FIN;
    // one that never stops is destroyed when the linger time runs out.
    socket.resume();
    const out = ctx.out;
    if (out !== socket) {
      // The compressed stream ends first; the pipe then ends the socket.
      if (!out.writableEnded) out.end();
    } else if (!socket.writableEnded) {
      socket.end();
    }
    if (!ctx.lingerTimer) {
      const { lingerTimeout, writeTimeout } = this.settings;
      // Output still queued gets the slow-consumer deadline to flush first.
      const wait =
        socket.writableLength > 0 || out.writableLength > 0
          ? writeTimeout + lingerTimeout
          : lingerTimeout;
      ctx.lingerTimer = setTimeout(abortSocket, wait, ctx);
      ctx.lingerTimer.unref();
    }
  }

  /**
   * Once the socket has closed: releases what it held at once (its place
   * under the connection limits, timers, compressor), whatever its handlers
   * are doing, and forgets the connection once its events are done too.
   */
  private settle(ctx: AnyConnectionContext): void {
    if (!ctx.socket.destroyed) return;
    const eventsLeft = ctx.state === 'open' || ctx.state === 'closing';
    if (this.live.delete(ctx)) {
      this.releaseResources(ctx);
      if (eventsLeft) {
        this.ending.add(ctx);
        return;
      }
    } else if (eventsLeft || !this.ending.delete(ctx)) {
      return;
    }
    if (this.live.size === 0 && this.ending.size === 0) this.onLiveEmpty?.();
  }

  /**
   * Stops waiting for the connection's running handler (its late result is
   * ignored) and goes on with what follows it.
   */
  private stopWaiting(ctx: AnyConnectionContext): void {
    const pending = ctx.waiting;
    if (pending === null) return;
    this.handlerWatch.done(ctx);
    if (pending.event === 'on_block') {
      // A refused connection: nothing more to tell it.
      this.endSocket(ctx);
    } else if (this.afterEvent(ctx, pending.event)) {
      this.drainNext(ctx);
    }
  }

  /** A handler still running at `handlerTimeout`. */
  private handlerOverdue(ctx: AnyConnectionContext): void {
    const pending = ctx.waiting;
    if (pending === null) return;
    this.counters.handlerTimeouts++;
    const { event } = pending;
    const { handlerTimeout, handlerTimeoutPolicy } = this.settings;
    // No longer open (its on_disconnect, or a refusal's on_block): no one
    // is served by waiting any longer.
    const giveUp = ctx.state !== 'open';
    const disconnect = !giveUp && handlerTimeoutPolicy === 'disconnect';
    ctx.logger.warn(
      `${event} handler (${this.handlers.order(event).join(', ')}) still running after ${String(handlerTimeout)} ms` +
        (giveUp
          ? '; no longer waited for.'
          : disconnect
            ? '; disconnecting.'
            : '; the connection waits for it.'),
    );
    if (giveUp) this.stopWaiting(ctx);
    else if (disconnect) this.disconnect(ctx, 'error');
  }

  /** What a connection holds beyond its socket: counts, timers, compressor. */
  private releaseResources(ctx: AnyConnectionContext): void {
    this.counters.closed(ctx);
    if (ctx.held) this.limits.release(ctx.hostname);
    if (ctx.lingerTimer) clearTimeout(ctx.lingerTimer);
    if (ctx.drainTimer) clearTimeout(ctx.drainTimer);
    if (ctx.out !== ctx.socket) ctx.out.destroy();
  }

  /**
   * Takes one event (a line, a raw chunk, a telnet command, negotiation or
   * subnegotiation) from the connection's input rate; over it, applies the
   * flood policy. Its bytes were taken with its chunk ({@link takeChunk}).
   *
   * @returns Whether the event may go on.
   */
  private withinRate(ctx: AnyConnectionContext): boolean {
    const limiter = ctx.rateLimiter;
    if (limiter === null) return true;
    const verdict = limiter.take();
    if (verdict === 'pass') return true;
    this.counters.inputDropped++;
    this.overRate(ctx, verdict);
    return false;
  }

  private decodeLine(
    ctx: AnyConnectionContext,
    chunk: Buffer,
    start: number,
    end: number,
  ): Buffer | string {
    const encoding = this.settings.encoding;
    if (encoding) {
      // A telnet client may have agreed to another charset.
      return chunk.toString(ctx.telnet?.encoding ?? encoding, start, end);
    }
    // A view, not a copy: socket chunks are never reused by Node.
    return start === 0 && end === chunk.length
      ? chunk
      : chunk.subarray(start, end);
  }

  private lineTooLong(ctx: AnyConnectionContext): void {
    const { maxLineLength, overlongLinePolicy, messages } = this.settings;
    ctx.logger.warn(
      `Line longer than ${maxLineLength} bytes: ${overlongLinePolicy === 'disconnect' ? 'disconnecting' : 'discarded'}.`,
    );
    if (messages.lineTooLong !== false) ctx.sendString(messages.lineTooLong);
    if (overlongLinePolicy === 'disconnect')
      this.disconnect(ctx, 'line_too_long');
  }

  /**
   * Queues an event for a connection; runs it at once if the connection is
   * idle. Reading pauses while too many events wait, so a flood slows the
   * client down through TCP instead of filling memory.
   */
  private enqueue(
    ctx: AnyConnectionContext,
    event: string,
    data: unknown,
  ): void {
    if (!ctx.busy) {
      ctx.busy = true;
      if (this.handlers.nested) {
        // Raised by a handler that is still running (a kick, a ban, a slow
        // consumer dropped by a send): its handlers run after it returns, so
        // that handlers never nest, as they do not through Nest's pipeline.
        queueMicrotask(() => this.drain(ctx, event, data));
      } else {
        this.drain(ctx, event, data);
      }
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
   * Runs `event` for a connection, then the events queued behind it, one
   * after another until none is left: synchronously while handlers finish
   * at once, and from the first that does not, when it has finished.
   */
  private drain(ctx: AnyConnectionContext, event: string, data: unknown): void {
    let streak = 0;
    for (;;) {
      const handled = this.handlers.run(ctx, event, data);
      // A connection that already gave up on a handler after its client
      // left runs its remaining lines without waiting (see HandlerWatch):
      // one grace in all, not one per hung line. on_disconnect is waited
      // for as ever.
      if (
        handled !== true &&
        handled !== false &&
        (ctx.waitsForHandlers || event === 'on_disconnect')
      ) {
        const pending = this.handlerWatch.wait(ctx, event);
        void handled.then(() => {
          // No longer waited for (see HandlerWatch): its result is ignored.
          if (ctx.waiting !== pending) return;
          this.handlerWatch.done(ctx);
          if (this.afterEvent(ctx, pending.event)) this.drainNext(ctx);
        });
        return;
      }
      if (!this.afterEvent(ctx, event)) return;
      if (++streak === FAIR_SHARE) {
        // Handlers that finish at once never give the event loop a turn: a
        // connection with a long backlog (a chunk can hold thousands of
        // lines) would keep every other connection waiting until it is done.
        setImmediate(() => this.drainNext(ctx));
        return;
      }
      const queue = ctx.queue as unknown[];
      event = queue.shift() as string;
      data = queue.shift();
      this.resumeInput(ctx, queue);
    }
  }

  /**
   * After `finished` has run: finalises the connection after
   * `on_disconnect`; otherwise says whether an event waits, leaving the
   * connection idle when none does.
   */
  private afterEvent(ctx: AnyConnectionContext, finished: string): boolean {
    if (finished === 'on_disconnect') {
      ctx.busy = false;
      this.finalize(ctx);
      return false;
    }
    return this.hasQueued(ctx);
  }

  private hasQueued(ctx: AnyConnectionContext): boolean {
    const queue = ctx.queue;
    if (queue !== null && queue.length > 0) return true;
    ctx.busy = false;
    return false;
  }

  /** Runs the connection's next queued event (and those behind it). */
  private drainNext(ctx: AnyConnectionContext): void {
    if (!this.hasQueued(ctx)) return;
    const queue = ctx.queue as unknown[];
    const event = queue.shift() as string;
    const data = queue.shift();
    this.resumeInput(ctx, queue);
    this.drain(ctx, event, data);
  }

  /** Reads again once the queue is down to half of what paused it. */
  private resumeInput(ctx: AnyConnectionContext, queue: unknown[]): void {
    if (ctx.inputPaused && queue.length <= this.settings.maxQueuedEvents) {
      ctx.inputPaused = false;
      if (ctx.state === 'open') ctx.socket.resume();
    }
  }

  private handlerFailed(
    origin: string,
    event: string,
    ctx: AnyConnectionContext,
    err: unknown,
  ): void {
    this.counters.handlerErrors++;
    const disconnect =
      this.settings.handlerErrorPolicy === 'disconnect' && ctx.state === 'open';
    ctx.logger.warn(
      `${origin} failed on ${event}: ${describe(err)}${disconnect ? '; disconnecting' : ''}`,
    );
    if (disconnect) this.disconnect(ctx, 'error');
  }

  /**
   * Looks at a connection's first chunk for another protocol.
   *
   * @returns Whether it was one (and the connection is being closed).
   */
  private sniff(ctx: AnyConnectionContext, chunk: Buffer): boolean {
    if (!this.settings.sniffProtocols || ctx.state !== 'open') return false;
    const protocol = foreignProtocol(chunk);
    if (protocol === undefined) return false;
    if (protocol === 'http' && ctx.socket.bytesWritten > 0) {
      // The game greeted first: an HTTP status line after that greeting
      // would not be one, so the browser gets nothing more.
      ctx.logger.warn(
        'HTTP request on the game port, after the game had written to it: closed without an HTTP answer.',
      );
    } else if (protocol === 'http') {
      ctx.logger.warn('HTTP request on the game port: answered and closed.');
      const body = this.settings.messages.http;
      ctx.sendRaw(
        'HTTP/1.0 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n' +
          (body === false ? '' : `${body}\r\n`),
      );
    } else {
      ctx.logger.warn('TLS handshake on a plain port: closed.');
    }
    this.disconnect(ctx, 'protocol');
    return true;
  }

  /**
   * An input event, or a chunk, over the connection's input rate: warns at
   * the first drop of an episode, disconnects with `flood` at the last.
   */
  private overRate(ctx: AnyConnectionContext, verdict: RateVerdict): void {
    const { messages, inputRate } = this.settings;
    // Telnet answers to what passed go out before what is said now.
    if (verdict !== 'drop') ctx.telnet?.flushAnswers();
    if (verdict === 'warn') {
      ctx.logger.warn('Input over its rate limit: dropping input.');
      if (messages.floodWarning !== false) {
        ctx.sendString(messages.floodWarning);
      }
    } else if (verdict === 'flood') {
      ctx.logger.warn(
        `Still over its input rate after ${inputRate?.dropsBeforeDisconnect ?? 0} drops: disconnecting (flood).`,
      );
      if (messages.flood !== false) ctx.sendString(messages.flood);
      this.disconnect(ctx, 'flood');
    }
  }

  private dropIdle(ctx: AnyConnectionContext, why: string): void {
    ctx.logger.log(`${why}: disconnecting (idle).`);
    const message = this.settings.messages.idle;
    if (message !== false) ctx.sendString(message);
    this.disconnect(ctx, 'idle');
  }

  private createRefusalLog(): LogThrottle | null {
    const windowMs = this.settings.refusalLogInterval;
    if (windowMs === false) return null;
    return new LogThrottle(windowMs, (key, held) => {
      const [reason, address] = key.split('|');
      const from =
        key === '*'
          ? 'refusals from further addresses'
          : `Connection refused (${reason})${address === undefined ? '' : ` from ${address}`}`;
      const line = `${from}: ${held} more in the last ${windowMs / 1000} s, not logged one by one.`;
      if (QUIET_REFUSALS.has(reason as BlockReason)) this.logger.log(line);
      else this.logger.warn(line);
    });
  }

  private createHandlerWatch(): HandlerWatch {
    return new HandlerWatch(
      this.settings.handlerTimeout,
      (ctx) => this.handlerOverdue(ctx),
      (ctx) => {
        ctx.logger.warn(
          `${ctx.waiting?.event ?? 'A'} handler still running ${String(this.handlerWatch.grace)} ms after the connection stopped being open; the events behind it run without waiting for it or each other.`,
        );
        ctx.waitsForHandlers = false;
        this.stopWaiting(ctx);
      },
    );
  }

  private createLimits(): ConnectionLimits {
    return new ConnectionLimits(
      this.settings.maxConnectionsPerIp,
      this.settings.connectionRate,
      this.logger,
      // Read at each call: bind() may replace the registry (while idle).
      () => this.registry,
    );
  }

  private addConfiguredBans(
    blocks: BlockListService,
    targets: readonly string[],
  ): void {
    for (const target of targets) {
      blocks.ban(target, { reason: 'configured', kick: false });
    }
  }

  private async shutdown(): Promise<void> {
    this.closing = true;
    this._status$.next(EarwaxStatus.CLOSING);
    const serverClosed = Promise.all(
      this.listeners.map((listener) => listener.close()),
    );
    this.idleSweep?.stop();
    // Refusals held back so far are told now, and the timer stops.
    this.refusalLog?.flush();
    const goodbye = this.settings.messages.shutdown;
    for (const ctx of [...this.live]) {
      if (ctx.state === 'pending') {
        ctx.socket.destroy();
        continue;
      }
      if (goodbye !== false && ctx.state === 'open') ctx.sendString(goodbye);
      this.disconnect(ctx, 'server_shutdown');
    }
    if (this.live.size > 0 || this.ending.size > 0) {
      let timer: NodeJS.Timeout | undefined;
      await new Promise<void>((resolve) => {
        this.onLiveEmpty = resolve;
        timer = setTimeout(resolve, this.settings.closeTimeout);
      });
      clearTimeout(timer);
      this.onLiveEmpty = undefined;
      for (const ctx of [...this.live, ...this.ending]) {
        ctx.logger.warn('Still busy at shutdown deadline; destroyed.');
        ctx.state = 'closed';
        // The application is going away: a handler that finishes later must
        // not start its connection's queued on_disconnect.
        ctx.queue = null;
        this.handlerWatch.done(ctx);
        if (this.live.has(ctx)) {
          abortSocket(ctx);
          this.releaseResources(ctx);
        }
      }
      this.live.clear();
      this.ending.clear();
    }
    this.handlerWatch.stop();
    await serverClosed;
    this._status$.next(EarwaxStatus.CLOSED);
  }
}

// Listeners shared by every socket (one function each, not one closure per
// connection): each finds its connection through the socket.
function contextOf(socket: TrackedSocket): AnyConnectionContext {
  return socket[kContext] as AnyConnectionContext;
}
/**
 * What every chunk of an open connection goes through before framing: the
 * first chunk is sniffed for another protocol, and the chunk's bytes are
 * taken from the input rate, every one of them, data or telnet protocol (one
 * clock read per chunk; each line or telnet event then only takes an event
 * token). A chunk over the byte rate is still framed, so the stream stays in
 * step, but everything in it is dropped.
 *
 * @returns Whether the chunk goes on (`false`: another protocol took it, or
 * the connection was dropped for flooding).
 */
function takeChunk(ctx: AnyConnectionContext, chunk: Buffer): boolean {
  if (!ctx.chunkSeen) {
    ctx.chunkSeen = true;
    if (ctx.host.firstInput(ctx, chunk)) return false;
  }
  const limiter = ctx.rateLimiter;
  if (limiter !== null) {
    const verdict = limiter.takeChunk(chunk.length, Date.now());
    if (verdict !== 'pass') {
      ctx.host.overRate(ctx, verdict);
      return ctx.state === 'open';
    }
  }
  return true;
}
function onLineData(this: TrackedSocket, chunk: Buffer): void {
  const ctx = contextOf(this);
  if (ctx.state === 'open' && takeChunk(ctx, chunk)) {
    ctx.framer?.push(chunk, ctx);
  }
}
function onTelnetData(this: TrackedSocket, chunk: Buffer): void {
  const ctx = contextOf(this);
  if (ctx.state !== 'open' || !takeChunk(ctx, chunk)) return;
  try {
    ctx.telnet?.push(chunk);
  } catch (err) {
    // Nothing a client sends may take the server down: this connection ends.
    ctx.logger.error(
      `Telnet input failed: ${err instanceof Error ? err.message : String(err)}; disconnecting.`,
    );
    ctx.host.disconnect(ctx, 'protocol');
  }
}
function onRawData(this: TrackedSocket, chunk: Buffer): void {
  const ctx = contextOf(this);
  if (ctx.state === 'open' && takeChunk(ctx, chunk)) {
    ctx.host.receive(ctx, chunk);
  }
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
function onSocketDrain(this: TrackedSocket): void {
  const ctx = contextOf(this);
  clearTimeout(ctx.drainTimer);
  ctx.drainTimer = undefined;
}
function onDrainTimeout(ctx: AnyConnectionContext): void {
  ctx.drainTimer = undefined;
  if (ctx.state !== 'open') return;
  ctx.logger.warn(
    'Output did not drain within writeTimeout (the client reads too slowly): disconnecting (slow_consumer).',
  );
  ctx.host.disconnect(ctx, 'slow_consumer');
}
/**
 * Destroys a connection's socket. When output queued for it is thrown away,
 * the TCP connection is reset (RST) rather than closed with a FIN: the
 * peer's stack reports a reset to a reader, not an end that looks like a
 * complete answer, and no stale output is sent after it. Output already
 * handed to the kernel is not known to Node: with nothing left in Node's
 * buffers, the close is a FIN and the kernel still delivers what it holds.
 */
function abortSocket(ctx: AnyConnectionContext): void {
  const { tcp, socket, out } = ctx;
  const discarded =
    out.writableLength > 0 ||
    socket.writableLength > 0 ||
    tcp.writableLength > 0;
  // A TLS socket is reset through the TCP socket under it.
  if (discarded && !tcp.destroyed) tcp.resetAndDestroy();
  socket.destroy();
}

function ignoreError(): void {
  // A socket being destroyed after its peer reset it: nothing to report.
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
