export {
  EarwaxHealthIndicator,
  type EarwaxHealthCheck,
  type EarwaxHealthCheckResult,
  type EarwaxHealthOptions,
  type EarwaxTransportHealth,
} from './earwax.health.js';
