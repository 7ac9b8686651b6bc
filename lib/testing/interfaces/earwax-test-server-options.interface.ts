import type { INestMicroservice, LogLevel } from '@nestjs/common';
import type { EarwaxTransport } from '../../transport/earwax.transport.js';
import type { EarwaxTransportOptions } from '../../transport/earwax-transport-options.interface.js';

/**
 * Options of `EarwaxTesting.createServer()`.
 *
 * @publicApi
 */
export interface EarwaxTestServerOptions {
  /**
   * The transport's options (telnet, limits, messages, ...), as the game's
   * `main.ts` would pass them. `host` and `port` default to `'127.0.0.1'`
   * and `0` (a free port) instead of the transport's own defaults (with
   * `listeners`, give each one `port: 0`).
   */
  transport?: EarwaxTransportOptions;
  /**
   * Runs after the application is created and before it listens: where a
   * test adds global guards, pipes or filters (`app.useGlobalFilters()`),
   * registers event types or subscribes to the transport.
   */
  configure?: (
    app: INestMicroservice,
    transport: EarwaxTransport,
  ) => void | Promise<void>;
  /**
   * The log levels printed to the console. Every entry is recorded in
   * `server.logs` whatever this says.
   * @default ['error', 'fatal'] (as `@nestjs/testing` prints errors only)
   */
  printLogs?: readonly LogLevel[];
}
