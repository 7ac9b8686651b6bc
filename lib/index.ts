export {
  BUILT_IN_EVENTS,
  EARWAX_DEFAULTS,
  EARWAX_TRANSPORT,
  EVENT_HANDLED,
  EVENT_UNHANDLED,
  type BuiltInEvent,
} from './earwax.constants.js';
export * from './cluster/index.js';
export {
  BlockListError,
  BlockListService,
  type BanEntry,
  type BanOptions,
  type BlockListChange,
} from './block-list/block-list.service.js';
export {
  ConnectionContext,
  type AnyConnectionContext,
} from './connection/connection-context.js';
export { ConnectionGuard } from './guard/connection.guard.js';
export {
  ConnectionRegistry,
  type BroadcastOptions,
} from './registry/connection.registry.js';
export * from './decorators/index.js';
export { EarwaxModule } from './earwax.module.js';
export {
  EarwaxStatus,
  EarwaxTransport,
  type EarwaxServerEvents,
} from './transport/earwax.transport.js';
export { EventNameError } from './errors/event-name.error.js';
export {
  EarwaxMetrics,
  type EarwaxMetricsSnapshot,
} from './metrics/earwax-metrics.js';
export { PROMETHEUS_CONTENT_TYPE } from './metrics/prometheus.js';
export { LineFramer, type LineSink } from './framing/line-framer.js';
export {
  ProxyHeaderParser,
  ProxyProtocolError,
  type ProxyHeader,
  type ProxyHeaderParserOptions,
  type ProxyParseResult,
} from './proxy/proxy-protocol.js';
export {
  describeOption,
  TelnetCommand,
  TelnetOption,
  TelnetSubCode,
} from './telnet/telnet-codes.js';
export {
  escapeIac,
  negotiation,
  subnegotiation,
  TelnetParser,
  type TelnetSink,
} from './telnet/telnet-parser.js';
export * from './interfaces/index.js';
export {
  EarwaxClient,
  type EarwaxClientOptions,
  type EarwaxClientStatus,
} from './client/index.js';
