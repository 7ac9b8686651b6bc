import type {
  WebSocketListenerOptions,
  WebSocketSubprotocol,
} from '../interfaces/websocket.interface.js';

/** Every subprotocol, in the default order of preference. */
export const SUBPROTOCOLS: readonly WebSocketSubprotocol[] = [
  'telnet.mudstandards.org',
  'gmcp.mudstandards.org',
  'terminal.mudstandards.org',
];

/**
 * A WebSocket listener's settings, checked and with defaults applied.
 *
 * @internal
 */
export interface WebSocketSettings {
  readonly subprotocols: readonly WebSocketSubprotocol[];
  readonly defaultSubprotocol: WebSocketSubprotocol | null;
  readonly path: string | null;
  /** Allowed `Origin`s, lower case; `null`: any. */
  readonly origins: ReadonlySet<string> | null;
  readonly maxPayload: number;
  readonly perMessageDeflate: boolean;
  readonly pingInterval: number;
}

/**
 * Checks a listener's `websocket` option and fills in the defaults.
 *
 * @param name Where the option is, for error messages.
 * @throws TypeError or RangeError naming the bad field.
 * @internal
 */
export function resolveWebSocket(
  option: WebSocketListenerOptions,
  name: string,
): WebSocketSettings {
  if (typeof option !== 'object' || option === null) {
    throw new TypeError(`EarwaxTransport option "${name}" must be an object.`);
  }
  const subprotocols = option.subprotocols ?? SUBPROTOCOLS;
  if (
    !Array.isArray(subprotocols) ||
    subprotocols.length === 0 ||
    subprotocols.some((p) => !SUBPROTOCOLS.includes(p)) ||
    new Set(subprotocols).size !== subprotocols.length
  ) {
    throw new RangeError(
      `EarwaxTransport option "${name}.subprotocols" must list one or more of ${SUBPROTOCOLS.join(', ')}, each once.`,
    );
  }
  const fallback = option.defaultSubprotocol ?? null;
  if (fallback !== null && !subprotocols.includes(fallback)) {
    throw new RangeError(
      `EarwaxTransport option "${name}.defaultSubprotocol" must be one of "${name}.subprotocols"; got ${JSON.stringify(fallback)}.`,
    );
  }
  const path = option.path === undefined ? '/' : option.path;
  if (path !== null && (typeof path !== 'string' || !path.startsWith('/'))) {
    throw new TypeError(
      `EarwaxTransport option "${name}.path" must start with "/" (or be null for any path); got ${JSON.stringify(path)}.`,
    );
  }
  const origins = option.origins;
  if (
    origins !== undefined &&
    (!Array.isArray(origins) || origins.some((o) => typeof o !== 'string'))
  ) {
    throw new TypeError(
      `EarwaxTransport option "${name}.origins" must be an array of origins ("https://mud.example").`,
    );
  }
  return {
    subprotocols,
    defaultSubprotocol: fallback,
    path,
    origins:
      origins === undefined
        ? null
        : new Set(origins.map((o) => o.toLowerCase().replace(/\/+$/, ''))),
    maxPayload: positive(option.maxPayload, 65536, `${name}.maxPayload`),
    perMessageDeflate: option.perMessageDeflate === true,
    pingInterval: positive(
      option.pingInterval,
      30_000,
      `${name}.pingInterval`,
      true,
    ),
  };
}

function positive(
  value: number | undefined,
  fallback: number,
  name: string,
  zero = false,
): number {
  if (value === undefined) return fallback;
  if (!Number.isInteger(value) || value < (zero ? 0 : 1)) {
    throw new RangeError(
      `EarwaxTransport option "${name}" must be an integer ${zero ? '>= 0' : '> 0'}; got ${String(value)}.`,
    );
  }
  return value;
}

/**
 * The subprotocol for a handshake: the first of the listener's (its order
 * of preference) that the client offered; the default when the client
 * offered none; `null` when nothing fits (refused with HTTP 400).
 *
 * @param offered The `Sec-WebSocket-Protocol` header, if any.
 * @internal
 */
export function chooseSubprotocol(
  settings: WebSocketSettings,
  offered: string | undefined,
): WebSocketSubprotocol | null {
  const names =
    offered === undefined
      ? []
      : offered
          .split(',')
          .map((name) => name.trim().toLowerCase())
          .filter((name) => name.length > 0);
  if (names.length === 0) return settings.defaultSubprotocol;
  for (const candidate of settings.subprotocols) {
    if (names.includes(candidate)) return candidate;
  }
  return null;
}

/**
 * Whether a handshake's `Origin` is allowed: always without an allow-list
 * or without `Origin` (a client that is not a browser page).
 *
 * @internal
 */
export function originAllowed(
  settings: WebSocketSettings,
  origin: string | undefined,
): boolean {
  if (settings.origins === null || origin === undefined) return true;
  return settings.origins.has(origin.toLowerCase());
}
