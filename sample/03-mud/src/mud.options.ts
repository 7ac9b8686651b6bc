import type { EarwaxTransportOptions } from '../../../lib/index.js';
import { ROOMS } from './world.js';

/** The game's name, as MSSP reports it to MUD listings. */
export const MUD_NAME = 'Earwax Tiny MUD';

/** What everyone is told when the server stops (SIGTERM, Ctrl-C). */
export const SHUTDOWN_MESSAGE =
  'The world fades away: the server is shutting down. Goodbye!';

/**
 * How the MUD listens, from the environment: `HOST` and `PORT`
 * (`127.0.0.1:4000` by default), and `PROXY_FROM` (the proxies whose PROXY
 * protocol headers to require, comma-separated; none by default). Telnet mode is on: TTYPE, NAWS, GMCP,
 * CHARSET, EOR, and MSSP with the game's name and a few facts.
 *
 * @throws Error naming `PORT` when it is not a port number.
 */
export function mudTransportOptions(
  env: NodeJS.ProcessEnv = process.env,
): EarwaxTransportOptions {
  return {
    host: env.HOST || '127.0.0.1',
    port: port(env.PORT),
    encoding: 'utf8',
    maxLineLength: 4096,
    telnet: {
      mssp: {
        name: MUD_NAME,
        variables: {
          CODEBASE: 'nestjs-earwax',
          FAMILY: 'Custom',
          GENRE: 'Fantasy',
          GAMEPLAY: 'Social',
          STATUS: 'Alpha',
          LANGUAGE: 'English',
          AREAS: 1,
          ROOMS: ROOMS.size,
          ANSI: 0,
          GMCP: 1,
          'UTF-8': 1,
        },
      },
    },
    messages: { shutdown: SHUTDOWN_MESSAGE },
    // Behind HAProxy or nginx: PROXY_FROM lists the proxies' addresses.
    proxyProtocol: proxies(env.PROXY_FROM),
  };
}

/** `PROXY_FROM=10.0.0.5,10.0.1.0/24` → the PROXY protocol from those. */
function proxies(
  text: string | undefined,
): EarwaxTransportOptions['proxyProtocol'] {
  const list = (text ?? '')
    .split(',')
    .map((item) => item.trim())
    .filter((item) => item !== '');
  return list.length === 0 ? false : { trustedProxies: list };
}

function port(text: string | undefined): number {
  if (text === undefined || text.trim() === '') return 4000;
  const value = Number(text);
  if (!/^\d+$/.test(text.trim()) || value > 65535) {
    throw new Error(
      `PORT must be a whole number, 0 to 65535; got ${JSON.stringify(text)}.`,
    );
  }
  return value;
}
