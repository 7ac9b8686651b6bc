export * from './cluster.interfaces.js';
export { ClusterUnavailableError } from '../errors/cluster-unavailable.error.js';
export { EarwaxAdapter } from './earwax.adapter.js';
export { InMemoryAdapter } from './in-memory.adapter.js';
