import { positiveInteger, resolveTarget, runAttack } from './attack-runner.js';
import type {
  HostileAttackOptions,
  HostileResult,
  HostileTarget,
} from './hostile.interfaces.js';

/**
 * Options of {@link tinyPacketsAttack}.
 *
 * @publicApi
 */
export interface TinyPacketsOptions extends HostileAttackOptions {
  /**
   * How many 1-byte writes.
   * @default 1000000
   */
  packets?: number;
  /**
   * After the last one, ms to wait for the server to close the connection.
   * @default 2000
   */
  waitMs?: number;
}

/** `x`, line end, `x`, line end, ...: a one-letter line every two packets. */
const BYTES = [Buffer.from('x'), Buffer.from('\n')];
/** Writes between two turns of the event loop. */
const BATCH = 256;

/**
 * Checks the options of {@link tinyPacketsAttack} and returns the attack, ready
 * to run.
 *
 * @throws TypeError for invalid options.
 * @internal
 */
export function planTinyPackets(
  target: HostileTarget,
  options: TinyPacketsOptions = {},
): () => Promise<HostileResult> {
  const resolved = resolveTarget(target);
  const packets = positiveInteger(
    'tiny-packets packets',
    options.packets,
    1_000_000,
  );
  const waitMs = positiveInteger('tiny-packets waitMs', options.waitMs, 2000);
  const timeoutMs = positiveInteger(
    'tiny-packets timeoutMs',
    options.timeoutMs,
    120_000,
  );
  return () =>
    runAttack(
      'tiny-packets',
      resolved,
      `1 connection sending ${packets} 1-byte packets (a one-letter line every 2)`,
      timeoutMs,
      async (ctx) => {
        const socket = ctx.open();
        if (!(await socket.ready)) return;
        void ctx.engaged();
        for (let i = 0; i < packets; i++) {
          if (ctx.signal.aborted || !(await socket.writeAlone(BYTES[i & 1])))
            return;
          // Awaiting a write's callback never reaches the event loop's I/O
          // phase: let the server (perhaps in this process) read now and then.
          if (i % BATCH === BATCH - 1) await ctx.turn();
        }
        await ctx.pause(waitMs, socket);
      },
    );
}

/**
 * A million tiny packets: 1-byte writes, each waiting for the previous one to
 * leave so it goes out on its own (with Nagle's algorithm off), making a
 * one-letter line every two bytes: the most reads and events per byte a
 * client can cause. A server with an input rate drops it as a flood
 * (`EarwaxTransport`: reason `flood`); without one, it has half a million
 * lines to handle in order.
 *
 * @param target The server (your own), and its probe.
 * @param options How many packets.
 * @returns What happened; never rejects once the options are valid.
 * @throws TypeError (rejects) for invalid options.
 *
 * @publicApi
 */
export async function tinyPacketsAttack(
  target: HostileTarget,
  options: TinyPacketsOptions = {},
): Promise<HostileResult> {
  return planTinyPackets(target, options)();
}
