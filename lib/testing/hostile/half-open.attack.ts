import { positiveInteger, resolveTarget, runAttack } from './attack-runner.js';
import type {
  HostileAttackOptions,
  HostileResult,
  HostileTarget,
} from './hostile.interfaces.js';

/**
 * How the connections of {@link halfOpenAttack} behave after ending their
 * side.
 *
 * - `'end-and-read'`: they keep reading, and wait for the server to answer
 *   and close its side.
 * - `'never-read'`: they never read a byte, and are held for `holdMs`.
 *
 * @publicApi
 */
export type HalfOpenMode = 'end-and-read' | 'never-read';

/**
 * Options of {@link halfOpenAttack}.
 *
 * @publicApi
 */
export interface HalfOpenOptions extends HostileAttackOptions {
  /**
   * How the connections behave.
   * @default 'end-and-read'
   */
  mode?: HalfOpenMode;
  /**
   * How many connections.
   * @default 20
   */
  connections?: number;
  /**
   * How long they are held, in ms, at most (`'end-and-read'`: until the
   * server has closed every one).
   * @default 3000
   */
  holdMs?: number;
}

/**
 * Checks the options of {@link halfOpenAttack} and returns the attack, ready
 * to run.
 *
 * @throws TypeError for invalid options.
 * @internal
 */
export function planHalfOpen(
  target: HostileTarget,
  options: HalfOpenOptions = {},
): () => Promise<HostileResult> {
  const resolved = resolveTarget(target);
  const mode = options.mode ?? 'end-and-read';
  if (mode !== 'end-and-read' && mode !== 'never-read') {
    throw new TypeError(
      `nestjs-earwax/testing: half-open mode must be 'end-and-read' or 'never-read', got ${JSON.stringify(mode)}.`,
    );
  }
  const count = positiveInteger(
    'half-open connections',
    options.connections,
    20,
  );
  const holdMs = positiveInteger('half-open holdMs', options.holdMs, 3000);
  const timeoutMs = positiveInteger(
    'half-open timeoutMs',
    options.timeoutMs,
    holdMs + 10_000,
  );
  const line = Buffer.from(
    `${resolved.probe.line}\r\n`,
    resolved.probe.encoding,
  );
  return () =>
    runAttack(
      'half-open',
      resolved,
      `${count} connections sending the probe's line, then ending their side and ${mode === 'end-and-read' ? 'reading on' : 'never reading'}`,
      timeoutMs,
      async (ctx) => {
        const sockets = Array.from({ length: count }, () =>
          ctx.open({ read: mode === 'end-and-read' }),
        );
        await Promise.all(
          sockets.map(async (socket) => {
            if (!(await socket.ready)) return;
            await socket.write(line);
            socket.halfClose();
          }),
        );
        void ctx.engaged();
        const holding = ctx.pause(holdMs);
        if (mode === 'never-read') {
          await holding;
          return;
        }
        // Done once every connection is closed by the server, or at holdMs.
        let held = false;
        void holding.then(() => {
          held = true;
          for (const socket of sockets) socket.wake();
        });
        await Promise.all(
          sockets.map((socket) =>
            socket.until(() => held || socket.serverHasClosed),
          ),
        );
      },
    );
}

/**
 * Half-open connections: each sends the probe's line and ends its side at
 * once (FIN), then either keeps reading until the server closes its own, or
 * never reads at all. A server that allows half-close (as
 * `EarwaxTransport` does) still answers the line, then closes: reason
 * `client_closed`, and no socket left behind.
 *
 * @param target The server (your own), and its probe.
 * @param options How many, and how they behave.
 * @returns What happened; never rejects once the options are valid.
 * @throws TypeError (rejects) for invalid options.
 *
 * @publicApi
 */
export async function halfOpenAttack(
  target: HostileTarget,
  options: HalfOpenOptions = {},
): Promise<HostileResult> {
  return planHalfOpen(target, options)();
}
