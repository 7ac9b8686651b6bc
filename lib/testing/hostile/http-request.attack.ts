import { positiveInteger, resolveTarget, runAttack } from './attack-runner.js';
import { formatHostPort } from '../../utils/host-port.js';
import type {
  HostileAttackOptions,
  HostileResult,
  HostileTarget,
} from './hostile.interfaces.js';

/**
 * Options of {@link httpRequestAttack}.
 *
 * @publicApi
 */
export interface HttpRequestOptions extends HostileAttackOptions {
  /**
   * The request, as sent.
   * @default a browser-like `GET / HTTP/1.1` with its headers
   */
  request?: string;
  /**
   * Ms to wait for the server to close the connection.
   * @default 5000
   */
  waitMs?: number;
}

/**
 * Checks the options of {@link httpRequestAttack} and returns the attack, ready
 * to run.
 *
 * @throws TypeError for invalid options.
 * @internal
 */
export function planHttpRequest(
  target: HostileTarget,
  options: HttpRequestOptions = {},
): () => Promise<HostileResult> {
  const resolved = resolveTarget(target);
  const authority = formatHostPort(resolved.host, resolved.port);
  const request =
    options.request ??
    `GET / HTTP/1.1\r\nHost: ${authority}\r\nUser-Agent: Mozilla/5.0 (nestjs-earwax hostile client)\r\nAccept: text/html,*/*\r\nConnection: keep-alive\r\n\r\n`;
  if (typeof request !== 'string' || request.length === 0) {
    throw new TypeError(
      'nestjs-earwax/testing: http-request request must be a non-empty string.',
    );
  }
  const waitMs = positiveInteger('http-request waitMs', options.waitMs, 5000);
  const timeoutMs = positiveInteger(
    'http-request timeoutMs',
    options.timeoutMs,
    waitMs + 5000,
  );
  return () =>
    runAttack(
      'http-request',
      resolved,
      `1 connection sending an HTTP request (${JSON.stringify(request.split('\r\n')[0])})`,
      timeoutMs,
      async (ctx) => {
        const socket = ctx.open();
        if (!(await socket.ready)) return;
        await socket.write(request);
        void ctx.engaged();
        await ctx.pause(waitMs, socket);
      },
    );
}

/**
 * An HTTP request on the game port, as a browser pointed at it sends. A
 * server that recognises it answers and closes (`EarwaxTransport` with
 * `sniffProtocols`: a short plain-text HTTP response, reason `protocol`);
 * one that does not takes it for a few lines of player input.
 *
 * @param target The server (your own), and its probe.
 * @param options The request.
 * @returns What happened (`connection.lastReceived` holds the last line of
 *   any response); never rejects once the options are valid.
 * @throws TypeError (rejects) for invalid options.
 *
 * @publicApi
 */
export async function httpRequestAttack(
  target: HostileTarget,
  options: HttpRequestOptions = {},
): Promise<HostileResult> {
  return planHttpRequest(target, options)();
}
