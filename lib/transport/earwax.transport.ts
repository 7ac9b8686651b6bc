import { Logger } from '@nestjs/common';
import {
  type CustomTransportStrategy,
  type MessageHandler,
  Server,
} from '@nestjs/microservices';
import type { AddressInfo, Server as NetServer, Socket } from 'node:net';
import type { SecureContextOptions } from 'node:tls';
import { BlockListService } from '../block-list/block-list.service.js';
import type { AnyConnectionContext } from '../connection/connection-context.js';
import type { ConnectionGuard } from '../guard/connection.guard.js';
import { ConnectionRegistry } from '../registry/connection.registry.js';
import {
  EARWAX_PATTERN_PREFIX,
  EARWAX_TRANSPORT,
  EXTRA_METHOD,
  EXTRA_ORIGIN,
  EXTRA_PRIORITY,
} from '../earwax.constants.js';
import type { EarwaxTransportOptions } from './earwax-transport-options.interface.js';
import { ConnectionLimits } from '../limits/connection-limits.js';
import { IdleSweep } from '../limits/idle-sweep.js';
import { EarwaxMetrics } from '../metrics/earwax-metrics.js';
import type { DirectDispatcher } from '../pipeline/direct-dispatch.js';
import {
  describeForeignHandler,
  type ForeignHandler,
} from '../pipeline/foreign-handlers.js';
import { HandlerChains } from '../pipeline/handler-chains.js';
import { formatHostPort } from '../utils/host-port.js';
import { Admission } from './admission.js';
import { EventTypes } from './event-types.js';
import type { Connection } from '../connection/connection.js';
import { ConnectionHub } from './connection-hub.js';
import { EarwaxListener } from './earwax.listener.js';
import { shutDown } from './shutdown.js';
import {
  type OpenTelemetryRun,
  startOpenTelemetry,
} from '../tracing/open-telemetry.js';
import {
  resolveSettings,
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
  /**
   * Names the application's methods with a pattern decorator bound to no
   * transport (`undefined` when Nest's metadata keys are not known).
   */
  foreignHandlers?: () => ForeignHandler[] | undefined;
  /** Whether the application runs a transport other than Earwax. */
  otherTransports?: () => boolean;
}

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
  private readonly eventTypes = new EventTypes();
  private readonly handlers = new HandlerChains((origin, event, ctx, err) =>
    this.hub.handlerFailed(origin, event, ctx, err),
  );
  private dispatcher: DirectDispatcher | undefined;
  /** Patterns Nest handed over that are not `@EarwaxEvent` ones. */
  private readonly foreignPatterns: {
    pattern: unknown;
    isEvent: boolean;
  }[] = [];
  private foreignHandlers: EarwaxBindings['foreignHandlers'];
  private otherTransports: EarwaxBindings['otherTransports'];
  private settings: TransportSettings;
  private hub: ConnectionHub;
  private readonly admission: Admission;
  private idleSweep: IdleSweep<Connection> | undefined;
  private closePromise: Promise<void> | undefined;
  private openTelemetry: OpenTelemetryRun | undefined;

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
    const registry = options.registry ?? new ConnectionRegistry();
    const counters = new EarwaxMetrics().attach(this);
    // Created here, as Nest's own TCP server is, so `on()` works before
    // `listen()`.
    this.listeners = this.settings.listeners.map((listener) => {
      const created = new EarwaxListener(listener, {
        accepted: (socket, via) => this.admission.accept(socket, via),
        secured: (tls, raw) => this.admission.secured(tls, raw),
        handshakeFailed: (err, tls, raw) =>
          this.admission.handshakeFailed(err, tls, raw),
        arrived: (medium, via) => this.admission.arrived(medium, via),
      });
      created.server.on('error', (err) => {
        if (created.listening) this.logger.error(err);
      });
      return created;
    });
    this.hub = this.createHub(registry, counters);
    this.admission = new Admission(
      this.hub,
      new BlockListService(registry),
      this.handlers,
      this.logger,
    );
    this.admission.guard = options.guard;
    this.banConfigured();
    this.configure();
    for (const name of options.eventTypes ?? []) this.registerEventType(name);
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
    return this.hub.registry;
  }

  /**
   * The block list this transport checks: the application's
   * `BlockListService` under `EarwaxModule`, else the transport's own.
   */
  get blockList(): BlockListService {
    return this.admission.blocks;
  }

  /**
   * The counters this transport feeds: the application's `EarwaxMetrics`
   * under `EarwaxModule`, else the transport's own.
   */
  get metrics(): EarwaxMetrics {
    return this.hub.counters;
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
    const listening = this.listeners.some((listener) => listener.listening);
    if (listening) {
      this.logger.warn(
        'EarwaxModule bound to a transport that is already listening; its guard applies to new connections only.',
      );
    }
    const admission = this.admission;
    admission.guard =
      this.ownOptions.guard ?? bindings.guard ?? admission.guard;
    this.dispatcher = bindings.dispatcher ?? this.dispatcher;
    this.foreignHandlers = bindings.foreignHandlers ?? this.foreignHandlers;
    this.otherTransports = bindings.otherTransports ?? this.otherTransports;
    const hub = this.hub;
    // What a held connection was counted in or registered with stays, until
    // nothing is held.
    const idle = hub.idle;
    const registry =
      !this.ownOptions.registry && idle ? bindings.registry : hub.registry;
    let counters = hub.counters;
    if (bindings.metrics && bindings.metrics !== counters && idle) {
      counters.detach(this);
      counters = bindings.metrics.attach(this);
    }
    if (bindings.defaults) {
      this.settings = resolveSettings({
        ...bindings.defaults,
        ...this.ownOptions,
      });
    }
    if (idle && !listening) {
      // Nothing is held and no sweep or watch runs over the connections yet:
      // a new hub takes the module's registry, counters and settings.
      this.hub = this.createHub(registry, counters);
      admission.hub = this.hub;
    } else {
      // Held connections keep what they were accepted under.
      hub.settings = this.settings;
      hub.registry = registry;
      hub.counters = counters;
    }
    if (bindings.blockList && bindings.blockList !== admission.blocks) {
      admission.blocks.onModuleDestroy();
      admission.blocks = bindings.blockList;
      this.banConfigured();
    }
    this.configure();
  }

  /** The `blockList` option's bans, on the block list now checked. */
  private banConfigured(): void {
    for (const target of this.settings.blockList) {
      this.admission.blocks.ban(target, { reason: 'configured', kick: false });
    }
  }

  /**
   * Applies the resolved settings: the one place they take effect (at
   * construction, and again when the module's defaults arrive).
   */
  private configure(): void {
    const settings = this.settings;
    // The same listeners (their number and TLS are the transport's own);
    // what they inherit may come from the defaults.
    settings.listeners.forEach((resolved, index) => {
      this.listeners[index].settings = resolved;
    });
    this.admission.configure(this.settings.refusalLogInterval);
  }

  private createHub(
    registry: ConnectionRegistry,
    counters: EarwaxMetrics,
  ): ConnectionHub {
    const settings = this.settings;
    const limits = new ConnectionLimits(
      settings.maxConnectionsPerIp,
      settings.connectionRate,
      this.logger,
      // Read at each call: bind() may replace the registry (while idle).
      () => this.hub.registry,
    );
    return new ConnectionHub(
      settings,
      registry,
      counters,
      limits,
      this.handlers,
      this.listeners,
    );
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
    return this.eventTypes.register(name);
  }

  /** The registered event types, built-in ones first. */
  getEventTypes(): string[] {
    return this.eventTypes.list();
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
    if (!this.eventTypes.has(name)) return this.eventTypes.unknown(name);
    const handled = this.handlers.dispatch(ctx, name, data);
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
      this.foreignPatterns.push({ pattern, isEvent: isEventHandler });
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
      this.eventTypes.check(this.handlers.events());
    } catch (err) {
      callback(err);
      return;
    }
    this.warnForeignHandlers();
    this.compileHandlers();
    void this.listenAll().then(
      () => callback(),
      (err: unknown) => {
        this._status$.next(EarwaxStatus.CLOSED);
        callback(err);
      },
    );
  }

  /**
   * A plain `@EventPattern('on_data')` boots and is never called: say so,
   * naming the method and the decorator to use, unless it is most likely
   * meant for another transport of the application.
   */
  private warnForeignHandlers(): void {
    if (this.foreignPatterns.length === 0) return;
    const handlers =
      this.foreignHandlers?.() ??
      // Without EarwaxModule the methods cannot be named: their patterns can.
      this.foreignPatterns.map(({ pattern, isEvent }) => ({
        origin: 'A controller method',
        decorator: isEvent
          ? ('@EventPattern' as const)
          : ('@MessagePattern' as const),
        patterns: [pattern],
      }));
    const others = this.otherTransports?.() ?? false;
    const isEarwaxEvent = (pattern: unknown): boolean =>
      typeof pattern === 'string' && this.eventTypes.has(pattern);
    for (const handler of handlers) {
      const line = describeForeignHandler(handler, isEarwaxEvent, others);
      if (line !== undefined) this.logger.warn(line);
    }
  }

  private async listenAll(): Promise<void> {
    // Before the first connection, so that every event is traced.
    this.openTelemetry ??= await startOpenTelemetry(
      this.settings.openTelemetry,
      this.hub.counters,
      this.logger,
    );
    this.handlers.tracer = this.openTelemetry?.tracer;
    try {
      for (const listener of this.listeners) {
        const bound = await listener.listen();
        const { name, host, port, tls, proxyProtocol, telnet, websocket } =
          listener.settings;
        const traits = [
          websocket !== null
            ? `WebSocket ${websocket.subprotocols.map((p) => p.split('.')[0]).join('/')}`
            : null,
          tls !== null ? 'TLS' : null,
          proxyProtocol !== null ? 'PROXY protocol' : null,
          telnet !== null && websocket === null ? 'telnet' : null,
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
      this.openTelemetry?.stop();
      this.openTelemetry = undefined;
      throw err;
    }
    const hub = this.hub;
    hub.startedAt = Date.now();
    this.idleSweep ??= new IdleSweep<Connection>(
      this.settings.idleTimeout,
      this.settings.firstInputTimeout,
      (connection, why) => hub.dropIdle(connection, why),
    );
    this.idleSweep.start(hub.live);
    hub.watch.start();
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

  private async shutdown(): Promise<void> {
    this.admission.closing = true;
    this._status$.next(EarwaxStatus.CLOSING);
    const serverClosed = Promise.all(
      this.listeners.map((listener) => listener.close()),
    );
    this.idleSweep?.stop();
    // Refusals held back so far are told now, and the timer stops.
    this.admission.flushRefusals();
    await shutDown(this.hub, this.settings);
    await serverClosed;
    this.openTelemetry?.stop();
    this._status$.next(EarwaxStatus.CLOSED);
  }
}
