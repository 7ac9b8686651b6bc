/**
 * `nestjs-earwax/telnet`: the telnet codec the transport runs on, for tools,
 * bots and tests that speak telnet to a game, and for a game that writes an
 * option the transport does not handle itself with `ctx.sendRaw()`: the
 * incremental `TelnetParser`, the byte builders `negotiation()`,
 * `subnegotiation()` and `escapeIac()`, the byte values and
 * `describeOption()`. A game server needs none of it: telnet mode is the
 * transport's `telnet` option.
 *
 * @packageDocumentation
 */
export {
  describeOption,
  TelnetCommand,
  TelnetOption,
  TelnetSubCode,
} from './telnet-codes.js';
export {
  escapeIac,
  negotiation,
  subnegotiation,
  TelnetParser,
  type TelnetSink,
} from './telnet-parser.js';
