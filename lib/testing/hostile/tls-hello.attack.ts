import { positiveInteger, resolveTarget, runAttack } from './attack-runner.js';
import type {
  HostileAttackOptions,
  HostileResult,
  HostileTarget,
} from './hostile.interfaces.js';

/**
 * Options of {@link tlsHelloAttack}.
 *
 * @publicApi
 */
export interface TlsHelloOptions extends HostileAttackOptions {
  /**
   * The server name (SNI) in the ClientHello.
   * @default none
   */
  servername?: string;
  /**
   * Ms to wait for the server to close the connection.
   * @default 5000
   */
  waitMs?: number;
}

/**
 * Checks the options of {@link tlsHelloAttack} and returns the attack, ready
 * to run.
 *
 * @throws TypeError for invalid options.
 * @internal
 */
export function planTlsHello(
  target: HostileTarget,
  options: TlsHelloOptions = {},
): () => Promise<HostileResult> {
  const resolved = resolveTarget(target);
  const { servername } = options;
  if (servername !== undefined && typeof servername !== 'string') {
    throw new TypeError(
      'nestjs-earwax/testing: tls-hello servername must be a string.',
    );
  }
  const waitMs = positiveInteger('tls-hello waitMs', options.waitMs, 5000);
  const timeoutMs = positiveInteger(
    'tls-hello timeoutMs',
    options.timeoutMs,
    waitMs + 5000,
  );
  return () =>
    runAttack(
      'tls-hello',
      resolved,
      '1 connection starting a TLS handshake (ClientHello) on the port',
      timeoutMs,
      async (ctx) => {
        const socket = ctx.open({ tls: { servername } });
        if (!(await socket.ready)) return;
        void ctx.engaged();
        await ctx.pause(waitMs, socket);
      },
    );
}

/**
 * A TLS ClientHello on a plain port, as a client configured for TLS sends:
 * made by Node's own `tls.connect()`, so it is a real handshake, not a
 * hand-made imitation. A server that recognises it closes the connection
 * (`EarwaxTransport` with `sniffProtocols`: reason `protocol`).
 *
 * @param target The server (your own), and its probe.
 * @param options The server name.
 * @returns What happened (`connection.error` holds the TLS client's
 *   error); never rejects once the options are valid.
 * @throws TypeError (rejects) for invalid options.
 *
 * @publicApi
 */
export async function tlsHelloAttack(
  target: HostileTarget,
  options: TlsHelloOptions = {},
): Promise<HostileResult> {
  return planTlsHello(target, options)();
}
