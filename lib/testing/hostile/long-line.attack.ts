import { positiveInteger, resolveTarget, runAttack } from './attack-runner.js';
import type {
  HostileAttackOptions,
  HostileResult,
  HostileTarget,
} from './hostile.interfaces.js';

/**
 * Options of {@link longLineAttack}.
 *
 * @publicApi
 */
export interface LongLineOptions extends HostileAttackOptions {
  /**
   * Bytes in the line, its line end not counted.
   * @default 10485760 (10 MiB)
   */
  bytes?: number;
  /**
   * Bytes per write.
   * @default 65536
   */
  chunkBytes?: number;
  /**
   * After the line, ms to wait for the server to close the connection.
   * @default 5000
   */
  waitMs?: number;
}

/**
 * Checks the options of {@link longLineAttack} and returns the attack, ready
 * to run.
 *
 * @throws TypeError for invalid options.
 * @internal
 */
export function planLongLine(
  target: HostileTarget,
  options: LongLineOptions = {},
): () => Promise<HostileResult> {
  const resolved = resolveTarget(target);
  const bytes = positiveInteger(
    'long-line bytes',
    options.bytes,
    10 * 1024 * 1024,
  );
  const chunkBytes = positiveInteger(
    'long-line chunkBytes',
    options.chunkBytes,
    65536,
  );
  const waitMs = positiveInteger('long-line waitMs', options.waitMs, 5000);
  const timeoutMs = positiveInteger(
    'long-line timeoutMs',
    options.timeoutMs,
    60_000,
  );
  return () =>
    runAttack(
      'long-line',
      resolved,
      `1 connection sending one ${bytes}-byte line`,
      timeoutMs,
      async (ctx) => {
        const socket = ctx.open();
        if (!(await socket.ready)) return;
        const chunk = Buffer.alloc(Math.min(chunkBytes, bytes), 'A');
        let sent = 0;
        while (sent < bytes) {
          const size = Math.min(chunk.length, bytes - sent);
          const more = await socket.write(
            size === chunk.length ? chunk : chunk.subarray(0, size),
          );
          sent += size;
          if (sent === size) void ctx.engaged();
          if (!more) return;
        }
        if (!(await socket.write('\r\n'))) return;
        await ctx.pause(waitMs, socket);
      },
    );
}

/**
 * One line of `bytes` bytes (10 MiB by default), written as fast as the
 * server reads it, then its line end. A server that bounds its line buffer
 * stops it early (`EarwaxTransport`: reason `line_too_long`, or the line
 * discarded). The line is written from one reused chunk, so the attack
 * itself holds 64 KiB, not 10 MiB.
 *
 * @param target The server (your own), and its probe.
 * @param options How long a line.
 * @returns What happened; never rejects once the options are valid.
 * @throws TypeError (rejects) for invalid options.
 *
 * @publicApi
 */
export async function longLineAttack(
  target: HostileTarget,
  options: LongLineOptions = {},
): Promise<HostileResult> {
  return planLongLine(target, options)();
}
