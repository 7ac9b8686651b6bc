import { connect, type Socket } from 'node:net';
import { Waiters } from '../../../test/support/waiters.js';

/** Telnet bytes, spelled out here rather than taken from lib/. */
export const IAC = 255;
export const DONT = 254;
export const DO = 253;
export const WONT = 252;
export const WILL = 251;
export const SB = 250;
export const GA = 249;
export const SE = 240;
export const EOR = 239;

/** The telnet options the MUD negotiates. */
export const Option = {
  ECHO: 1,
  TTYPE: 24,
  EOR: 25,
  NAWS: 31,
  CHARSET: 42,
  MSSP: 70,
  GMCP: 201,
} as const;

const VERBS = { [WILL]: 'WILL', [WONT]: 'WONT', [DO]: 'DO', [DONT]: 'DONT' };
type Verb = 'WILL' | 'WONT' | 'DO' | 'DONT';

/** What a test client received, in order. */
export type TelnetEvent =
  | { type: 'negotiation'; verb: Verb; option: number }
  | { type: 'sb'; option: number; payload: Buffer }
  | { type: 'prompt'; mark: 'GA' | 'EOR'; lines: string[] };

/** How the test client behaves, like a MUD client's settings. */
export interface TelnetClientOptions {
  /** Local address to connect from (127.0.0.2, ...): a distinct client IP. */
  from?: string;
  /** Options the server offers (WILL) that the client agrees to (DO). */
  accept?: number[];
  /** TTYPE answers, in order (the last one repeats); none: refuse TTYPE. */
  ttype?: string[];
  /** Window size sent once NAWS is agreed; none: refuse NAWS. */
  naws?: { width: number; height: number };
  /** Sent as GMCP `Core.Hello` once GMCP is agreed. */
  hello?: { client: string; version: string };
  /** Charset to accept when the server asks (it must be in `accept`). */
  charset?: 'UTF-8' | 'ISO-8859-1';
}

/**
 * A scripted telnet client for the MUD's tests, with its own small telnet
 * parser (so the tests do not check the library with the library). It
 * answers negotiation as a MUD client does, and cuts what it receives at
 * every prompt mark (IAC GA or IAC EOR): each response of the MUD ends with
 * a prompt, so `ask()` returns exactly the answer to one line. Every wait is
 * bounded and fails with what was received.
 */
export class TelnetTestClient {
  /** Every byte received, telnet commands included. */
  received = Buffer.alloc(0);
  /** Everything received, in order. */
  readonly events: TelnetEvent[] = [];
  /** How many TTYPE SEND requests were answered. */
  ttypeAnswers = 0;
  /** Resolves when the socket has closed. */
  readonly closed: Promise<void>;
  /** Set once the server has closed its side. */
  ended = false;

  private readonly encoding: BufferEncoding;
  /** Options the server performs (it said WILL and we said DO). */
  private readonly serverOptions = new Set<number>();
  /** Options we perform (the server said DO and we said WILL). */
  private readonly clientOptions = new Set<number>();
  private segment: number[] = [];
  private state: 'data' | 'iac' | 'verb' | 'sb-option' | 'sb' | 'sb-iac' =
    'data';
  private verb = 0;
  private sbOption = 0;
  private sbPayload: number[] = [];
  private readonly waits = new Waiters(
    () =>
      `prompts: ${JSON.stringify(this.prompts.map((p) => p.lines))}, pending: ${JSON.stringify(this.pending)}`,
  );

  private constructor(
    readonly socket: Socket,
    private readonly options: TelnetClientOptions,
  ) {
    this.encoding = options.charset === 'ISO-8859-1' ? 'latin1' : 'utf8';
    socket.on('data', (chunk: Buffer) => {
      this.received = Buffer.concat([this.received, chunk]);
      for (const byte of chunk) this.byte(byte);
      this.wake();
    });
    socket.on('end', () => {
      this.ended = true;
      this.wake();
    });
    socket.on('error', () => undefined);
    this.closed = new Promise((resolve) =>
      socket.once('close', () => {
        this.wake();
        resolve();
      }),
    );
  }

  /** Connects to 127.0.0.1:`port` and waits until connected. */
  static connect(
    port: number,
    options: TelnetClientOptions = {},
  ): Promise<TelnetTestClient> {
    return new Promise((resolve, reject) => {
      const socket = connect({
        port,
        host: '127.0.0.1',
        localAddress: options.from,
      });
      socket.once('connect', () =>
        resolve(new TelnetTestClient(socket, options)),
      );
      socket.once('error', reject);
    });
  }

  /** The prompts received so far, each with the lines before it. */
  get prompts(): Array<Extract<TelnetEvent, { type: 'prompt' }>> {
    return this.events.filter((e) => e.type === 'prompt');
  }

  /** The GMCP messages received so far, parsed. */
  get gmcp(): Array<{ package: string; data: unknown }> {
    return this.events.flatMap((e) => {
      if (e.type !== 'sb' || e.option !== Option.GMCP) return [];
      const text = e.payload.toString('utf8');
      const space = text.indexOf(' ');
      return space === -1
        ? [{ package: text, data: undefined }]
        : [
            {
              package: text.slice(0, space),
              data: JSON.parse(text.slice(space + 1)) as unknown,
            },
          ];
    });
  }

  /** The text received since the last prompt mark. */
  get pending(): string {
    return Buffer.from(this.segment).toString(this.encoding);
  }

  /**
   * The lines of the `index`th response (0: the first), waiting for it:
   * each line without its CR LF, the last one the prompt's text.
   */
  async prompt(index: number, timeoutMs = 3000): Promise<string[]> {
    await this.until(
      () => this.prompts.length > index,
      `prompt #${index}`,
      timeoutMs,
    );
    return this.prompts[index].lines;
  }

  /**
   * The next response: call it before causing it, so it cannot have arrived
   * already.
   */
  next(timeoutMs = 3000): Promise<string[]> {
    return this.prompt(this.prompts.length, timeoutMs);
  }

  /** Sends a line and returns the response to it, up to its prompt. */
  ask(line: string, timeoutMs = 3000): Promise<string[]> {
    const response = this.next(timeoutMs);
    this.send(line);
    return response;
  }

  /** Sends a line in the client's charset (0xFF doubled), then CR LF. */
  send(line: string): void {
    this.socket.write(
      Buffer.concat([escape(Buffer.from(line, this.encoding)), CRLF]),
    );
  }

  /** Sends a window size (IAC SB NAWS w w h h IAC SE). */
  sendNaws(width: number, height: number): void {
    const payload = Buffer.alloc(4);
    payload.writeUInt16BE(width, 0);
    payload.writeUInt16BE(height, 2);
    this.subnegotiate(Option.NAWS, payload);
  }

  /** Sends a GMCP message. */
  sendGmcp(pkg: string, data: unknown): void {
    this.subnegotiate(
      Option.GMCP,
      Buffer.from(`${pkg} ${JSON.stringify(data)}`, 'utf8'),
    );
  }

  /** Where an event is in `events`, or -1. */
  indexOf(predicate: (event: TelnetEvent) => boolean): number {
    return this.events.findIndex(predicate);
  }

  /** Waits until the server has closed the connection. */
  async expectClosedByServer(timeoutMs = 3000): Promise<void> {
    await this.until(
      () => this.ended || this.socket.destroyed,
      'the server to close',
      timeoutMs,
    );
  }

  /** Waits for any condition on what was received. */
  until(
    condition: () => boolean,
    what: string,
    timeoutMs = 3000,
  ): Promise<void> {
    return this.waits.until(condition, what, timeoutMs);
  }

  private byte(byte: number): void {
    switch (this.state) {
      case 'data':
        if (byte === IAC) this.state = 'iac';
        else this.segment.push(byte);
        return;
      case 'iac':
        this.state = 'data';
        if (byte === IAC) this.segment.push(IAC);
        else if (byte >= WILL && byte <= DONT) {
          this.verb = byte;
          this.state = 'verb';
        } else if (byte === SB) this.state = 'sb-option';
        else if (byte === GA || byte === EOR) this.promptMark(byte);
        return;
      case 'verb':
        this.state = 'data';
        this.negotiation(this.verb, byte);
        return;
      case 'sb-option':
        this.sbOption = byte;
        this.sbPayload = [];
        this.state = 'sb';
        return;
      case 'sb':
        if (byte === IAC) this.state = 'sb-iac';
        else this.sbPayload.push(byte);
        return;
      case 'sb-iac':
        if (byte === IAC) {
          this.sbPayload.push(IAC);
          this.state = 'sb';
        } else {
          this.state = 'data';
          if (byte === SE) this.subnegotiation();
        }
        return;
    }
  }

  private promptMark(byte: number): void {
    this.events.push({
      type: 'prompt',
      mark: byte === EOR ? 'EOR' : 'GA',
      lines: this.pending.split('\r\n'),
    });
    this.segment = [];
  }

  /** Answers as RFC 1143 says: only a change of state gets a reply. */
  private negotiation(verb: number, option: number): void {
    this.events.push({
      type: 'negotiation',
      verb: VERBS[verb as keyof typeof VERBS] as Verb,
      option,
    });
    const { accept = [], ttype, naws, hello } = this.options;
    switch (verb) {
      case WILL:
        if (this.serverOptions.has(option)) return;
        if (!accept.includes(option)) {
          this.negotiate(DONT, option);
          return;
        }
        this.serverOptions.add(option);
        this.negotiate(DO, option);
        if (option === Option.GMCP && hello) {
          this.sendGmcp('Core.Hello', hello);
        }
        return;
      case WONT:
        if (this.serverOptions.delete(option)) this.negotiate(DONT, option);
        return;
      case DO: {
        if (this.clientOptions.has(option)) return;
        const willing =
          (option === Option.TTYPE && ttype !== undefined) ||
          (option === Option.NAWS && naws !== undefined);
        if (!willing) {
          this.negotiate(WONT, option);
          return;
        }
        this.clientOptions.add(option);
        this.negotiate(WILL, option);
        if (option === Option.NAWS && naws) {
          this.sendNaws(naws.width, naws.height);
        }
        return;
      }
      case DONT:
        if (this.clientOptions.delete(option)) this.negotiate(WONT, option);
        return;
    }
  }

  private subnegotiation(): void {
    const payload = Buffer.from(this.sbPayload);
    this.events.push({ type: 'sb', option: this.sbOption, payload });
    const { ttype, charset } = this.options;
    if (this.sbOption === Option.TTYPE && payload[0] === 1 && ttype) {
      const name = ttype[Math.min(this.ttypeAnswers, ttype.length - 1)];
      this.ttypeAnswers++;
      this.subnegotiate(
        Option.TTYPE,
        Buffer.concat([Buffer.of(0), Buffer.from(name, 'latin1')]),
      );
    } else if (this.sbOption === Option.CHARSET && payload[0] === 1) {
      this.subnegotiate(
        Option.CHARSET,
        charset === undefined
          ? Buffer.of(3)
          : Buffer.concat([Buffer.of(2), Buffer.from(charset, 'latin1')]),
      );
    }
  }

  private negotiate(verb: number, option: number): void {
    this.socket.write(Buffer.of(IAC, verb, option));
  }

  private subnegotiate(option: number, payload: Buffer): void {
    this.socket.write(
      Buffer.concat([
        Buffer.of(IAC, SB, option),
        escape(payload),
        Buffer.of(IAC, SE),
      ]),
    );
  }

  private wake(): void {
    this.waits.wake();
  }
}

const CRLF = Buffer.from('\r\n');

/** Doubles every 0xFF byte, as telnet data requires. */
function escape(bytes: Buffer): Buffer {
  if (!bytes.includes(IAC)) return bytes;
  const out: number[] = [];
  for (const byte of bytes) {
    out.push(byte);
    if (byte === IAC) out.push(IAC);
  }
  return Buffer.from(out);
}

/** MSSP's VAR/VAL pairs: each variable with its values. */
export function parseMssp(payload: Buffer): Record<string, string[]> {
  const variables: Record<string, string[]> = {};
  let name: string | undefined;
  let i = 0;
  while (i < payload.length) {
    const kind = payload[i++];
    let end = i;
    while (end < payload.length && payload[end] !== 1 && payload[end] !== 2) {
      end++;
    }
    const text = payload.toString('utf8', i, end);
    i = end;
    if (kind === 1) {
      name = text;
      variables[name] = [];
    } else if (kind === 2 && name !== undefined) {
      variables[name].push(text);
    }
  }
  return variables;
}
