import { positiveInteger, resolveTarget, runAttack } from './attack-runner.js';
import type { HostileSocket } from './hostile-socket.js';
import type {
  HostileAttackOptions,
  HostileResult,
  HostileTarget,
} from './hostile.interfaces.js';

/** Connections opened between two turns of the event loop. */
const OPEN_BATCH = 100;

/**
 * Options of {@link connectionFloodAttack}.
 *
 * @publicApi
 */
export interface ConnectionFloodOptions extends HostileAttackOptions {
  /**
   * How many connections, all opened at once. Each takes a file descriptor
   * here (and one in the server): mind `ulimit -n`.
   * @default 1000
   */
  connections?: number;
  /**
   * What the server sends a connection it admits (a banner, a login
   * prompt): a connection has settled once it received it, or was closed.
   * Without it, a connection has settled once it is established, and the
   * tally cannot tell admitted from refused connections that the server has
   * not closed yet.
   */
  greeting?: string | RegExp;
  /**
   * How long to wait for every connection to settle, in ms.
   * @default 15000
   */
  settleMs?: number;
  /**
   * Once all have settled, how long to hold them (the probe runs meanwhile),
   * in ms.
   * @default 1000
   */
  holdMs?: number;
}

/**
 * Checks the options of {@link connectionFloodAttack} and returns the attack, ready
 * to run.
 *
 * @throws TypeError for invalid options.
 * @internal
 */
export function planConnectionFlood(
  target: HostileTarget,
  options: ConnectionFloodOptions = {},
): () => Promise<HostileResult> {
  const resolved = resolveTarget(target);
  const count = positiveInteger(
    'connection-flood connections',
    options.connections,
    1000,
  );
  const { greeting } = options;
  if (
    greeting !== undefined &&
    typeof greeting !== 'string' &&
    !(greeting instanceof RegExp)
  ) {
    throw new TypeError(
      'nestjs-earwax/testing: connection-flood greeting must be a string or a RegExp.',
    );
  }
  const settleMs = positiveInteger(
    'connection-flood settleMs',
    options.settleMs,
    15_000,
  );
  const holdMs = positiveInteger(
    'connection-flood holdMs',
    options.holdMs,
    1000,
  );
  const timeoutMs = positiveInteger(
    'connection-flood timeoutMs',
    options.timeoutMs,
    settleMs + holdMs + 10_000,
  );
  const sources = Math.max(1, Math.min(resolved.from.length, count));
  return () =>
    runAttack(
      'connection-flood',
      resolved,
      `${count} connections opened at once from ${sources} address${sources === 1 ? '' : 'es'}, held until ${greeting === undefined ? 'established' : 'greeted'} or closed, then ${holdMs} ms more`,
      timeoutMs,
      async (ctx) => {
        const sockets: HostileSocket[] = [];
        for (let i = 0; i < count && !ctx.signal.aborted; i++) {
          sockets.push(ctx.open({ greeting }));
          // A turn of the event loop now and then lets a server in this
          // process accept what came so far: opening thousands in one go
          // overflows its accept queue, and the kernel then drops the
          // handshakes' last ACKs, to be retried seconds later.
          if (i % OPEN_BATCH === OPEN_BATCH - 1) await ctx.turn();
        }
        let late = false;
        const timer = setTimeout(() => {
          late = true;
          for (const socket of sockets) socket.wake();
        }, settleMs);
        await Promise.all(
          sockets.map(async (socket) => {
            if (!(await socket.ready)) return;
            await socket.until(
              () =>
                late ||
                socket.serverHasClosed ||
                greeting === undefined ||
                socket.greeted,
            );
          }),
        );
        clearTimeout(timer);
        await ctx.engaged();
        await ctx.pause(holdMs);
      },
    );
}

/**
 * A connection flood: `connections` connections opened at once (from the
 * target's `from` addresses in turn), held until each is greeted or closed,
 * held `holdMs` more while the probe runs, then all ended cleanly. From one
 * address, a server with a per-address limit refuses those past it
 * (`EarwaxTransport`: `on_block` with `too_many_connections`); spread over
 * many, or with the limit raised, all are admitted and the others are
 * still served.
 *
 * @param target The server (your own), and its probe.
 * @param options How many, and how to tell they are admitted.
 * @returns What happened (`connections.greeted` counts the admitted ones
 *   when `greeting` is set); never rejects once the options are valid.
 * @throws TypeError (rejects) for invalid options.
 *
 * @publicApi
 */
export async function connectionFloodAttack(
  target: HostileTarget,
  options: ConnectionFloodOptions = {},
): Promise<HostileResult> {
  return planConnectionFlood(target, options)();
}
