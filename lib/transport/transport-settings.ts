import type { RateLimiterAbstract } from 'rate-limiter-flexible';
import { EARWAX_DEFAULTS } from '../earwax.constants.js';
import type { TlsOptions } from 'node:tls';
import type { ConnectionSettings } from '../connection/connection-settings.js';
import type {
  ConnectionRateOptions,
  EarwaxListenerOptions,
  HandlerErrorPolicy,
} from '../interfaces/earwax-options.interface.js';
import { BlockList } from 'node:net';
import type { EarwaxTransportOptions } from './earwax-transport-options.interface.js';
import { addAddressOrRange } from '../block-list/block-list.service.js';
import type { TelnetOptions } from '../interfaces/telnet.interface.js';
import type { InputRate } from '../limits/input-rate-limiter.js';
import type { EarwaxOpenTelemetry } from '../tracing/open-telemetry-options.interface.js';
import {
  resolveWebSocket,
  type WebSocketSettings,
} from '../websocket/websocket-settings.js';
import {
  answerAllowanceOf,
  type TelnetSettings,
} from '../telnet/telnet-session.js';

/**
 * Every option of an `EarwaxTransport`, checked and with its default
 * applied: what the transport reads at run time.
 *
 * @internal
 */
export interface TransportSettings extends ConnectionSettings {
  noDelay: boolean;
  keepAlive: false | number;
  maxConnections: number;
  maxConnectionsPerIp: number | false;
  connectionRate: ConnectionRateOptions | RateLimiterAbstract | false;
  idleTimeout: number | false;
  firstInputTimeout: number | false;
  blockList: readonly string[];
  /** The listeners, in order; one named `'default'` without `listeners`. */
  listeners: ResolvedListener[];
  handlerErrorPolicy: HandlerErrorPolicy;
  handlerTimeout: number | false;
  handlerTimeoutPolicy: HandlerErrorPolicy;
  refusalLogInterval: number | false;
  closeTimeout: number;
  /** Left out: on when a global provider is registered (see the option). */
  openTelemetry: EarwaxOpenTelemetry | undefined;
}

/**
 * Checks the options and applies the defaults.
 *
 * @throws RangeError naming the option, for a value out of range.
 * @internal
 */
export function resolveSettings(
  options: EarwaxTransportOptions,
): TransportSettings {
  const d = EARWAX_DEFAULTS;
  const maxLineLength = positiveInteger(
    options.maxLineLength,
    d.maxLineLength,
    'maxLineLength',
  );
  const proxyProtocol = resolveProxyProtocol(options.proxyProtocol);
  const telnet = resolveTelnet(options.telnet);
  return {
    noDelay: options.noDelay ?? true,
    keepAlive: options.keepAlive ?? false,
    framing: options.framing ?? 'line',
    encoding: options.encoding,
    maxLineLength,
    overlongLinePolicy: options.overlongLinePolicy ?? 'disconnect',
    deliverPartialLineOnEnd: options.deliverPartialLineOnEnd ?? true,
    maxOutputBuffer: positiveInteger(
      options.maxOutputBuffer,
      d.maxOutputBuffer,
      'maxOutputBuffer',
    ),
    writeTimeout: positiveInteger(
      options.writeTimeout,
      d.writeTimeout,
      'writeTimeout',
    ),
    maxConnections:
      options.maxConnections === false
        ? Infinity
        : positiveInteger(
            options.maxConnections,
            d.maxConnections,
            'maxConnections',
          ),
    maxConnectionsPerIp:
      options.maxConnectionsPerIp === false
        ? false
        : positiveInteger(
            options.maxConnectionsPerIp,
            d.maxConnectionsPerIp,
            'maxConnectionsPerIp',
          ),
    connectionRate: resolveConnectionRate(options.connectionRate),
    idleTimeout:
      options.idleTimeout === false
        ? false
        : positiveInteger(options.idleTimeout, d.idleTimeout, 'idleTimeout'),
    firstInputTimeout:
      options.firstInputTimeout === false
        ? false
        : positiveInteger(
            options.firstInputTimeout,
            d.firstInputTimeout,
            'firstInputTimeout',
          ),
    inputRate: resolveInputRate(options.inputRate, maxLineLength),
    blockList: options.blockList ?? [],
    sniffProtocols: options.sniffProtocols ?? true,
    listeners: resolveListeners(options, proxyProtocol, telnet),
    messages: {
      ...d.messages,
      lineTooLong: `Line too long (at most ${maxLineLength} bytes).`,
      ...options.messages,
    },
    maxQueuedEvents: positiveInteger(
      options.maxQueuedEvents,
      d.maxQueuedEvents,
      'maxQueuedEvents',
    ),
    handlerErrorPolicy: options.handlerErrorPolicy ?? 'keep',
    handlerTimeout:
      options.handlerTimeout === false
        ? false
        : positiveInteger(
            options.handlerTimeout,
            d.handlerTimeout,
            'handlerTimeout',
          ),
    handlerTimeoutPolicy: options.handlerTimeoutPolicy ?? 'keep',
    logConnections: options.logConnections ?? true,
    openTelemetry: options.openTelemetry,
    refusalLogInterval:
      options.refusalLogInterval === false
        ? false
        : positiveInteger(
            options.refusalLogInterval,
            d.refusalLogInterval,
            'refusalLogInterval',
          ),
    closeTimeout: positiveInteger(
      options.closeTimeout,
      d.closeTimeout,
      'closeTimeout',
    ),
    lingerTimeout: positiveInteger(
      options.lingerTimeout,
      d.lingerTimeout,
      'lingerTimeout',
    ),
  };
}

function positiveInteger(
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

function resolveConnectionRate(
  option: EarwaxTransportOptions['connectionRate'],
): ConnectionRateOptions | RateLimiterAbstract | false {
  if (option === false) return false;
  if (option === undefined) return { ...EARWAX_DEFAULTS.connectionRate };
  if ('consume' in option) return option;
  return {
    limit: positiveInteger(option.limit, 1, 'connectionRate.limit'),
    windowMs: positiveInteger(option.windowMs, 1, 'connectionRate.windowMs'),
  };
}

function resolveInputRate(
  option: EarwaxTransportOptions['inputRate'],
  maxLineLength: number,
): InputRate | null {
  if (option === false) return null;
  const d = EARWAX_DEFAULTS.inputRate;
  const o = option ?? {};
  // A line longer than the byte burst could never pass.
  const byteBurst = positiveInteger(
    o.byteBurst,
    Math.max(d.byteBurst, maxLineLength + 2),
    'inputRate.byteBurst',
  );
  if (byteBurst < maxLineLength + 2) {
    throw new RangeError(
      `EarwaxTransport option "inputRate.byteBurst" (${byteBurst}) must hold the longest line: at least maxLineLength + 2 (${maxLineLength + 2}).`,
    );
  }
  const drops = o.dropsBeforeDisconnect ?? d.dropsBeforeDisconnect;
  if (!Number.isInteger(drops) || drops < 0) {
    throw new RangeError(
      `EarwaxTransport option "inputRate.dropsBeforeDisconnect" must be a non-negative integer; got ${drops}.`,
    );
  }
  return {
    linesPerMs:
      positiveInteger(
        o.linesPerSecond,
        d.linesPerSecond,
        'inputRate.linesPerSecond',
      ) / 1000,
    lineBurst: positiveInteger(o.lineBurst, d.lineBurst, 'inputRate.lineBurst'),
    bytesPerMs:
      positiveInteger(
        o.bytesPerSecond,
        d.bytesPerSecond,
        'inputRate.bytesPerSecond',
      ) / 1000,
    byteBurst,
    dropsBeforeDisconnect: drops,
  };
}

/** The default `mssp.interval`: one MSSP table per connection per minute. */
const MSSP_INTERVAL = 60_000;

function resolveTelnet(
  option: EarwaxTransportOptions['telnet'],
  name = 'telnet',
): TelnetSettings | null {
  if (option === undefined || option === false) return null;
  const o: TelnetOptions = option === true ? {} : option;
  const max = o.maxSubnegotiationLength ?? 8192;
  if (!Number.isInteger(max) || max <= 0) {
    throw new RangeError(
      `EarwaxTransport option "${name}.maxSubnegotiationLength" must be a positive integer; got ${max}.`,
    );
  }
  const mssp = o.mssp ?? { name: 'nestjs-earwax' };
  return {
    ttype: o.ttype ?? true,
    naws: o.naws ?? true,
    gmcp: o.gmcp ?? true,
    charset: o.charset ?? true,
    eor: o.eor ?? true,
    mssp,
    mccp2: o.mccp2 ?? false,
    maxSubnegotiationLength: max,
    msspInterval:
      mssp === false
        ? MSSP_INTERVAL
        : positiveInteger(
            mssp.interval,
            MSSP_INTERVAL,
            `${name}.mssp.interval`,
          ),
    answerAllowance: answerAllowanceOf(mssp),
  };
}

/**
 * The PROXY protocol settings of a listener.
 *
 * @internal
 */
export interface ResolvedProxyProtocol {
  readonly trusted: BlockList;
  readonly headerTimeout: number;
  readonly versions: ReadonlyArray<1 | 2>;
}

function resolveProxyProtocol(
  option: EarwaxTransportOptions['proxyProtocol'],
  name = 'proxyProtocol',
): ResolvedProxyProtocol | null {
  if (option === undefined || option === false) return null;
  const trusted = new BlockList();
  if (option.trustedProxies.length === 0) {
    throw new RangeError(
      `EarwaxTransport option "${name}.trustedProxies" must name at least one proxy address or CIDR range.`,
    );
  }
  for (const entry of option.trustedProxies) {
    try {
      addAddressOrRange(trusted, entry);
    } catch {
      throw new RangeError(
        `EarwaxTransport option "${name}.trustedProxies": "${entry}" is not an IP address or CIDR range.`,
      );
    }
  }
  return {
    trusted,
    headerTimeout: positiveInteger(
      option.headerTimeout,
      3000,
      `${name}.headerTimeout`,
    ),
    versions: option.versions ?? [1, 2],
  };
}

/**
 * One listener's settings, the transport's filled in where it sets none.
 *
 * @internal
 */
export interface ResolvedListener {
  readonly name: string;
  readonly host: string;
  readonly port: number;
  readonly backlog: number;
  readonly ipv6Only: boolean;
  readonly reusePort: boolean;
  readonly tls: TlsOptions | null;
  readonly proxyProtocol: ResolvedProxyProtocol | null;
  readonly telnet: TelnetSettings | null;
  /** A WebSocket listener's settings; `null` for a TCP one. */
  readonly websocket: WebSocketSettings | null;
}

function resolveListeners(
  options: EarwaxTransportOptions,
  proxyProtocol: ResolvedProxyProtocol | null,
  telnet: TelnetSettings | null,
): ResolvedListener[] {
  const base = {
    host: options.host ?? EARWAX_DEFAULTS.host,
    backlog: options.backlog ?? EARWAX_DEFAULTS.backlog,
    ipv6Only: options.ipv6Only ?? false,
    reusePort: options.reusePort ?? false,
  };
  const listeners = options.listeners;
  if (listeners === undefined) {
    return [
      {
        name: 'default',
        ...base,
        port: options.port ?? EARWAX_DEFAULTS.port,
        tls: options.tls ?? null,
        proxyProtocol,
        telnet,
        websocket: null,
      },
    ];
  }
  if (!Array.isArray(listeners) || listeners.length === 0) {
    throw new RangeError(
      'EarwaxTransport option "listeners" must list at least one listener.',
    );
  }
  const names = new Set<string>();
  return listeners.map((listener: EarwaxListenerOptions, index) => {
    const { name, port } = listener;
    if (typeof name !== 'string' || name.length === 0 || names.has(name)) {
      throw new RangeError(
        `EarwaxTransport option "listeners[${index}].name" must be a unique non-empty string; got ${JSON.stringify(name)}.`,
      );
    }
    names.add(name);
    if (!Number.isInteger(port) || port < 0 || port > 65535) {
      throw new RangeError(
        `EarwaxTransport option "listeners[${index}].port" (listener "${name}") must be a port number (0 for any free one); got ${String(port)}.`,
      );
    }
    const websocket =
      listener.websocket === undefined
        ? null
        : resolveWebSocket(listener.websocket, `listeners[${index}].websocket`);
    const proxied =
      listener.proxyProtocol === undefined
        ? proxyProtocol
        : resolveProxyProtocol(
            listener.proxyProtocol,
            `listeners[${index}].proxyProtocol`,
          );
    let listenerTelnet =
      listener.telnet === undefined
        ? telnet
        : resolveTelnet(listener.telnet, `listeners[${index}].telnet`);
    if (websocket?.subprotocols.includes('telnet.mudstandards.org')) {
      if (listener.telnet === false) {
        throw new RangeError(
          `EarwaxTransport: listener "${name}" offers telnet.mudstandards.org with "telnet: false"; leave the subprotocol out instead.`,
        );
      }
      // The telnet subprotocol is telnet, whatever the transport's default.
      listenerTelnet ??= resolveTelnet(true);
    }
    if (websocket !== null && proxied !== null) {
      throw new TypeError(
        `EarwaxTransport: the PROXY protocol is not supported on a WebSocket listener yet; set "listeners[${index}].proxyProtocol" to false.`,
      );
    }
    return {
      name,
      port,
      websocket,
      host: listener.host ?? base.host,
      backlog: listener.backlog ?? base.backlog,
      ipv6Only: listener.ipv6Only ?? base.ipv6Only,
      reusePort: listener.reusePort ?? base.reusePort,
      tls: listener.tls ?? null,
      proxyProtocol: proxied,
      telnet: listenerTelnet,
    };
  });
}
