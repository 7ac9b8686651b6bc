import { connect, type Socket } from 'node:net';
import {
  describeOption,
  negotiation,
  subnegotiation,
  TelnetCommand,
  TelnetOption,
  TelnetParser,
  TelnetSubCode,
  type TelnetSink,
} from '../../lib/telnet/index.js';
import { Waiters } from './waiters.js';

const { IAC, WILL, WONT, DO, DONT } = TelnetCommand;

const VERB_NAMES = new Map<number, string>([
  [WILL, 'WILL'],
  [WONT, 'WONT'],
  [DO, 'DO'],
  [DONT, 'DONT'],
]);
const COMMAND_NAMES = new Map<number, string>([
  [TelnetCommand.GA, 'GA'],
  [TelnetCommand.EOR, 'EOR'],
  [TelnetCommand.NOP, 'NOP'],
]);

/** What the server sent, as the client's telnet parser saw it. */
export type ServerItem =
  | { kind: 'data'; bytes: Buffer }
  | { kind: 'command'; command: number }
  | { kind: 'negotiation'; verb: number; option: number }
  | { kind: 'sub'; option: number; payload: Buffer }
  | { kind: 'error'; option: number; reason: string };

/** A readable form of a non-data item: `DO TTYPE`, `SB TTYPE "\u0001"`, `GA`. */
export function describeItem(item: ServerItem): string {
  switch (item.kind) {
    case 'data':
      return `data ${JSON.stringify(item.bytes.toString('latin1'))}`;
    case 'command':
      return COMMAND_NAMES.get(item.command) ?? `IAC ${item.command}`;
    case 'negotiation':
      return `${VERB_NAMES.get(item.verb) ?? item.verb} ${describeOption(item.option)}`;
    case 'sub':
      return `SB ${describeOption(item.option)} ${JSON.stringify(item.payload.toString('latin1'))}`;
    case 'error':
      return `ERROR ${describeOption(item.option)} ${item.reason}`;
  }
}

/** How a {@link TelnetClient} answers the server's negotiation. */
export interface TelnetClientOptions {
  /** The client's own loopback address (127.0.0.2, ...). */
  from?: string;
  /**
   * `'agree'`: answer every request, agreeing to the options in `will` /
   * `do` and refusing the rest; `'never'` (the default): answer nothing.
   */
  answer?: 'agree' | 'never';
  /** Options the client performs when the server sends DO (answer WILL). */
  will?: number[];
  /** Options the client lets the server perform (WILL answered by DO). */
  do?: number[];
  /** Answers to TTYPE SEND, in turn; the last one is repeated. */
  ttype?: string[];
  /** The window size sent once the client has agreed to NAWS. */
  naws?: { width: number; height: number };
  /** The charset accepted on CHARSET REQUEST; none: REJECTED. */
  charset?: string;
  /** How the client decodes and encodes text lines (UTF-8 by default). */
  encoding?: BufferEncoding;
}

/** Doubles every 0xFF byte (telnet data escaping), written out plainly. */
export function doubleIac(data: Uint8Array): Buffer {
  const out: number[] = [];
  for (const byte of data) {
    out.push(byte);
    if (byte === IAC) out.push(IAC);
  }
  return Buffer.from(out);
}

/** Bytes from numbers and latin1 strings. */
export function bytes(...parts: Array<number | string | Uint8Array>): Buffer {
  return Buffer.concat(
    parts.map((p) =>
      typeof p === 'number'
        ? Buffer.of(p)
        : typeof p === 'string'
          ? Buffer.from(p, 'latin1')
          : Buffer.from(p),
    ),
  );
}

/**
 * A raw telnet test client: records every byte received, parses the server's
 * telnet out of it with `TelnetParser` (into {@link items}, clean data and
 * lines) and can answer the server's negotiation. A wait has no time limit
 * of its own; it fails at once, with what was received, if the connection
 * closes without what it awaits.
 */
export class TelnetClient implements TelnetSink {
  /** Every byte received, as received. */
  received = Buffer.alloc(0);
  /** The data bytes received, telnet commands removed and IAC IAC unescaped. */
  data = Buffer.alloc(0);
  /** Everything received, in order; consecutive data merged. */
  readonly items: ServerItem[] = [];
  /** Complete text lines of the data (CR LF removed). */
  readonly lines: string[] = [];
  /** Negotiations this client has sent (`WILL TTYPE`, ...), in order. */
  readonly sent: string[] = [];
  /** Resolves when the socket has closed. */
  readonly closed: Promise<void>;
  /** Set once the server has closed its side. */
  ended = false;

  private readonly parser = new TelnetParser(1 << 20);
  private readonly localOn = new Set<number>();
  private readonly remoteOn = new Set<number>();
  private ttypeIndex = 0;
  private lineStart = 0;
  private readonly waits = new Waiters(
    () =>
      `lines: ${JSON.stringify(this.lines)}, partial: ${JSON.stringify(this.partial)}, commands: ${JSON.stringify(this.commands)}`,
  );
  private readonly encoding: BufferEncoding;

  private constructor(
    readonly socket: Socket,
    private readonly options: TelnetClientOptions,
  ) {
    this.encoding = options.encoding ?? 'utf8';
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => {
      this.received = Buffer.concat([this.received, chunk]);
      this.parser.push(chunk, this);
      this.wake();
    });
    socket.on('end', () => {
      this.ended = true;
      this.wake();
    });
    socket.on('error', () => undefined);
    this.closed = new Promise((resolve) =>
      socket.once('close', () => {
        this.waits.end('the connection closed');
        resolve();
      }),
    );
  }

  /**
   * Connects to 127.0.0.1:`port`. `onConnect` runs in the connect callback,
   * before anything from the server can have been read.
   */
  static connect(
    port: number,
    options: TelnetClientOptions = {},
    onConnect?: (client: TelnetClient) => void,
  ): Promise<TelnetClient> {
    return new Promise((resolve, reject) => {
      const socket = connect({
        port,
        host: '127.0.0.1',
        localAddress: options.from,
      });
      const client = new TelnetClient(socket, options);
      socket.once('connect', () => {
        onConnect?.(client);
        resolve(client);
      });
      socket.once('error', reject);
    });
  }

  /** What the server sent besides data, described (`DO TTYPE`, `GA`, ...). */
  get commands(): string[] {
    return this.items.filter((i) => i.kind !== 'data').map(describeItem);
  }

  /** The payloads of the server's subnegotiations of `option`. */
  subnegotiations(option: number): Buffer[] {
    return this.items.flatMap((i) =>
      i.kind === 'sub' && i.option === option ? [i.payload] : [],
    );
  }

  /** The text after the last complete line. */
  get partial(): string {
    return this.data.toString(this.encoding, this.lineStart);
  }

  /** Sends bytes as they are. */
  write(data: Uint8Array | string): void {
    this.socket.write(typeof data === 'string' ? bytes(data) : data);
  }

  /** Sends a line: the text in the client's encoding, 0xFF doubled, CR LF. */
  send(text: string): void {
    this.socket.write(
      Buffer.concat([
        doubleIac(Buffer.from(text, this.encoding)),
        bytes('\r\n'),
      ]),
    );
  }

  /**
   * Sends `IAC verb option`, notes it in {@link sent} and takes it as the
   * client's own state of the option (so a later request is not answered
   * twice).
   */
  negotiate(verb: number, option: number): void {
    this.sent.push(`${VERB_NAMES.get(verb)} ${describeOption(option)}`);
    if (verb === WILL) this.localOn.add(option);
    else if (verb === WONT) this.localOn.delete(option);
    else if (verb === DO) this.remoteOn.add(option);
    else if (verb === DONT) this.remoteOn.delete(option);
    this.socket.write(negotiation(verb, option));
  }

  /** Waits until a received line matches, and returns it. */
  async expectLine(pattern: RegExp | string): Promise<string> {
    const test = (l: string) =>
      typeof pattern === 'string' ? l === pattern : pattern.test(l);
    await this.until(
      () => this.lines.some(test),
      `a line matching ${String(pattern)}`,
    );
    return this.lines.find(test) as string;
  }

  /** Waits for the `welcome <id>` line and returns the connection id. */
  async welcome(): Promise<string> {
    return (await this.expectLine(/^welcome /)).slice(8);
  }

  /**
   * Waits for any condition on what was received; fails at once if the
   * connection closes without it.
   */
  until(condition: () => boolean, what: string): Promise<void> {
    return this.waits.until(condition, what);
  }

  /** Closes our side cleanly and waits for the socket to close. */
  async end(): Promise<void> {
    this.socket.end();
    await this.closed;
  }

  // TelnetSink: what the parser finds in the server's output.

  onTelnetData(chunk: Buffer, start: number, end: number): void {
    const piece = Buffer.from(chunk.subarray(start, end));
    const last = this.items[this.items.length - 1];
    if (last?.kind === 'data') last.bytes = Buffer.concat([last.bytes, piece]);
    else this.items.push({ kind: 'data', bytes: piece });
    this.data = Buffer.concat([this.data, piece]);
    for (;;) {
      const at = this.data.indexOf('\r\n', this.lineStart);
      if (at === -1) break;
      this.lines.push(this.data.toString(this.encoding, this.lineStart, at));
      this.lineStart = at + 2;
    }
  }

  onTelnetCommand(command: number): void {
    this.items.push({ kind: 'command', command });
  }

  onTelnetNegotiation(verb: number, option: number): void {
    this.items.push({ kind: 'negotiation', verb, option });
    if (this.options.answer !== 'agree') return;
    const will = this.options.will ?? [];
    const wanted = this.options.do ?? [];
    switch (verb) {
      case DO:
        if (!will.includes(option)) {
          this.negotiate(WONT, option);
        } else if (!this.localOn.has(option)) {
          this.negotiate(WILL, option);
          this.localEnabled(option);
        }
        return;
      case DONT:
        if (this.localOn.has(option)) this.negotiate(WONT, option);
        return;
      case WILL:
        if (!wanted.includes(option)) {
          this.negotiate(DONT, option);
        } else if (!this.remoteOn.has(option)) {
          this.negotiate(DO, option);
        }
        return;
      case WONT:
        if (this.remoteOn.has(option)) this.negotiate(DONT, option);
        return;
    }
  }

  onTelnetSubnegotiation(option: number, payload: Buffer): void {
    this.items.push({ kind: 'sub', option, payload });
    if (this.options.answer !== 'agree') return;
    if (option === TelnetOption.TTYPE && payload[0] === TelnetSubCode.SEND) {
      const names = this.options.ttype ?? ['TESTCLIENT'];
      const name = names[Math.min(this.ttypeIndex++, names.length - 1)];
      this.socket.write(
        subnegotiation(TelnetOption.TTYPE, bytes(TelnetSubCode.IS, name)),
      );
    } else if (
      option === TelnetOption.CHARSET &&
      payload[0] === TelnetSubCode.REQUEST
    ) {
      const charset = this.options.charset;
      this.socket.write(
        subnegotiation(
          TelnetOption.CHARSET,
          charset === undefined
            ? bytes(TelnetSubCode.REJECTED)
            : bytes(TelnetSubCode.ACCEPTED, charset),
        ),
      );
    }
  }

  onTelnetSubnegotiationError(option: number, reason: string): void {
    this.items.push({ kind: 'error', option, reason });
  }

  private localEnabled(option: number): void {
    const size = this.options.naws;
    if (option === TelnetOption.NAWS && size !== undefined) {
      const payload = Buffer.alloc(4);
      payload.writeUInt16BE(size.width, 0);
      payload.writeUInt16BE(size.height, 2);
      this.socket.write(subnegotiation(TelnetOption.NAWS, payload));
    }
  }

  private wake(): void {
    this.waits.wake();
  }
}
