import type { Logger } from '@nestjs/common';
import type {
  GmcpMessage,
  MsspOptions,
  TerminalCapabilities,
  TerminalInfo,
  WindowSize,
} from '../interfaces/telnet.interface.js';
import {
  OptionNegotiator,
  type NegotiationPolicy,
  type NegotiationSink,
} from './option-negotiator.js';
import {
  describeOption,
  TelnetCommand,
  TelnetOption,
  TelnetSubCode,
} from './telnet-codes.js';
import {
  subnegotiation,
  TelnetParser,
  type TelnetSink,
} from './telnet-parser.js';

/**
 * The resolved telnet options of a transport.
 *
 * @internal
 */
export interface TelnetSettings {
  readonly ttype: boolean;
  readonly naws: boolean;
  readonly gmcp: boolean;
  readonly charset: boolean;
  readonly eor: boolean;
  readonly mssp: MsspOptions | false;
  readonly mccp2: boolean;
  readonly maxSubnegotiationLength: number;
  /** The shortest time between two MSSP tables to one connection, in ms. */
  readonly msspInterval: number;
  /**
   * The protocol output a connection's input may cause beyond twice that
   * input, in bytes ({@link answerAllowanceOf}).
   */
  readonly answerAllowance: number;
}

/**
 * What a telnet session needs from its transport.
 *
 * @internal
 */
export interface TelnetSessionSink {
  /** Clean input bytes, for the line framer (or a raw `on_data`). */
  data(chunk: Buffer, start: number, end: number): void;
  /**
   * A telnet command, negotiation or subnegotiation arrived: whether it may
   * be acted on. It takes one event from the connection's input rate; false
   * when the rate drops it or the connection is closing (then nothing of it
   * is answered).
   */
  allow(): boolean;
  /**
   * An answer was dropped: the protocol output the client's input caused
   * would have passed twice that input plus the allowance. Called once; the
   * connection is to be treated as flooding.
   */
  overBudget(): void;
  /** Fires an event of the connection (`on_resize`, `on_gmcp`, ...). */
  emit(event: string, payload: unknown): void;
  /**
   * The live MSSP values (PLAYERS, UPTIME, the listeners' PORT and SSL) to
   * send with the static ones.
   */
  msspStatus(): Record<string, string | string[]>;
  /**
   * Writes protocol bytes (negotiation, subnegotiations) under the same
   * slow-consumer policy as any send.
   */
  write(bytes: Buffer): boolean;
  /** MCCP2 was agreed: compress everything after what is written now. */
  startCompression(): void;
  readonly logger: Logger;
}

/** The most TTYPE answers asked for: client, terminal, MTTS, and a repeat. */
const MAX_TTYPE_ROUNDS = 4;
const MTTS_PREFIX = 'MTTS ';
const CHARSET_REQUEST = Buffer.from(';UTF-8;ISO-8859-1', 'latin1');
/** Bytes of small answers batched into one write (from the shared pool). */
const BATCH_SIZE = 4000;

/**
 * What a connection's input may make the server send beyond twice that
 * input, besides the MSSP table: room for the answers of a whole normal
 * negotiation (TTYPE SENDs, the CHARSET request, MCCP2's start) many times
 * over.
 */
const ANSWER_MARGIN = 4096;

/**
 * The answer allowance of a transport's telnet connections: {@link
 * ANSWER_MARGIN} plus the static part of the MSSP table (its NAME and
 * `variables`), so the first table always fits whatever the game puts in it.
 *
 * @internal
 */
export function answerAllowanceOf(mssp: MsspOptions | false): number {
  if (mssp === false) return ANSWER_MARGIN;
  let size = 10 + Buffer.byteLength(mssp.name);
  for (const [name, value] of Object.entries(mssp.variables ?? {})) {
    size += 1 + Buffer.byteLength(name);
    for (const item of Array.isArray(value) ? value : [value]) {
      // Doubled 0xFF bytes included, at worst.
      size += 1 + 2 * Buffer.byteLength(String(item));
    }
  }
  return ANSWER_MARGIN + size;
}

const NO_CAPABILITIES: TerminalCapabilities = Object.freeze(capabilitiesOf(0));

/**
 * One connection's telnet: parses its input, negotiates options (RFC 1143,
 * so negotiation can never loop), and keeps what the client told. Nothing
 * here waits for the client: lines flow from the first byte, and a client
 * that never answers a question simply leaves the answer unknown.
 *
 * What a client's input makes it send is bounded three ways:
 * - Every command, negotiation and subnegotiation takes an event from the
 *   connection's input rate ({@link TelnetSessionSink.allow}); one the rate drops
 *   is not acted on, so a negotiation flood ends in `flood` like a line
 *   flood.
 * - Negotiation is answered only as RFC 1143 says: a request for the state
 *   an option is already in gets no answer, and options the server has not
 *   offered (or the game has not asked for: ECHO) are refused. The MSSP
 *   table goes out at most once per `msspInterval`, the CHARSET request and
 *   MCCP2's start once per connection, TTYPE SEND a few times.
 * - Protocol output caused by input (answers, and what they start: the MSSP
 *   table, TTYPE SEND, ...) is paid from a budget that each chunk read adds
 *   twice its length to, carrying at most `answerAllowance` over from before
 *   it: over any window, that output is at most twice the input read in it
 *   plus `answerAllowance`. An answer past it is dropped and the host told
 *   ({@link TelnetSessionSink.overBudget}); an MSSP table that does not fit is not
 *   sent (and a DO MSSP refused), the table's size being the game's doing.
 *   Offers made at connect, and what the game asks for (`setEcho`,
 *   `sendGmcp`), are not input's doing and are not counted.
 *
 * @internal
 */
export class TelnetSession
  implements TelnetSink, NegotiationSink, NegotiationPolicy
{
  /** The window size, once the client has sent one (NAWS). */
  windowSize: WindowSize | undefined;
  /** The encoding the client agreed to, through CHARSET or MTTS. */
  encoding: BufferEncoding | undefined;
  /** What the client told through TTYPE / MTTS. */
  terminal: TerminalInfo = { capabilities: NO_CAPABILITIES };

  private readonly parser: TelnetParser;
  private readonly options: OptionNegotiator;
  private ttypeRounds = 0;
  /** A TTYPE SEND is out and its answer not yet in. */
  private ttypeAsked = false;
  private subnegotiationErrors = 0;
  private charsetSettled = false;
  /** The CHARSET request is out (it is sent once per connection). */
  private charsetAsked = false;
  /** MCCP2 compression has started (it starts once per connection). */
  private compressing = false;
  /** The game asked the client not to echo (`setEcho(false)`). */
  private echoOff = false;
  /** When the MSSP table was last sent (`Date.now()`). */
  private msspSentAt = -Infinity;
  /** The table built to decide on a DO MSSP, to send once agreed. */
  private msspReady: Buffer | null = null;
  /** Bytes of protocol output the input read so far has paid for. */
  private budget: number;
  /** A negotiation received is being handled: what it sends is an answer. */
  private answering = false;
  /** A chunk is being parsed: small answers are batched. */
  private parsing = false;
  /** Small answers not written yet, and how much of it they fill. */
  private batch: Buffer | null = null;
  private batchLength = 0;
  private overBudgetReported = false;

  constructor(
    private readonly settings: TelnetSettings,
    private readonly host: TelnetSessionSink,
  ) {
    this.parser = new TelnetParser(settings.maxSubnegotiationLength);
    this.options = new OptionNegotiator(this, this);
    this.budget = settings.answerAllowance;
  }

  /**
   * Offers and asks for the options this transport uses (in one write: a
   * connection holds its output until the end of the turn).
   */
  start(): void {
    const { ttype, naws, gmcp, charset, eor, mssp } = this.settings;
    if (ttype) this.options.enableRemote(TelnetOption.TTYPE);
    if (naws) this.options.enableRemote(TelnetOption.NAWS);
    if (gmcp) this.options.enableLocal(TelnetOption.GMCP);
    if (charset) this.options.enableLocal(TelnetOption.CHARSET);
    if (eor) this.options.enableLocal(TelnetOption.EOR);
    if (mssp !== false) this.options.enableLocal(TelnetOption.MSSP);
    if (this.settings.mccp2) this.options.enableLocal(TelnetOption.MCCP2);
  }

  /**
   * Parses a chunk from the socket. Its bytes pay for twice their length in
   * answers; the small answers it causes are batched into few writes.
   */
  push(chunk: Buffer): void {
    this.budget =
      Math.min(this.budget, this.settings.answerAllowance) + 2 * chunk.length;
    this.parsing = true;
    try {
      this.parser.push(chunk, this);
    } finally {
      this.parsing = false;
      this.flushAnswers();
    }
  }

  /**
   * Whether the client should echo what it types (`false`: a password).
   * Only this turns ECHO on: a client's own DO ECHO is refused unless the
   * game has asked for it.
   */
  setEcho(echo: boolean): boolean {
    // The server "will echo" (and then does not), so the client stops.
    this.echoOff = !echo;
    return echo
      ? this.options.disableLocal(TelnetOption.ECHO)
      : this.options.enableLocal(TelnetOption.ECHO);
  }

  /** Whether the server has agreed to echo (so the client hides input). */
  get echoHidden(): boolean {
    return this.options.isLocalEnabled(TelnetOption.ECHO);
  }

  /** Whether GMCP is on (the client agreed to it). */
  get gmcpEnabled(): boolean {
    return this.options.isLocalEnabled(TelnetOption.GMCP);
  }

  /** What ends a prompt: IAC EOR, IAC GA, or nothing (SGA agreed). */
  promptEnd(): Buffer | undefined {
    if (this.options.isLocalEnabled(TelnetOption.EOR)) return IAC_EOR;
    if (this.options.isLocalEnabled(TelnetOption.SGA)) return undefined;
    return IAC_GA;
  }

  /** Writes a GMCP message, if GMCP is on. */
  sendGmcp(pkg: string, data: unknown): boolean {
    if (!this.gmcpEnabled) return false;
    // Throws a TypeError for a cycle or a BigInt before anything is written.
    const json = data === undefined ? undefined : JSON.stringify(data);
    if (data !== undefined && json === undefined) {
      throw new TypeError(
        `sendGmcp(): data for ${pkg} has no JSON form (${typeof data}).`,
      );
    }
    const text = json === undefined ? pkg : `${pkg} ${json}`;
    return this.host.write(
      subnegotiation(TelnetOption.GMCP, Buffer.from(text, 'utf8')),
    );
  }

  onTelnetData(chunk: Buffer, start: number, end: number): void {
    // Answers first: a handler the data reaches may write too.
    if (this.batch !== null) this.flushAnswers();
    this.host.data(chunk, start, end);
  }

  onTelnetCommand(): void {
    // NOP, GA, AYT, ...: nothing a game server has to act on, but each one
    // counts against the input rate.
    this.host.allow();
  }

  onTelnetNegotiation(verb: number, option: number): void {
    if (!this.host.allow()) return;
    this.answering = true;
    try {
      this.options.receive(verb, option);
    } finally {
      this.answering = false;
    }
  }

  onTelnetSubnegotiation(option: number, payload: Buffer): void {
    if (!this.host.allow()) return;
    // Only options both sides agreed to: a client cannot push GMCP or window
    // sizes at a server that never turned them on, nor TTYPE answers that
    // were not asked for.
    const options = this.options;
    switch (option) {
      case TelnetOption.NAWS:
        if (options.isRemoteEnabled(option)) return this.naws(payload);
        break;
      case TelnetOption.TTYPE:
        if (this.ttypeAsked) return this.ttype(payload);
        break;
      case TelnetOption.GMCP:
        if (options.isLocalEnabled(option)) return this.gmcp(payload);
        break;
      case TelnetOption.CHARSET:
        if (options.isLocalEnabled(option)) return this.charset(payload);
        break;
    }
    this.host.logger.debug(
      `Ignored subnegotiation of ${describeOption(option)}.`,
    );
  }

  onTelnetSubnegotiationError(
    option: number,
    reason: 'overflow' | 'malformed',
  ): void {
    if (!this.host.allow()) return;
    const message =
      reason === 'overflow'
        ? `Subnegotiation of ${describeOption(option)} longer than ${this.settings.maxSubnegotiationLength} bytes: dropped.`
        : `Malformed subnegotiation of ${describeOption(option)}: dropped.`;
    // One warning per connection: a client sending broken sequences on
    // purpose must not flood the log; the rest go to debug.
    if (this.subnegotiationErrors++ === 0) {
      this.host.logger.warn(
        `${message} (Further ones are logged at debug level.)`,
      );
    } else {
      this.host.logger.debug(message);
    }
  }

  sendNegotiation(verb: number, option: number): void {
    const bytes = cachedNegotiation(verb, option);
    // An answer to the client is paid for by its input; our own requests
    // (offers at connect, setEcho) are not.
    if (this.answering) this.reply(bytes);
    else this.host.write(bytes);
  }

  /**
   * The client sent DO for an option we had not offered (or had turned
   * off): whether we now perform it. Only what the server really does, and
   * only while it may: ECHO only while the game asked for it (a password),
   * MSSP at most once per interval, MCCP2 only before compression started.
   */
  acceptLocal(option: number): boolean {
    const settings = this.settings;
    switch (option) {
      case TelnetOption.ECHO:
        return this.echoOff;
      case TelnetOption.SGA:
        // Honoured: promptEnd() sends no GA once SGA is on.
        return true;
      case TelnetOption.GMCP:
        return settings.gmcp;
      case TelnetOption.CHARSET:
        return settings.charset;
      case TelnetOption.EOR:
        return settings.eor;
      case TelnetOption.MSSP: {
        if (!this.msspDue()) return false;
        // Refused, rather than sent past the answer budget: a client that
        // asks again and again, sending little else, stops getting tables
        // (WONT MSSP) instead of being cut off.
        const table = this.msspTable();
        if (3 + table.length > this.budget) return false;
        this.msspReady = table;
        return true;
      }
      case TelnetOption.MCCP2:
        return settings.mccp2 && !this.compressing;
      default:
        return false;
    }
  }

  /**
   * The client sent WILL for an option we had not asked for (or had turned
   * off): whether we want it. Only what the server asks for at connect.
   */
  acceptRemote(option: number): boolean {
    switch (option) {
      case TelnetOption.TTYPE:
        return this.settings.ttype;
      case TelnetOption.NAWS:
        return this.settings.naws;
      default:
        return false;
    }
  }

  optionChanged(
    option: number,
    side: 'local' | 'remote',
    enabled: boolean,
  ): void {
    // Only ever reached from a received negotiation: what follows is paid
    // for by the input, and each is bounded per connection.
    if (!enabled) return;
    if (side === 'remote' && option === TelnetOption.TTYPE) {
      this.askTtype();
    } else if (side === 'local' && option === TelnetOption.MSSP) {
      this.sendMssp();
    } else if (side === 'local' && option === TelnetOption.MCCP2) {
      if (this.compressing) return;
      // Compression starts right after this subnegotiation (MCCP2).
      if (!this.reply(subnegotiation(TelnetOption.MCCP2, Buffer.alloc(0)))) {
        return;
      }
      this.flushAnswers();
      this.compressing = true;
      this.host.startCompression();
    } else if (side === 'local' && option === TelnetOption.CHARSET) {
      if (this.charsetAsked) return;
      this.charsetAsked = true;
      this.reply(
        subnegotiation(
          TelnetOption.CHARSET,
          Buffer.concat([Buffer.of(TelnetSubCode.REQUEST), CHARSET_REQUEST]),
        ),
      );
    }
  }

  /**
   * Writes protocol output the client's input caused, if its budget holds
   * it; the first one it does not hold is reported and nothing more is
   * written. While a chunk is parsed, small answers are copied into a batch,
   * written when it is full, before data or an event goes on to the game
   * (whose handlers may write), and at the end of the chunk: a flood of
   * requests costs a few writes per chunk, not one per answer. (Corking the
   * socket instead hands libuv thousands of 3-byte buffers, which it writes
   * at most 1,024 per turn of the event loop: output then falls behind.)
   *
   * @returns Whether it was written or batched (and the output is not over
   * its limit).
   */
  private reply(bytes: Buffer): boolean {
    const length = bytes.length;
    if (length > this.budget) {
      this.budget = 0;
      if (!this.overBudgetReported) {
        this.overBudgetReported = true;
        this.flushAnswers();
        this.host.overBudget();
      }
      return false;
    }
    this.budget -= length;
    if (!this.parsing || length > BATCH_SIZE / 8) {
      this.flushAnswers();
      return this.host.write(bytes);
    }
    if (this.batch !== null && this.batchLength + length > BATCH_SIZE) {
      this.flushAnswers();
    }
    if (this.batch === null) {
      // From the shared pool (under 4 KiB), and handed to the stream whole
      // when written: never reused while queued.
      this.batch = Buffer.allocUnsafe(BATCH_SIZE);
      this.batchLength = 0;
    }
    bytes.copy(this.batch, this.batchLength);
    this.batchLength += length;
    return true;
  }

  /**
   * Writes the batched answers, if any: before anything else is written to
   * the connection during a chunk (the transport's flood warning, say), so
   * that output stays in order.
   */
  flushAnswers(): void {
    const batch = this.batch;
    if (batch === null) return;
    this.batch = null;
    this.host.write(batch.subarray(0, this.batchLength));
  }

  /** Fires an event, after the answers so far (its handler may write). */
  private emit(event: string, payload: unknown): void {
    this.flushAnswers();
    this.host.emit(event, payload);
  }

  /** Whether an MSSP table may go out now (once per `msspInterval`). */
  private msspDue(): boolean {
    return (
      this.settings.mssp !== false &&
      Date.now() - this.msspSentAt >= this.settings.msspInterval
    );
  }

  private naws(payload: Buffer): void {
    if (payload.length !== 4) {
      this.host.logger.warn(`NAWS of ${payload.length} bytes: ignored.`);
      return;
    }
    const size = {
      width: payload.readUInt16BE(0),
      height: payload.readUInt16BE(2),
    };
    const previous = this.windowSize;
    if (previous?.width === size.width && previous.height === size.height) {
      return;
    }
    this.windowSize = size;
    this.emit('on_resize', size);
  }

  private askTtype(): void {
    // However often the client turns TTYPE off and on, the cycle is bounded.
    if (this.ttypeRounds >= MAX_TTYPE_ROUNDS) return;
    this.ttypeRounds++;
    this.ttypeAsked = true;
    this.reply(TTYPE_SEND);
  }

  private ttype(payload: Buffer): void {
    if (payload.length === 0 || payload[0] !== TelnetSubCode.IS) return;
    this.ttypeAsked = false;
    const name = payload.toString('latin1', 1).trim();
    const terminal = this.terminal;
    let next: TerminalInfo;
    let done = false;
    if (name.toUpperCase().startsWith(MTTS_PREFIX)) {
      const mtts = Number.parseInt(name.slice(MTTS_PREFIX.length), 10);
      next = Number.isFinite(mtts)
        ? { ...terminal, mtts, capabilities: capabilitiesOf(mtts) }
        : terminal;
      done = true;
      if (Number.isFinite(mtts) && !this.charsetSettled) {
        this.encoding = mtts & 4 ? 'utf8' : 'latin1';
      }
    } else if (terminal.client === undefined) {
      next = { ...terminal, client: name };
    } else if (terminal.terminal === undefined && name !== terminal.client) {
      next = { ...terminal, terminal: name };
    } else {
      // The same answer twice: the client has no more to tell.
      next = terminal;
      done = true;
    }
    this.terminal = next;
    if (!done && this.ttypeRounds < MAX_TTYPE_ROUNDS) {
      this.askTtype();
    } else {
      this.emit('on_terminal', next);
    }
  }

  private gmcp(payload: Buffer): void {
    const text = payload.toString('utf8');
    const space = text.indexOf(' ');
    const pkg = space === -1 ? text : text.slice(0, space);
    if (pkg.length === 0) {
      this.host.logger.warn('GMCP message without a package name: ignored.');
      return;
    }
    let data: unknown;
    if (space !== -1 && text.slice(space + 1).trim() !== '') {
      try {
        data = JSON.parse(text.slice(space + 1));
      } catch (err) {
        this.host.logger.warn(
          `GMCP ${pkg} with invalid JSON ignored: ${(err as Error).message}`,
        );
        return;
      }
    }
    const message: GmcpMessage = { package: pkg, data };
    this.emit('on_gmcp', message);
  }

  private charset(payload: Buffer): void {
    if (payload.length === 0) return;
    if (payload[0] === TelnetSubCode.ACCEPTED) {
      const name = payload.toString('latin1', 1).trim().toUpperCase();
      if (name === 'UTF-8' || name === 'UTF8') this.encoding = 'utf8';
      else if (name === 'ISO-8859-1' || name === 'LATIN1') {
        this.encoding = 'latin1';
      }
      this.charsetSettled = true;
    } else if (payload[0] === TelnetSubCode.REJECTED) {
      this.charsetSettled = true;
    }
  }

  private sendMssp(): void {
    if (!this.msspDue()) return;
    const table = this.msspReady ?? this.msspTable();
    this.msspReady = null;
    if (table.length > this.budget) {
      // Our table, not the client's doing: not sent, but not a flood either.
      this.host.logger.warn(
        `MSSP table of ${table.length} bytes not sent: past the connection's answer budget (${this.budget} bytes).`,
      );
      return;
    }
    this.msspSentAt = Date.now();
    this.reply(table);
  }

  /** The MSSP subnegotiation, with the live values of now. */
  private msspTable(): Buffer {
    const mssp = this.settings.mssp;
    if (mssp === false) return Buffer.alloc(0);
    const values: Record<string, string | number | Array<string | number>> = {
      NAME: mssp.name,
      ...this.host.msspStatus(),
      ...mssp.variables,
    };
    const parts: Buffer[] = [];
    for (const [name, value] of Object.entries(values)) {
      parts.push(Buffer.of(TelnetSubCode.MSSP_VAR), Buffer.from(name, 'utf8'));
      for (const item of Array.isArray(value) ? value : [value]) {
        parts.push(
          Buffer.of(TelnetSubCode.MSSP_VAL),
          Buffer.from(String(item), 'utf8'),
        );
      }
    }
    return subnegotiation(TelnetOption.MSSP, Buffer.concat(parts));
  }
}

const IAC_EOR = Buffer.of(TelnetCommand.IAC, TelnetCommand.EOR);
const IAC_GA = Buffer.of(TelnetCommand.IAC, TelnetCommand.GA);
const TTYPE_SEND = subnegotiation(
  TelnetOption.TTYPE,
  Buffer.of(TelnetSubCode.SEND),
);

/**
 * IAC <verb> <option> for the four verbs and every option, in one 3 KiB
 * buffer of its own (not a pool slab) shared by every connection, and views
 * of it made on first use: an answer allocates nothing. Written, never
 * changed.
 */
const NEGOTIATION_TABLE = Buffer.allocUnsafeSlow(4 * 256 * 3);
for (let verb = 0; verb < 4; verb++) {
  for (let option = 0; option < 256; option++) {
    const at = ((verb << 8) | option) * 3;
    NEGOTIATION_TABLE[at] = TelnetCommand.IAC;
    NEGOTIATION_TABLE[at + 1] = TelnetCommand.WILL + verb;
    NEGOTIATION_TABLE[at + 2] = option;
  }
}
const NEGOTIATIONS: Array<Buffer | undefined> = new Array(4 * 256);

/** IAC `verb` `option`; `verb` is WILL, WONT, DO or DONT. */
function cachedNegotiation(verb: number, option: number): Buffer {
  const index = ((verb - TelnetCommand.WILL) << 8) | option;
  return (NEGOTIATIONS[index] ??= NEGOTIATION_TABLE.subarray(
    index * 3,
    index * 3 + 3,
  ));
}

function capabilitiesOf(mtts: number): TerminalCapabilities {
  return {
    ansi: (mtts & 1) !== 0,
    vt100: (mtts & 2) !== 0,
    utf8: (mtts & 4) !== 0,
    colors256: (mtts & 8) !== 0,
    mouseTracking: (mtts & 16) !== 0,
    oscColorPalette: (mtts & 32) !== 0,
    screenReader: (mtts & 64) !== 0,
    proxy: (mtts & 128) !== 0,
    trueColor: (mtts & 256) !== 0,
    mnes: (mtts & 512) !== 0,
    mslp: (mtts & 1024) !== 0,
    tls: (mtts & 2048) !== 0,
  };
}
