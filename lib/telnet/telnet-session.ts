import type { Logger } from '@nestjs/common';
import type { Writable } from 'node:stream';
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
  negotiation,
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
}

/**
 * What a telnet session needs from its transport.
 *
 * @internal
 */
export interface TelnetHost {
  /** Clean input bytes, for the line framer (or a raw `on_data`). */
  data(chunk: Buffer, start: number, end: number): void;
  /** Fires an event of the connection (`on_resize`, `on_gmcp`, ...). */
  emit(event: string, payload: unknown): void;
  /**
   * The live MSSP values (PLAYERS, UPTIME, the listeners' PORT and SSL) to
   * send with the static ones.
   */
  msspStatus(): Record<string, string | string[]>;
  /** Where output goes now (the socket, or its compressor). */
  readonly out: Writable;
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

const NO_CAPABILITIES: TerminalCapabilities = Object.freeze(capabilitiesOf(0));

/**
 * One connection's telnet: parses its input, negotiates options (RFC 1143,
 * so negotiation can never loop), and keeps what the client told. Nothing
 * here waits for the client: lines flow from the first byte, and a client
 * that never answers a question simply leaves the answer unknown.
 *
 * @internal
 */
export class TelnetSession implements TelnetSink, NegotiationSink {
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

  constructor(
    private readonly settings: TelnetSettings,
    private readonly host: TelnetHost,
  ) {
    this.parser = new TelnetParser(settings.maxSubnegotiationLength);
    this.options = new OptionNegotiator(this, policyOf(settings));
  }

  /** Offers and asks for the options this transport uses. */
  start(): void {
    const { ttype, naws, gmcp, charset, eor, mssp } = this.settings;
    this.host.out.cork();
    if (ttype) this.options.enableRemote(TelnetOption.TTYPE);
    if (naws) this.options.enableRemote(TelnetOption.NAWS);
    if (gmcp) this.options.enableLocal(TelnetOption.GMCP);
    if (charset) this.options.enableLocal(TelnetOption.CHARSET);
    if (eor) this.options.enableLocal(TelnetOption.EOR);
    if (mssp !== false) this.options.enableLocal(TelnetOption.MSSP);
    if (this.settings.mccp2) this.options.enableLocal(TelnetOption.MCCP2);
    this.host.out.uncork();
  }

  /** Parses a chunk from the socket. */
  push(chunk: Buffer): void {
    this.parser.push(chunk, this);
  }

  /** Whether the client should echo what it types (`false`: a password). */
  setEcho(echo: boolean): boolean {
    // The server "will echo" (and then does not), so the client stops.
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
    this.host.data(chunk, start, end);
  }

  onTelnetCommand(): void {
    // NOP, GA, AYT, ...: nothing a game server has to act on.
  }

  onTelnetNegotiation(verb: number, option: number): void {
    this.options.receive(verb, option);
  }

  onTelnetSubnegotiation(option: number, payload: Buffer): void {
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
    this.host.write(negotiation(verb, option));
  }

  optionChanged(
    option: number,
    side: 'local' | 'remote',
    enabled: boolean,
  ): void {
    if (!enabled) return;
    if (side === 'remote' && option === TelnetOption.TTYPE) {
      this.askTtype();
    } else if (side === 'local' && option === TelnetOption.MSSP) {
      this.sendMssp();
    } else if (side === 'local' && option === TelnetOption.MCCP2) {
      // Compression starts right after this subnegotiation (MCCP2).
      this.host.write(subnegotiation(TelnetOption.MCCP2, Buffer.alloc(0)));
      this.host.startCompression();
    } else if (side === 'local' && option === TelnetOption.CHARSET) {
      this.host.write(
        subnegotiation(
          TelnetOption.CHARSET,
          Buffer.concat([Buffer.of(TelnetSubCode.REQUEST), CHARSET_REQUEST]),
        ),
      );
    }
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
    this.host.emit('on_resize', size);
  }

  private askTtype(): void {
    // However often the client turns TTYPE off and on, the cycle is bounded.
    if (this.ttypeRounds >= MAX_TTYPE_ROUNDS) return;
    this.ttypeRounds++;
    this.ttypeAsked = true;
    this.host.write(
      subnegotiation(TelnetOption.TTYPE, Buffer.of(TelnetSubCode.SEND)),
    );
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
      this.host.emit('on_terminal', next);
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
    this.host.emit('on_gmcp', message);
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
    const mssp = this.settings.mssp;
    if (mssp === false) return;
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
    this.host.write(subnegotiation(TelnetOption.MSSP, Buffer.concat(parts)));
  }
}

const IAC_EOR = Buffer.of(TelnetCommand.IAC, TelnetCommand.EOR);
const IAC_GA = Buffer.of(TelnetCommand.IAC, TelnetCommand.GA);

function policyOf(settings: TelnetSettings): NegotiationPolicy {
  const local = new Set<number>([TelnetOption.ECHO, TelnetOption.SGA]);
  const remote = new Set<number>();
  if (settings.gmcp) local.add(TelnetOption.GMCP);
  if (settings.charset) local.add(TelnetOption.CHARSET);
  if (settings.eor) local.add(TelnetOption.EOR);
  if (settings.mssp !== false) local.add(TelnetOption.MSSP);
  if (settings.mccp2) local.add(TelnetOption.MCCP2);
  if (settings.ttype) remote.add(TelnetOption.TTYPE);
  if (settings.naws) remote.add(TelnetOption.NAWS);
  return {
    acceptLocal: (option) => local.has(option),
    acceptRemote: (option) => remote.has(option),
  };
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
