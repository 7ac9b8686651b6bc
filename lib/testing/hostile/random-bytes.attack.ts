import { positiveInteger, resolveTarget, runAttack } from './attack-runner.js';
import type {
  HostileAttackOptions,
  HostileResult,
  HostileTarget,
} from './hostile.interfaces.js';
import { seededChunks } from './seeded-random.js';

/**
 * Options of {@link randomBytesAttack}.
 *
 * @publicApi
 */
export interface RandomBytesOptions extends HostileAttackOptions {
  /**
   * How many random bytes.
   * @default 1048576 (1 MiB)
   */
  bytes?: number;
  /**
   * The seed: the same seed sends the same bytes in the same chunks, so a
   * failure can be replayed.
   * @default 1
   */
  seed?: number;
  /**
   * The largest write; each is 1 to this many bytes, at random.
   * @default 4096
   */
  maxChunkBytes?: number;
  /**
   * After the last byte the client ends its side; ms to wait for the server
   * to close its own.
   * @default 5000
   */
  waitMs?: number;
}

/**
 * Checks the options of {@link randomBytesAttack} and returns the attack, ready
 * to run.
 *
 * @throws TypeError for invalid options.
 * @internal
 */
export function planRandomBytes(
  target: HostileTarget,
  options: RandomBytesOptions = {},
): () => Promise<HostileResult> {
  const resolved = resolveTarget(target);
  const bytes = positiveInteger(
    'random-bytes bytes',
    options.bytes,
    1024 * 1024,
  );
  const seed = options.seed ?? 1;
  if (!Number.isSafeInteger(seed)) {
    throw new TypeError(
      `nestjs-earwax/testing: random-bytes seed must be an integer, got ${String(seed)}.`,
    );
  }
  const maxChunkBytes = positiveInteger(
    'random-bytes maxChunkBytes',
    options.maxChunkBytes,
    4096,
  );
  const waitMs = positiveInteger('random-bytes waitMs', options.waitMs, 5000);
  const timeoutMs = positiveInteger(
    'random-bytes timeoutMs',
    options.timeoutMs,
    60_000,
  );
  return () =>
    runAttack(
      'random-bytes',
      resolved,
      `1 connection sending ${bytes} random bytes (seed ${seed}), then ending its side`,
      timeoutMs,
      async (ctx) => {
        const socket = ctx.open();
        if (!(await socket.ready)) return;
        void ctx.engaged();
        for (const chunk of seededChunks(seed, bytes, maxChunkBytes)) {
          if (ctx.signal.aborted || !(await socket.write(chunk))) return;
          // One write per turn, so they reach the server as separate reads.
          await ctx.turn();
        }
        socket.halfClose();
        await ctx.pause(waitMs, socket);
      },
    );
}

/**
 * Random bytes from a seeded generator, in writes of random sizes: line ends,
 * NULs, 0xFF (telnet's IAC), invalid UTF-8 and anything else, at the rate
 * the server reads them. Then the client ends its side and waits for the
 * server to close. What the server makes of them depends on its framing; it
 * must stay up and keep serving everyone else.
 *
 * @param target The server (your own), and its probe.
 * @param options How many bytes, and the seed.
 * @returns What happened; never rejects once the options are valid.
 * @throws TypeError (rejects) for invalid options.
 *
 * @publicApi
 */
export async function randomBytesAttack(
  target: HostileTarget,
  options: RandomBytesOptions = {},
): Promise<HostileResult> {
  return planRandomBytes(target, options)();
}
