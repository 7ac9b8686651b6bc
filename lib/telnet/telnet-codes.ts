/**
 * Telnet command bytes (RFC 854, plus EOR from RFC 885): the byte after an
 * IAC.
 *
 * @publicApi
 */
export const TelnetCommand = {
  /** Interpret As Command: starts every command; IAC IAC is a 0xFF data byte. */
  IAC: 255,
  DONT: 254,
  DO: 253,
  WONT: 252,
  WILL: 251,
  /** Subnegotiation Begin: IAC SB <option> <payload> IAC SE. */
  SB: 250,
  /** Go Ahead: the end of a prompt, for clients that do not suppress it. */
  GA: 249,
  /** Erase Line. */
  EL: 248,
  /** Erase Character. */
  EC: 247,
  /** Are You There. */
  AYT: 246,
  /** Abort Output. */
  AO: 245,
  /** Interrupt Process. */
  IP: 244,
  /** Break. */
  BRK: 243,
  /** Data Mark (the data part of a Synch). */
  DM: 242,
  /** No Operation: used as a keep-alive. */
  NOP: 241,
  /** Subnegotiation End. */
  SE: 240,
  /** End Of Record (RFC 885): the end of a prompt once the EOR option is on. */
  EOR: 239,
} as const;

/** One of the {@link TelnetCommand} values. @publicApi */
export type TelnetCommand = (typeof TelnetCommand)[keyof typeof TelnetCommand];

/**
 * Telnet option numbers, as negotiated with IAC WILL/WONT/DO/DONT and used
 * in IAC SB.
 *
 * @publicApi
 */
export const TelnetOption = {
  /** RFC 857. */
  ECHO: 1,
  /** Suppress Go Ahead, RFC 858. */
  SGA: 3,
  /** Terminal Type, RFC 1091. */
  TTYPE: 24,
  /** End Of Record, RFC 885. */
  EOR: 25,
  /** Negotiate About Window Size, RFC 1073. */
  NAWS: 31,
  /** RFC 1184. */
  LINEMODE: 34,
  /** RFC 2066. */
  CHARSET: 42,
  /** MUD Server Status Protocol. */
  MSSP: 70,
  /** MUD Client Compression Protocol v2. */
  MCCP2: 86,
  /** Generic MUD Communication Protocol. */
  GMCP: 201,
} as const;

/** One of the {@link TelnetOption} values. @publicApi */
export type TelnetOption = (typeof TelnetOption)[keyof typeof TelnetOption];

/**
 * The first payload byte (or in-payload markers) of TTYPE, CHARSET and MSSP
 * subnegotiations. Values overlap between options: read them together with
 * the option they belong to.
 *
 * @publicApi
 */
export const TelnetSubCode = {
  /** TTYPE: IAC SB TTYPE IS <name> IAC SE. */
  IS: 0,
  /** TTYPE: IAC SB TTYPE SEND IAC SE. */
  SEND: 1,
  /** CHARSET: IAC SB CHARSET REQUEST <sep> <names> IAC SE. */
  REQUEST: 1,
  /** CHARSET: IAC SB CHARSET ACCEPTED <name> IAC SE. */
  ACCEPTED: 2,
  /** CHARSET: IAC SB CHARSET REJECTED IAC SE. */
  REJECTED: 3,
  /** MSSP: precedes each variable name. */
  MSSP_VAR: 1,
  /** MSSP: precedes each value. */
  MSSP_VAL: 2,
} as const;

/** One of the {@link TelnetSubCode} values. @publicApi */
export type TelnetSubCode = (typeof TelnetSubCode)[keyof typeof TelnetSubCode];

// Names for logs: the options above plus others clients commonly offer, so
// a log says "WILL NEW-ENVIRON" rather than "WILL 39".
const OPTION_NAMES = new Map<number, string>([
  [0, 'BINARY'],
  [TelnetOption.ECHO, 'ECHO'],
  [TelnetOption.SGA, 'SGA'],
  [5, 'STATUS'],
  [6, 'TIMING-MARK'],
  [TelnetOption.TTYPE, 'TTYPE'],
  [TelnetOption.EOR, 'EOR'],
  [TelnetOption.NAWS, 'NAWS'],
  [32, 'TSPEED'],
  [33, 'LFLOW'],
  [TelnetOption.LINEMODE, 'LINEMODE'],
  [35, 'XDISPLOC'],
  [36, 'ENVIRON'],
  [39, 'NEW-ENVIRON'],
  [TelnetOption.CHARSET, 'CHARSET'],
  [69, 'MSDP'],
  [TelnetOption.MSSP, 'MSSP'],
  [85, 'MCCP1'],
  [TelnetOption.MCCP2, 'MCCP2'],
  [90, 'MSP'],
  [91, 'MXP'],
  [93, 'ZMP'],
  [TelnetOption.GMCP, 'GMCP'],
  [255, 'EXOPL'],
]);

/**
 * A readable name for an option number, for logs: `'NAWS'` for 31, and
 * `'option 123'` for a number it does not know (including -1, which the
 * parser reports for a subnegotiation broken before its option byte).
 *
 * @publicApi
 */
export function describeOption(code: number): string {
  return OPTION_NAMES.get(code) ?? `option ${code}`;
}
