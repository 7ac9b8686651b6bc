import {
  TelnetCommand,
  TelnetOption,
  TelnetSubCode,
} from '../../telnet/telnet-codes.js';
import {
  escapeIac,
  negotiation,
  subnegotiation,
} from '../../telnet/telnet-parser.js';
import { positiveInteger, resolveTarget, runAttack } from './attack-runner.js';
import type {
  HostileAttackOptions,
  HostileResult,
  HostileTarget,
} from './hostile.interfaces.js';

/**
 * Options of {@link splitTelnetAttack}.
 *
 * @publicApi
 */
export interface SplitTelnetOptions extends HostileAttackOptions {
  /**
   * The telnet sequences to send, in order; {@link SPLIT_TELNET_SEQUENCES}
   * by default.
   */
  sequences?: readonly Uint8Array[];
  /**
   * Ms to wait for the reply to the probe's line, sent last on the same
   * connection.
   * @default the probe's timeoutMs
   */
  waitMs?: number;
}

const { IAC, SB, SE, WILL, WONT, DO, DONT, NOP, AYT, GA } = TelnetCommand;
const { TTYPE, NAWS, GMCP, CHARSET, MSSP, ECHO } = TelnetOption;

/**
 * The sequences {@link splitTelnetAttack} sends by default: answers to a
 * MUD server's offers, window sizes (one with a 0xFF byte, doubled), a GMCP
 * message, bare commands, 0xFF and CR NUL inside a line, an unsolicited
 * TTYPE, malformed commands, a subnegotiation of an option never agreed,
 * and one longer than a server's usual 8 KiB bound.
 *
 * @publicApi
 */
export const SPLIT_TELNET_SEQUENCES: readonly Uint8Array[] = [
  negotiation(WILL, TTYPE),
  negotiation(WILL, NAWS),
  negotiation(DO, GMCP),
  negotiation(WONT, CHARSET),
  negotiation(DONT, MSSP),
  negotiation(DO, ECHO),
  negotiation(WILL, 99),
  subnegotiation(NAWS, Buffer.from([0, 80, 0, 24])),
  subnegotiation(NAWS, Buffer.from([0, 255, 0, 50])),
  subnegotiation(GMCP, 'Core.Hello {"client":"hostile","version":"1"}'),
  Buffer.from([IAC, NOP, IAC, AYT, IAC, GA]),
  Buffer.from([0x61, IAC, IAC, 0x62, 0x0d, 0x00]),
  Buffer.from('\r\n'),
  subnegotiation(
    TTYPE,
    Buffer.from([TelnetSubCode.IS, ...Buffer.from('xterm')]),
  ),
  Buffer.from([IAC, SE, IAC, 0x01, IAC, SB, IAC, SE]),
  subnegotiation(99, 'never agreed'),
  subnegotiation(GMCP, `Big.Message "${'A'.repeat(9000)}"`),
];

/**
 * Checks the options of {@link splitTelnetAttack} and returns the attack, ready
 * to run.
 *
 * @throws TypeError for invalid options.
 * @internal
 */
export function planSplitTelnet(
  target: HostileTarget,
  options: SplitTelnetOptions = {},
): () => Promise<HostileResult> {
  const resolved = resolveTarget(target);
  const sequences = options.sequences ?? SPLIT_TELNET_SEQUENCES;
  if (
    !Array.isArray(sequences) ||
    !sequences.every((s) => s instanceof Uint8Array)
  ) {
    throw new TypeError(
      'nestjs-earwax/testing: split-telnet sequences must be an array of Uint8Arrays.',
    );
  }
  const waitMs = positiveInteger(
    'split-telnet waitMs',
    options.waitMs,
    resolved.probe.timeoutMs,
  );
  const timeoutMs = positiveInteger(
    'split-telnet timeoutMs',
    options.timeoutMs,
    60_000,
  );
  // After a line end of its own, so that it is a whole line even for a
  // server that reads all of this as text.
  const line = escapeIac(
    Buffer.from(`\r\n${resolved.probe.line}\r\n`, resolved.probe.encoding),
  );
  const bytes = Buffer.concat([...sequences, line]);
  return () =>
    runAttack(
      'split-telnet',
      resolved,
      `1 connection sending ${sequences.length} telnet sequences and the probe's line, 1 byte per packet (${bytes.length} packets)`,
      timeoutMs,
      async (ctx) => {
        const socket = ctx.open({ telnet: true });
        if (!(await socket.ready)) return;
        void ctx.engaged();
        for (let i = 0; i < bytes.length; i++) {
          if (
            ctx.signal.aborted ||
            !(await socket.writeAlone(bytes.subarray(i, i + 1)))
          )
            return;
          await ctx.turn();
        }
        let timedOut = false;
        const timer = setTimeout(() => {
          timedOut = true;
          socket.wake();
        }, waitMs);
        await socket.until(() => timedOut || socket.answers > 0);
        clearTimeout(timer);
      },
    );
}

/**
 * Telnet sequences split at every byte: each byte of
 * {@link SPLIT_TELNET_SEQUENCES} (or yours) is its own write, sent once the
 * previous one has left, with a turn of the event loop between them; then
 * the probe's line, byte by byte too, whose reply must come on this same
 * connection (the result's `connection.answered`). For a server in telnet
 * mode, whose parser must give the same result for any split.
 *
 * @param target The server (your own), and its probe.
 * @param options Which sequences.
 * @returns What happened; never rejects once the options are valid.
 * @throws TypeError (rejects) for invalid options.
 *
 * @publicApi
 */
export async function splitTelnetAttack(
  target: HostileTarget,
  options: SplitTelnetOptions = {},
): Promise<HostileResult> {
  return planSplitTelnet(target, options)();
}
