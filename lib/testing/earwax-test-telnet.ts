import {
  OptionNegotiator,
  type NegotiationSink,
} from '../telnet/option-negotiator.js';
import {
  describeOption,
  TelnetCommand,
  TelnetOption,
  TelnetSubCode,
} from '../telnet/telnet-codes.js';
import {
  negotiation,
  subnegotiation,
  TelnetParser,
  type TelnetSink,
} from '../telnet/telnet-parser.js';
import type {
  EarwaxTestGmcpMessage,
  EarwaxTestTelnetOptions,
  EarwaxTestWaitOptions,
} from './interfaces/earwax-test-client-options.interface.js';
import type { Transcript } from './transcript.js';

/**
 * Something the server sent besides text, as a telnet-aware test client saw
 * it, in the order it came. `afterLines` is how many complete lines had been
 * received when it came: a negotiation sent just before a prompt has the
 * prompt at `lines[afterLines]`; an `IAC GA` or `IAC EOR` that ended a prompt
 * comes after it, at `lines[afterLines - 1]`.
 *
 * @publicApi
 */
export type EarwaxTestTelnetEvent =
  | {
      readonly type: 'negotiation';
      readonly verb: 'WILL' | 'WONT' | 'DO' | 'DONT';
      readonly option: number;
      readonly afterLines: number;
    }
  | {
      readonly type: 'subnegotiation';
      readonly option: number;
      /** IAC IAC already unescaped. */
      readonly payload: Buffer;
      readonly afterLines: number;
    }
  | {
      readonly type: 'command';
      /** The command byte (`TelnetCommand.GA`, `EOR`, `NOP`, ...). */
      readonly command: number;
      /** `GA`, `EOR`, `NOP`, ... or `IAC <byte>` for others. */
      readonly name: string;
      readonly afterLines: number;
    }
  | {
      readonly type: 'subnegotiation-error';
      readonly option: number;
      readonly reason: 'overflow' | 'malformed';
      readonly afterLines: number;
    };

/**
 * A prompt: a line the server ended with `IAC GA` or `IAC EOR`.
 *
 * @publicApi
 */
export interface EarwaxTestPrompt {
  /** Its index in the client's `lines`. */
  readonly index: number;
  /** Its text (`'> '`). */
  readonly text: string;
  /** What ended it. */
  readonly mark: 'GA' | 'EOR';
}

/**
 * What the telnet side of a test client needs from the client.
 *
 * @internal
 */
export interface TestTelnetSink {
  /** Label for messages: `client 127.0.0.2:40112 → 127.0.0.1:4000`. */
  readonly label: string;
  readonly transcript: Transcript;
  readonly defaultTimeout: number;
  /** Writes protocol bytes to the server. */
  write(bytes: Buffer): void;
  /** Clean data bytes, for the line framer. */
  data(chunk: Buffer, start: number, end: number): void;
  /** The text since the last line end, if any, becomes a line. */
  endPrompt(): void;
  /** Text from now on is read and written in this encoding. */
  setEncoding(encoding: BufferEncoding): void;
}

const { WILL, WONT, DO, DONT, GA, EOR } = TelnetCommand;
const VERBS = new Map<number, 'WILL' | 'WONT' | 'DO' | 'DONT'>([
  [WILL, 'WILL'],
  [WONT, 'WONT'],
  [DO, 'DO'],
  [DONT, 'DONT'],
]);
const COMMAND_NAMES = new Map<number, string>(
  Object.entries(TelnetCommand).map(([name, code]) => [code, name]),
);
/** Charset names a CHARSET request may offer, and how Node decodes them. */
const CHARSETS = new Map<string, BufferEncoding>([
  ['UTF-8', 'utf8'],
  ['UTF8', 'utf8'],
  ['ISO-8859-1', 'latin1'],
  ['ISO_8859-1', 'latin1'],
  ['LATIN1', 'latin1'],
  ['US-ASCII', 'ascii'],
  ['ASCII', 'ascii'],
]);
/** The most telnet events kept; a longer session keeps the latest. */
const MAX_EVENTS = 10_000;

/**
 * The telnet side of a telnet-aware `EarwaxTestClient` (its `telnet`
 * property): it parses the server's telnet with the library's own
 * `TelnetParser`, answers negotiation with the library's RFC 1143
 * negotiator (so it cannot loop), refusing every option it was not told to
 * accept, answers TTYPE, NAWS and CHARSET as configured, and records
 * everything the server sent besides text.
 *
 * @publicApi
 */
export class EarwaxTestTelnet {
  private readonly parser = new TelnetParser(1 << 20);
  private readonly negotiator: OptionNegotiator;
  private readonly accept: ReadonlySet<number>;
  private readonly perform: ReadonlySet<number>;
  private readonly recorded: EarwaxTestTelnetEvent[] = [];
  private readonly promptList: EarwaxTestPrompt[] = [];
  private readonly gmcpList: EarwaxTestGmcpMessage[] = [];
  private msspVariables: Record<string, string[]> | undefined;
  private ttypeIndex = 0;
  private readonly sink: TelnetSink;

  /**
   * The telnet side of a new test client.
   *
   * @throws TypeError when an option cannot be honoured (MCCP2 accepted, an
   *   unknown charset, a window size out of range).
   * @internal
   */
  static create(
    host: TestTelnetSink,
    options: EarwaxTestTelnetOptions = {},
  ): EarwaxTestTelnet {
    return new EarwaxTestTelnet(host, options);
  }

  /** Built by `EarwaxTestClient.connect()` with the `telnet` option. */
  private constructor(
    private readonly host: TestTelnetSink,
    private readonly options: EarwaxTestTelnetOptions,
  ) {
    const accept = new Set(options.accept ?? []);
    if (options.charset !== undefined) {
      if (!CHARSETS.has(options.charset.toUpperCase())) {
        throw new TypeError(
          `telnet.charset ${JSON.stringify(options.charset)} is not one the test client can read; use one of ${[...CHARSETS.keys()].join(', ')}`,
        );
      }
      accept.add(TelnetOption.CHARSET);
    }
    if (options.gmcp !== undefined) accept.add(TelnetOption.GMCP);
    if (accept.has(TelnetOption.MCCP2)) {
      throw new TypeError(
        'telnet.accept: MCCP2 cannot be accepted; the test client reads uncompressed text only',
      );
    }
    for (const option of [...accept, ...(options.perform ?? [])]) {
      if (!Number.isInteger(option) || option < 0 || option > 255) {
        throw new TypeError(
          `telnet options are option numbers from 0 to 255, got ${String(option)}`,
        );
      }
    }
    if (options.naws) checkWindow(options.naws.width, options.naws.height);
    this.accept = accept;
    const perform = new Set(options.perform ?? []);
    if (options.ttype !== undefined) perform.add(TelnetOption.TTYPE);
    if (options.naws !== undefined) perform.add(TelnetOption.NAWS);
    this.perform = perform;
    const negotiationSink: NegotiationSink = {
      sendNegotiation: (verb, option) =>
        this.host.write(negotiation(verb, option)),
      optionChanged: (option, side, enabled) =>
        this.optionChanged(option, side, enabled),
    };
    this.negotiator = new OptionNegotiator(negotiationSink, {
      acceptLocal: (option) => this.perform.has(option),
      acceptRemote: (option) => this.accept.has(option),
    });
    this.sink = {
      onTelnetData: (chunk, start, end) => this.host.data(chunk, start, end),
      onTelnetCommand: (command) => this.command(command),
      onTelnetNegotiation: (verb, option) => {
        const name = VERBS.get(verb);
        if (name !== undefined) {
          this.record({ type: 'negotiation', verb: name, option });
        }
        this.negotiator.receive(verb, option);
      },
      onTelnetSubnegotiation: (option, payload) =>
        this.subnegotiation(option, payload),
      onTelnetSubnegotiationError: (option, reason) =>
        this.record({ type: 'subnegotiation-error', option, reason }),
    };
  }

  /** Everything the server sent besides text, in order (the latest 10,000). */
  get events(): readonly EarwaxTestTelnetEvent[] {
    return this.recorded;
  }

  /** The negotiations the server sent, as `'WILL ECHO'`, `'DO NAWS'`, ... */
  get negotiations(): string[] {
    return this.recorded.flatMap((event) =>
      event.type === 'negotiation'
        ? [`${event.verb} ${describeOption(event.option)}`]
        : [],
    );
  }

  /** The lines the server ended with `IAC GA` or `IAC EOR`, in order. */
  get prompts(): readonly EarwaxTestPrompt[] {
    return this.promptList;
  }

  /**
   * The GMCP messages received, parsed: `data` is the JSON value, `undefined`
   * for a message without data, or the raw text when it is not valid JSON.
   */
  get gmcp(): readonly EarwaxTestGmcpMessage[] {
    return this.gmcpList;
  }

  /** The variables of the last MSSP report received, each with its values. */
  get mssp(): Readonly<Record<string, string[]>> | undefined {
    return this.msspVariables;
  }

  /** Whether the server performs `option` (it said WILL, the client DO). */
  serverPerforms(option: number): boolean {
    return this.negotiator.isRemoteEnabled(option);
  }

  /** Whether this client performs `option` (the server said DO, it WILL). */
  clientPerforms(option: number): boolean {
    return this.negotiator.isLocalEnabled(option);
  }

  /**
   * Reads up to and including the next prompt (a line ended by `IAC GA` or
   * `IAC EOR`) and resolves with the lines read, the prompt last: a MUD's
   * whole answer to one command.
   *
   * @throws EarwaxExpectationError (rejects) when no prompt comes within the
   *   timeout or the connection closes first.
   */
  readPrompt(options: EarwaxTestWaitOptions = {}): Promise<string[]> {
    const transcript = this.host.transcript;
    return transcript.wait(
      'a prompt (a line ended by IAC GA or IAC EOR)',
      options.timeout ?? this.host.defaultTimeout,
      true,
      () => {
        const prompt = this.promptList.find(
          (p) => p.index >= transcript.cursor,
        );
        if (prompt === undefined) return undefined;
        const read = transcript.lines.slice(
          transcript.cursor,
          prompt.index + 1,
        );
        transcript.cursor = prompt.index + 1;
        return { value: read };
      },
    );
  }

  /**
   * Sends a window size (`IAC SB NAWS`), as a client does when its window
   * is resized. Sent whether or not NAWS was agreed: the server decides.
   *
   * @throws TypeError when a dimension is not a whole number from 0 to 65535.
   */
  sendNaws(width: number, height: number): void {
    checkWindow(width, height);
    const payload = Buffer.alloc(4);
    payload.writeUInt16BE(width, 0);
    payload.writeUInt16BE(height, 2);
    this.host.write(subnegotiation(TelnetOption.NAWS, payload));
  }

  /**
   * Sends a GMCP message (`IAC SB GMCP <package> <json> IAC SE`). Sent
   * whether or not GMCP was agreed: the server decides.
   *
   * @param pkg The package and message name (`Core.Hello`).
   * @param data Any JSON value; left out, the message has no data.
   */
  sendGmcp(pkg: string, data?: unknown): void {
    const text = data === undefined ? pkg : `${pkg} ${JSON.stringify(data)}`;
    this.host.write(subnegotiation(TelnetOption.GMCP, text));
  }

  /**
   * Parses bytes from the server.
   *
   * @internal
   */
  push(chunk: Buffer): void {
    this.parser.push(chunk, this.sink);
  }

  /**
   * A line for failure messages: the options agreed so far.
   *
   * @internal
   */
  describe(): string {
    const agreed = (enabled: (option: number) => boolean) => {
      const names: string[] = [];
      for (let option = 0; option < 256; option++) {
        if (enabled(option)) names.push(describeOption(option));
      }
      return names.length > 0 ? names.join(', ') : 'none';
    };
    const server = agreed((option) => this.serverPerforms(option));
    const client = agreed((option) => this.clientPerforms(option));
    return `Telnet: the server performs ${server}; this client performs ${client}; ${this.recorded.length} telnet events received.`;
  }

  private record(event: DistributiveOmit<EarwaxTestTelnetEvent>): void {
    if (this.recorded.length >= MAX_EVENTS) this.recorded.shift();
    this.recorded.push({
      ...event,
      afterLines: this.host.transcript.lines.length,
    } as EarwaxTestTelnetEvent);
  }

  private command(command: number): void {
    if (
      (command === GA || command === EOR) &&
      this.options.promptLines !== false
    ) {
      this.host.endPrompt();
      const lines = this.host.transcript.lines;
      const index = lines.length - 1;
      // A mark right after a line end marks that line (once).
      if (index >= 0 && this.promptList.at(-1)?.index !== index) {
        this.promptList.push({
          index,
          text: lines[index],
          mark: command === GA ? 'GA' : 'EOR',
        });
      }
    }
    this.record({
      type: 'command',
      command,
      name: COMMAND_NAMES.get(command) ?? `IAC ${command}`,
    });
  }

  private optionChanged(
    option: number,
    side: 'local' | 'remote',
    enabled: boolean,
  ): void {
    if (!enabled) return;
    if (side === 'local' && option === TelnetOption.NAWS && this.options.naws) {
      this.sendNaws(this.options.naws.width, this.options.naws.height);
    } else if (side === 'remote' && option === TelnetOption.GMCP) {
      for (const message of this.options.gmcp ?? []) {
        this.sendGmcp(message.package, message.data);
      }
    }
  }

  private subnegotiation(option: number, payload: Buffer): void {
    this.record({ type: 'subnegotiation', option, payload });
    switch (option) {
      case TelnetOption.TTYPE:
        if (
          payload[0] === TelnetSubCode.SEND &&
          this.negotiator.isLocalEnabled(option)
        ) {
          this.answerTtype();
        }
        return;
      case TelnetOption.CHARSET:
        if (
          payload[0] === TelnetSubCode.REQUEST &&
          this.negotiator.isRemoteEnabled(option)
        ) {
          this.answerCharset(payload);
        }
        return;
      case TelnetOption.GMCP:
        this.gmcpList.push(parseGmcp(payload));
        return;
      case TelnetOption.MSSP:
        this.msspVariables = parseMssp(payload);
        return;
    }
  }

  private answerTtype(): void {
    const names = this.options.ttype ?? [];
    if (names.length === 0) return;
    const name = names[Math.min(this.ttypeIndex++, names.length - 1)];
    this.host.write(
      subnegotiation(
        TelnetOption.TTYPE,
        Buffer.concat([
          Buffer.of(TelnetSubCode.IS),
          Buffer.from(name, 'latin1'),
        ]),
      ),
    );
  }

  /** `REQUEST <sep> name <sep> name ...`: accept the configured one if offered. */
  private answerCharset(payload: Buffer): void {
    const wanted = this.options.charset?.toUpperCase();
    const separator =
      payload.length > 1 ? String.fromCharCode(payload[1]) : ';';
    const offered = payload.toString('latin1', 2).split(separator);
    const chosen = offered.find((name) => name.toUpperCase() === wanted);
    if (chosen === undefined || wanted === undefined) {
      this.host.write(
        subnegotiation(TelnetOption.CHARSET, Buffer.of(TelnetSubCode.REJECTED)),
      );
      return;
    }
    this.host.write(
      subnegotiation(
        TelnetOption.CHARSET,
        Buffer.concat([
          Buffer.of(TelnetSubCode.ACCEPTED),
          Buffer.from(chosen, 'latin1'),
        ]),
      ),
    );
    // The server switches once it reads the answer; text it sent before
    // that is already ASCII in practice (a greeting), so switching now is
    // what a real client does too.
    this.host.setEncoding(CHARSETS.get(wanted) as BufferEncoding);
  }
}

/** Omit that distributes over a union, so each event kind keeps its fields. */
type DistributiveOmit<T> = T extends unknown ? Omit<T, 'afterLines'> : never;

function checkWindow(width: number, height: number): void {
  for (const [name, value] of [
    ['width', width],
    ['height', height],
  ] as const) {
    if (!Number.isInteger(value) || value < 0 || value > 0xffff) {
      throw new TypeError(
        `A NAWS ${name} is a whole number from 0 to 65535, got ${String(value)}`,
      );
    }
  }
}

/** `Package.Name <json>`; data is the raw text when it is not JSON. */
function parseGmcp(payload: Buffer): EarwaxTestGmcpMessage {
  const text = payload.toString('utf8');
  const space = text.indexOf(' ');
  if (space === -1) return { package: text, data: undefined };
  const raw = text.slice(space + 1);
  try {
    return { package: text.slice(0, space), data: JSON.parse(raw) as unknown };
  } catch {
    return { package: text.slice(0, space), data: raw };
  }
}

/** MSSP's `VAR name VAL value VAL value ...`: each variable with its values. */
function parseMssp(payload: Buffer): Record<string, string[]> {
  const variables: Record<string, string[]> = {};
  let name: string | undefined;
  let i = 0;
  while (i < payload.length) {
    const kind = payload[i++];
    let end = i;
    while (
      end < payload.length &&
      payload[end] !== TelnetSubCode.MSSP_VAR &&
      payload[end] !== TelnetSubCode.MSSP_VAL
    ) {
      end++;
    }
    const text = payload.toString('utf8', i, end);
    i = end;
    if (kind === TelnetSubCode.MSSP_VAR) {
      name = text;
      variables[name] ??= [];
    } else if (kind === TelnetSubCode.MSSP_VAL && name !== undefined) {
      variables[name].push(text);
    }
  }
  return variables;
}
