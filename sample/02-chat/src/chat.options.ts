import type { EarwaxTransportOptions } from '../../../lib/index.js';

/** How the chat server listens: from `HOST` and `PORT`, lines as UTF-8 text. */
export function chatTransportOptions(
  env: NodeJS.ProcessEnv = process.env,
): EarwaxTransportOptions {
  return {
    host: env.HOST ?? '127.0.0.1',
    port: Number(env.PORT ?? 4000),
    encoding: 'utf8',
    maxLineLength: 4096,
  };
}
