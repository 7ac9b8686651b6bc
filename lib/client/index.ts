export {
  EarwaxClient,
  type EarwaxClientOptions,
  type EarwaxClientStatus,
} from './earwax.client.js';
