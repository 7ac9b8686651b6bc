export { EarwaxExpectationError } from './earwax-expectation.error.js';
export {
  EarwaxTestClient,
  type EarwaxTestClientState,
} from './earwax-test-client.js';
export {
  EarwaxTestLogger,
  type EarwaxTestLogEntry,
  type EarwaxTestLoggerOptions,
} from './earwax-test-logger.js';
export { EarwaxTestServer } from './earwax-test-server.js';
export {
  EarwaxTestTelnet,
  type EarwaxTestPrompt,
  type EarwaxTestTelnetEvent,
} from './earwax-test-telnet.js';
export {
  EarwaxTesting,
  type EarwaxMicroserviceFactory,
  type EarwaxTestTarget,
} from './earwax-testing.js';
export * from './interfaces/index.js';
export type { LinePattern } from './transcript.js';
export * from './hostile.js';
