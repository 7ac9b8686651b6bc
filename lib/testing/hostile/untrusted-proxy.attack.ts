import { isIPv6 } from 'node:net';
import { positiveInteger, resolveTarget, runAttack } from './attack-runner.js';
import type {
  HostileAttackOptions,
  HostileResult,
  HostileTarget,
} from './hostile.interfaces.js';

/**
 * Options of {@link untrustedProxyAttack}.
 *
 * @publicApi
 */
export interface UntrustedProxyOptions extends HostileAttackOptions {
  /**
   * The PROXY header, as sent.
   * @default a v1 header claiming 203.0.113.7:40000 (2001:db8::7 over IPv6)
   */
  header?: string | Uint8Array;
  /**
   * Ms to wait for the server to close the connection.
   * @default 5000
   */
  waitMs?: number;
}

/**
 * Checks the options of {@link untrustedProxyAttack} and returns the attack, ready
 * to run.
 *
 * @throws TypeError for invalid options.
 * @internal
 */
export function planUntrustedProxy(
  target: HostileTarget,
  options: UntrustedProxyOptions = {},
): () => Promise<HostileResult> {
  const resolved = resolveTarget(target);
  const six = isIPv6(resolved.host);
  const header =
    options.header ??
    (six
      ? `PROXY TCP6 2001:db8::7 ${resolved.host} 40000 ${resolved.port}\r\n`
      : `PROXY TCP4 203.0.113.7 127.0.0.1 40000 ${resolved.port}\r\n`);
  if (typeof header !== 'string' && !(header instanceof Uint8Array)) {
    throw new TypeError(
      'nestjs-earwax/testing: untrusted-proxy header must be a string or a Uint8Array.',
    );
  }
  const waitMs = positiveInteger(
    'untrusted-proxy waitMs',
    options.waitMs,
    5000,
  );
  const timeoutMs = positiveInteger(
    'untrusted-proxy timeoutMs',
    options.timeoutMs,
    waitMs + 5000,
  );
  const line = Buffer.from(
    `${resolved.probe.line}\r\n`,
    resolved.probe.encoding,
  );
  return () =>
    runAttack(
      'untrusted-proxy',
      resolved,
      "1 connection sending a PROXY header for another address, then the probe's line",
      timeoutMs,
      async (ctx) => {
        const socket = ctx.open();
        if (!(await socket.ready)) return;
        await socket.write(Buffer.concat([Buffer.from(header), line]));
        void ctx.engaged();
        await ctx.pause(waitMs, socket);
      },
    );
}

/**
 * A PROXY protocol header from a client that is not a trusted proxy: it
 * claims to speak for another address, then sends the probe's line. Run it
 * from an address outside the listener's `trustedProxies` (the target's
 * `from`). A PROXY listener must close it unread and never admit it
 * (`EarwaxTransport`: a warning, no `on_connect`, no `on_block`); a plain
 * listener takes the header for a line of input.
 *
 * @param target The server (your own), and its probe.
 * @param options The header.
 * @returns What happened; never rejects once the options are valid.
 * @throws TypeError (rejects) for invalid options.
 *
 * @publicApi
 */
export async function untrustedProxyAttack(
  target: HostileTarget,
  options: UntrustedProxyOptions = {},
): Promise<HostileResult> {
  return planUntrustedProxy(target, options)();
}
