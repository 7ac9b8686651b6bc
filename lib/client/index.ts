/**
 * `nestjs-earwax/client`: `EarwaxClient`, a Nest `ClientProxy` that talks
 * to a line-based game server the way a player does, for bots, load tools
 * and services that drive a game. A game server itself does not need it.
 *
 * @packageDocumentation
 */
export {
  EarwaxClient,
  type EarwaxClientOptions,
  type EarwaxClientStatus,
} from './earwax.client.js';
