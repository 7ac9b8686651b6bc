export { ClusterMessageError } from '../errors/cluster-message.error.js';
export type {
  RedisAdapterOptions,
  RedisClusterConnection,
} from './redis-adapter-options.interface.js';
export { RedisAdapter } from './redis.adapter.js';
export {
  SharedConnectionRate,
  type SharedConnectionRateOptions,
} from './shared-connection-rate.js';
