export {
  BUILT_IN_EVENTS,
  EARWAX_DEFAULTS,
  EARWAX_TRANSPORT,
  EVENT_HANDLED,
  EVENT_UNHANDLED,
  type BuiltInEvent,
} from './earwax.constants.js';
export { EarwaxModule } from './earwax.module.js';
export * from './earwax-module-options.interface.js';
export * from './transport/earwax-transport-options.interface.js';
export * from './tracing/open-telemetry-options.interface.js';
export {
  EarwaxStatus,
  EarwaxTransport,
  type EarwaxServerEvents,
} from './transport/earwax.transport.js';
export * from './decorators/index.js';
export {
  ConnectionContext,
  type AnyConnectionContext,
} from './connection/connection-context.js';
export { ConnectionGuard } from './guard/connection.guard.js';
export {
  ConnectionRegistry,
  type BroadcastOptions,
} from './registry/connection.registry.js';
export {
  BlockListError,
  BlockListService,
  type BanEntry,
  type BanOptions,
  type BlockListChange,
} from './block-list/block-list.service.js';
export {
  EarwaxMetrics,
  type EarwaxMetricsSnapshot,
} from './metrics/earwax-metrics.js';
export { PROMETHEUS_CONTENT_TYPE } from './metrics/prometheus.js';
export { EventNameError } from './errors/event-name.error.js';
export { ClusterUnavailableError } from './errors/cluster-unavailable.error.js';
// The adapter is a provider a game injects (its health, forRootAsync's
// inject); the types an adapter author implements are in ./cluster.
export { EarwaxAdapter } from './cluster/earwax.adapter.js';
export type {
  ConnectionPresence,
  JsonValue,
  PresenceFilter,
  ServerSideEvent,
  SharedState,
} from './cluster/cluster.interfaces.js';
export * from './interfaces/index.js';
