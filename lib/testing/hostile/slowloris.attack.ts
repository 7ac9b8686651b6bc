import { positiveInteger, resolveTarget, runAttack } from './attack-runner.js';
import type {
  HostileAttackOptions,
  HostileResult,
  HostileTarget,
} from './hostile.interfaces.js';

/**
 * Options of {@link slowlorisAttack}.
 *
 * @publicApi
 */
export interface SlowlorisOptions extends HostileAttackOptions {
  /**
   * Ms between two bytes.
   * @default 1000
   */
  intervalMs?: number;
  /**
   * How long to keep trickling before giving up, in ms.
   * @default 30000
   */
  durationMs?: number;
}

/** Letters only: the line never ends. */
const DRIP = Buffer.from('slowloris');

/**
 * Checks the options of {@link slowlorisAttack} and returns the attack, ready
 * to run.
 *
 * @throws TypeError for invalid options.
 * @internal
 */
export function planSlowloris(
  target: HostileTarget,
  options: SlowlorisOptions = {},
): () => Promise<HostileResult> {
  const resolved = resolveTarget(target);
  const intervalMs = positiveInteger(
    'slowloris intervalMs',
    options.intervalMs,
    1000,
  );
  const durationMs = positiveInteger(
    'slowloris durationMs',
    options.durationMs,
    30_000,
  );
  const timeoutMs = positiveInteger(
    'slowloris timeoutMs',
    options.timeoutMs,
    durationMs + 5000,
  );
  return () =>
    runAttack(
      'slowloris',
      resolved,
      `1 connection sending 1 byte every ${intervalMs} ms, never a line end, for at most ${durationMs} ms`,
      timeoutMs,
      async (ctx) => {
        const socket = ctx.open();
        if (!(await socket.ready)) return;
        const until = Date.now() + durationMs;
        let sent = 0;
        while (Date.now() < until) {
          const at = sent++ % DRIP.length;
          if (!(await socket.write(DRIP.subarray(at, at + 1)))) return;
          if (sent === 1) void ctx.engaged();
          const wait = Math.min(intervalMs, until - Date.now());
          if (wait <= 0 || !(await ctx.pause(wait, socket))) return;
        }
      },
    );
}

/**
 * Slowloris: one connection that sends one byte every `intervalMs` and never
 * a line end, for at most `durationMs`, holding a connection (and a partial
 * line) for as long as the server lets it. A server that counts only whole
 * lines as activity drops it when its idle timeout runs out
 * (`EarwaxTransport`: reason `idle`).
 *
 * @param target The server (your own), and its probe.
 * @param options How fast and how long.
 * @returns What happened; never rejects once the options are valid.
 * @throws TypeError (rejects) for invalid options.
 *
 * @publicApi
 */
export async function slowlorisAttack(
  target: HostileTarget,
  options: SlowlorisOptions = {},
): Promise<HostileResult> {
  return planSlowloris(target, options)();
}
