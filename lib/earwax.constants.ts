/**
 * The transport id of every {@link EarwaxTransport}. `@EarwaxEvent` handlers
 * are bound to it, so a plain `@EventPattern` meant for another transport never
 * lands on Earwax, and an Earwax handler never lands on another transport.
 *
 * @publicApi
 */
export const EARWAX_TRANSPORT: unique symbol = Symbol('EARWAX_TRANSPORT');

/**
 * Return (or resolve, or emit last) this from a handler to stop the handlers
 * after it in the chain of the same event, as `earwax_server.EVENT_HANDLED`.
 * Only this exact value stops the chain: a truthy string or number does not.
 *
 * @publicApi
 */
export const EVENT_HANDLED = true as const;

/**
 * What a handler returns to let the chain go on; any value other than
 * {@link EVENT_HANDLED} does the same.
 *
 * @publicApi
 */
export const EVENT_UNHANDLED = undefined;

/**
 * The event types every transport knows from the start.
 *
 * @publicApi
 */
export const BUILT_IN_EVENTS = [
  'on_block',
  'on_connect',
  'on_disconnect',
  'on_data',
  'on_resize',
  'on_terminal',
  'on_gmcp',
] as const;

/**
 * A built-in event name.
 *
 * @publicApi
 */
export type BuiltInEvent = (typeof BUILT_IN_EVENTS)[number];

/**
 * Prefix of the Nest pattern under which an Earwax event handler is
 * registered (`earwax:on_data`), so it cannot clash with another transport's
 * patterns in a hybrid application.
 *
 * @internal
 */
export const EARWAX_PATTERN_PREFIX = 'earwax:';

/**
 * Metadata key under which `@EarwaxEvent` records, on the decorated method,
 * the patterns of every Earwax event it handles (stacked decorators add to
 * it). Earwax's own key, so neither the decorator nor the direct dispatcher
 * reads Nest's pattern metadata, whose key Nest exports from no package root.
 *
 * @internal
 */
export const EARWAX_EVENTS_METADATA = 'earwax:events';

/** @internal */
export const EARWAX_MODULE_OPTIONS = Symbol('EARWAX_MODULE_OPTIONS');

/** @internal Keys of the extras an `@EarwaxEvent` handler carries. */
export const EXTRA_PRIORITY = 'earwaxPriority';
/** @internal */
export const EXTRA_ORIGIN = 'earwaxOrigin';
/**
 * @internal The decorated method itself: how the transport finds the
 * controller method behind a handler. A symbol, so that nothing serialises it.
 */
export const EXTRA_METHOD = Symbol('earwaxMethod');

/**
 * Defaults of {@link EarwaxTransportOptions}.
 *
 * @publicApi
 */
export const EARWAX_DEFAULTS = {
  /** Loopback only: a game server is exposed on purpose, never by accident. */
  host: '127.0.0.1',
  port: 4000,
  backlog: 511,
  maxLineLength: 64 * 1024,
  maxOutputBuffer: 1024 * 1024,
  maxQueuedEvents: 256,
  refusalLogInterval: 10_000,
  closeTimeout: 5000,
  handlerTimeout: 10_000,
  lingerTimeout: 2000,
  writeTimeout: 30_000,
  maxConnections: 10_000,
  maxConnectionsPerIp: 50,
  connectionRate: { limit: 30, windowMs: 10_000 },
  idleTimeout: 3_600_000,
  firstInputTimeout: 60_000,
  inputRate: {
    linesPerSecond: 50,
    lineBurst: 200,
    bytesPerSecond: 128 * 1024,
    byteBurst: 512 * 1024,
    dropsBeforeDisconnect: 200,
  },
  messages: {
    serverFull: 'The server is full; please try again later.',
    blocked: false,
    tooManyConnections: 'Too many connections from your address.',
    rateLimited: 'Too many connection attempts; please wait a moment.',
    idle: 'Disconnected for inactivity.',
    floodWarning: 'You are sending too fast; some input was dropped.',
    flood: 'Disconnected for flooding.',
    shutdown: false,
    http: 'This is a game server, not a web server: connect with a MUD client or telnet.',
  },
} as const;
