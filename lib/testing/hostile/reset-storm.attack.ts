import { positiveInteger, resolveTarget, runAttack } from './attack-runner.js';
import type {
  HostileAttackOptions,
  HostileResult,
  HostileTarget,
} from './hostile.interfaces.js';

/**
 * Options of {@link resetStormAttack}.
 *
 * @publicApi
 */
export interface ResetStormOptions extends HostileAttackOptions {
  /**
   * How many connections in all.
   * @default 1000
   */
  connections?: number;
  /**
   * How many are opened at once: the storm comes in waves of this many.
   * @default 100
   */
  concurrency?: number;
}

/**
 * Checks the options of {@link resetStormAttack} and returns the attack, ready
 * to run.
 *
 * @throws TypeError for invalid options.
 * @internal
 */
export function planResetStorm(
  target: HostileTarget,
  options: ResetStormOptions = {},
): () => Promise<HostileResult> {
  const resolved = resolveTarget(target);
  const count = positiveInteger(
    'reset-storm connections',
    options.connections,
    1000,
  );
  const concurrency = positiveInteger(
    'reset-storm concurrency',
    options.concurrency,
    100,
  );
  const timeoutMs = positiveInteger(
    'reset-storm timeoutMs',
    options.timeoutMs,
    60_000,
  );
  return () =>
    runAttack(
      'reset-storm',
      resolved,
      `${count} connections reset (RST) as soon as they open, ${Math.min(concurrency, count)} at a time`,
      timeoutMs,
      async (ctx) => {
        for (let started = 0; started < count; started += concurrency) {
          if (ctx.signal.aborted) return;
          const wave = Array.from(
            { length: Math.min(concurrency, count - started) },
            () => ctx.open(),
          );
          await Promise.all(
            wave.map(async (socket) => {
              if (await socket.ready) socket.reset();
              await socket.until(() => false);
            }),
          );
          if (started === 0) void ctx.engaged();
        }
      },
    );
}

/**
 * A connect-and-reset storm: connections that are reset (RST, with
 * `socket.resetAndDestroy()`) as soon as they are established, in waves of
 * `concurrency`, before the server has had a chance to say anything. The
 * server must release each one (`EarwaxTransport`: an admitted one ends
 * with reason `reset`; refused ones get `on_block` only) and keep serving.
 *
 * @param target The server (your own), and its probe.
 * @param options How many, and how many at once.
 * @returns What happened; never rejects once the options are valid.
 * @throws TypeError (rejects) for invalid options.
 *
 * @publicApi
 */
export async function resetStormAttack(
  target: HostileTarget,
  options: ResetStormOptions = {},
): Promise<HostileResult> {
  return planResetStorm(target, options)();
}
