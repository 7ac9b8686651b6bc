/**
 * `nestjs-earwax/cluster`: what an author of a cluster adapter (another
 * transport than Redis: NATS, Postgres `LISTEN`/`NOTIFY`) implements and
 * receives. A game needs none of it beyond what the root entry exports: it
 * passes an adapter as `EarwaxModule`'s `adapter` and injects
 * `EarwaxAdapter`. The shared shapes adapters and the registry both use
 * (`ConnectionPresence`, `PresenceFilter`, `ServerSideEvent`, `JsonValue`,
 * `SharedState`) and `ClusterUnavailableError` are exported from the root.
 *
 * @packageDocumentation
 */
export { EarwaxAdapter } from './earwax.adapter.js';
export type {
  ClusterBroadcast,
  EarwaxAdapterHost,
  RemoteCommand,
  SharedBan,
  SharedBanChange,
} from './cluster.interfaces.js';
