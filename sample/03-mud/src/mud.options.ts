import { createPrivateKey, X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createSecureContext } from 'node:tls';
import type {
  EarwaxListenerOptions,
  EarwaxTransportOptions,
} from '../../../lib/index.js';
import { ROOMS } from './world.js';

/** The game's name, as MSSP reports it to MUD listings. */
export const MUD_NAME = 'Earwax Tiny MUD';

/** What everyone is told when the server stops (SIGTERM, Ctrl-C). */
export const SHUTDOWN_MESSAGE =
  'The world fades away: the server is shutting down. Goodbye!';

/** The plain telnet port unless `PORT` says otherwise. */
export const DEFAULT_PORT = 4000;

/** The TLS port unless `TLS_PORT` says otherwise. */
export const DEFAULT_TLS_PORT = 4443;

/** Logged at start by a game without TLS: how to turn it on. */
export const TLS_OFF_NOTICE = `TLS is off: set TLS_KEY and TLS_CERT (paths to a PEM key and certificate) to serve TLS on TLS_PORT (default ${DEFAULT_TLS_PORT}) as well; sample/03-mud/README.md shows how to make a certificate.`;

/**
 * How the MUD listens, from the environment:
 *
 * - `HOST` and `PORT`: the plain telnet listener (`127.0.0.1:4000` by
 *   default).
 * - `TLS_KEY` and `TLS_CERT`: paths to a PEM private key and its
 *   certificate (chain). With both, a second listener named `tls` serves
 *   telnet over TLS on `TLS_PORT` (default 4443), beside the plain one,
 *   which is then named `telnet`; both run the one game.
 * - `PROXY_FROM`: the proxies whose PROXY protocol headers to require on
 *   every listener, comma-separated; none by default.
 *
 * Telnet mode is on: TTYPE, NAWS, GMCP, CHARSET, EOR, and MSSP with the
 * game's name and a few facts (the transport adds `PORT` and `SSL`).
 *
 * Without TLS the transport keeps its single listener (named `'default'`),
 * made of `host` and `port`, so a caller can still override the port with
 * `{ ...mudTransportOptions(), port: 0 }`.
 *
 * @throws Error naming the variable, for a port that is not one, a TLS file
 *   that cannot be read or is not PEM, a key that does not match its
 *   certificate, only one of `TLS_KEY` / `TLS_CERT`, or `TLS_PORT` without
 *   them.
 */
export function mudTransportOptions(
  env: NodeJS.ProcessEnv = process.env,
): EarwaxTransportOptions {
  const host = env.HOST || '127.0.0.1';
  const port = portOf(env, 'PORT', DEFAULT_PORT);
  const tls = tlsFiles(env);
  const shared: EarwaxTransportOptions = {
    host,
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
    // Every listener inherits it.
    proxyProtocol: proxies(env.PROXY_FROM),
  };
  if (tls === undefined) {
    // A TLS port without TLS would be silently ignored: say so instead.
    if (isSet(env.TLS_PORT)) {
      throw new Error(
        'TLS_PORT is set but TLS is off: set TLS_KEY and TLS_CERT as well (paths to a PEM key and certificate), or unset TLS_PORT.',
      );
    }
    return { ...shared, port };
  }
  const tlsPort = portOf(env, 'TLS_PORT', DEFAULT_TLS_PORT);
  if (tlsPort !== 0 && tlsPort === port) {
    throw new Error(
      `TLS_PORT must differ from PORT; both are ${port}. Give the TLS listener its own port.`,
    );
  }
  const listeners: EarwaxListenerOptions[] = [
    { name: 'telnet', port },
    { name: 'tls', port: tlsPort, tls },
  ];
  return { ...shared, listeners };
}

/**
 * The notice to log at start when the options serve no TLS, else
 * `undefined`.
 */
export function tlsNotice(options: EarwaxTransportOptions): string | undefined {
  const secure =
    options.tls !== undefined ||
    (options.listeners ?? []).some((listener) => listener.tls !== undefined);
  return secure ? undefined : TLS_OFF_NOTICE;
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

function isSet(text: string | undefined): text is string {
  return text !== undefined && text.trim() !== '';
}

function portOf(
  env: NodeJS.ProcessEnv,
  name: 'PORT' | 'TLS_PORT',
  fallback: number,
): number {
  const text = env[name];
  if (!isSet(text)) return fallback;
  const value = Number(text);
  if (!/^\d+$/.test(text.trim()) || value > 65535) {
    throw new Error(
      `${name} must be a whole number, 0 to 65535; got ${JSON.stringify(text)}.`,
    );
  }
  return value;
}

/**
 * The key and certificate named by `TLS_KEY` and `TLS_CERT`, read and
 * checked now, so a bad one stops the server at start with the variable
 * named rather than failing each player's handshake later.
 */
function tlsFiles(
  env: NodeJS.ProcessEnv,
): { key: Buffer; cert: Buffer } | undefined {
  const keyPath = env.TLS_KEY;
  const certPath = env.TLS_CERT;
  if (!isSet(keyPath) && !isSet(certPath)) return undefined;
  if (!isSet(keyPath) || !isSet(certPath)) {
    const [given, missing] = isSet(keyPath)
      ? ['TLS_KEY', 'TLS_CERT']
      : ['TLS_CERT', 'TLS_KEY'];
    throw new Error(
      `${given} is set but ${missing} is not: TLS needs both (paths to a PEM key and its certificate), or neither.`,
    );
  }
  const key = readPem('TLS_KEY', keyPath);
  const cert = readPem('TLS_CERT', certPath);
  check('TLS_KEY', keyPath, 'a PEM private key', () => createPrivateKey(key));
  check(
    'TLS_CERT',
    certPath,
    'a PEM certificate',
    () => new X509Certificate(cert),
  );
  try {
    createSecureContext({ key, cert });
  } catch (err) {
    throw new Error(
      `TLS_KEY (${keyPath}) is not the key of the certificate in TLS_CERT (${certPath}): ${messageOf(err)}.`,
      { cause: err },
    );
  }
  return { key, cert };
}

function readPem(name: string, path: string): Buffer {
  try {
    return readFileSync(path);
  } catch (err) {
    throw new Error(`${name}: cannot read ${path}: ${messageOf(err)}.`, {
      cause: err,
    });
  }
}

function check(
  name: string,
  path: string,
  what: string,
  parse: () => unknown,
): void {
  try {
    parse();
  } catch (err) {
    throw new Error(`${name}: ${path} is not ${what}: ${messageOf(err)}.`, {
      cause: err,
    });
  }
}

/** An error's message; not `instanceof Error`, which fails across realms. */
function messageOf(err: unknown): string {
  const message = (err as { message?: unknown } | null)?.message;
  return typeof message === 'string' ? message : String(err);
}
