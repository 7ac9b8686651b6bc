import { TelnetCommand } from './telnet-codes.js';

/**
 * Receives what a {@link TelnetParser} finds.
 *
 * A callback may throw: the exception propagates out of
 * {@link TelnetParser.push}, the rest of that chunk is not parsed, and the
 * parser is left as if the chunk had ended right after the byte whose
 * callback threw (any later callback for that same byte, such as the command
 * after a `'malformed'` error, is skipped). The next push carries on from
 * there.
 *
 * @publicApi
 */
export interface TelnetSink {
  /**
   * Plain data bytes `chunk[start, end)`, never empty: IAC IAC already turned
   * into one 0xFF, CR NUL into CR. Views into the pushed chunk, only valid
   * during the call: copy them to keep them.
   */
  onTelnetData(chunk: Buffer, start: number, end: number): void;
  /**
   * A two-byte command: IAC GA, IAC NOP, IAC EOR, IAC AYT, IAC IP, ... and any
   * unknown command byte (never WILL/WONT/DO/DONT/SB/SE/IAC; a stray IAC SE
   * outside a subnegotiation is dropped).
   */
  onTelnetCommand(command: number): void;
  /** IAC WILL|WONT|DO|DONT <option>; `option` may be any byte, 255 too. */
  onTelnetNegotiation(verb: number, option: number): void;
  /**
   * IAC SB <option> <payload> IAC SE, with IAC IAC inside the payload
   * unescaped (nothing else is changed: CR NUL stays as it is). `payload` is
   * a fresh Buffer the sink may keep.
   */
  onTelnetSubnegotiation(option: number, payload: Buffer): void;
  /**
   * A subnegotiation is abandoned, reported once:
   * - `'overflow'`: its unescaped payload passed `maxSubnegotiationLength`
   *   (reported on the first byte that does not fit). What was collected is
   *   dropped and the rest of it is skipped, unbuffered, up to its end: IAC
   *   IAC is an escaped payload byte (skipped too); IAC SE ends it with no
   *   further call; IAC with any other byte ends it too (no second report)
   *   and is then handled as a normal command or negotiation (IAC SB starts a
   *   new subnegotiation). None of it is ever data: the tail of a large
   *   legitimate message (a GMCP JSON holding a newline and `quit`, say) must
   *   not reach the game as if the player had typed it.
   * - `'malformed'`: an IAC followed by something other than SE or IAC came
   *   inside it; that IAC and byte are then handled as a normal command or
   *   negotiation (IAC SB starts a new subnegotiation). `option` is -1 when
   *   the IAC came in place of the option byte (IAC SB IAC ...).
   */
  onTelnetSubnegotiationError(
    option: number,
    reason: 'overflow' | 'malformed',
  ): void;
}

const IAC = TelnetCommand.IAC;
const SB = TelnetCommand.SB;
const SE = TelnetCommand.SE;
const WILL = TelnetCommand.WILL;
const WONT = TelnetCommand.WONT;
const DO = TelnetCommand.DO;
const DONT = TelnetCommand.DONT;
const NUL = 0x00;
const CR = 0x0d;

// Parser states: what the next byte means.
const DATA = 0;
/** After IAC in data mode. */
const COMMAND = 1;
/** After IAC WILL|WONT|DO|DONT. */
const OPTION = 2;
/** After IAC SB. */
const SUB_OPTION = 3;
/** Inside IAC SB <option> ... */
const SUB_DATA = 4;
/** After an IAC inside a subnegotiation. */
const SUB_COMMAND = 5;
/** Inside a subnegotiation that overflowed: skipped up to its end. */
const SUB_SKIP = 6;
/** After an IAC inside a skipped subnegotiation. */
const SUB_SKIP_COMMAND = 7;

/** First size of the subnegotiation buffer; it doubles up to the limit. */
const SUB_INITIAL_SIZE = 64;
/** A subnegotiation buffer larger than this is let go once it is done. */
const SUB_RETAINED_SIZE = 256;

/** The default `maxSubnegotiationLength`: room for a large GMCP message. */
const DEFAULT_MAX_SUBNEGOTIATION_LENGTH = 8192;

/**
 * Parses the telnet protocol (RFC 854) out of a byte stream, incrementally,
 * for any split of the stream into chunks: plain data, commands,
 * WILL/WONT/DO/DONT negotiations and subnegotiations go to a
 * {@link TelnetSink}. It only parses; it does not answer negotiations.
 *
 * Data runs go to the sink as views of the pushed chunk, found with
 * `indexOf` (no per-byte work in JavaScript, no copy). A subnegotiation is
 * collected into a buffer that is allocated on first use, grows by doubling
 * but never past `maxSubnegotiationLength`, and is kept for the next one when
 * small; its payload is copied out once. Any input is accepted: `push`
 * never throws itself and consumes at least one byte per step.
 *
 * A subnegotiation longer than `maxSubnegotiationLength` is reported once
 * and the rest of it is then skipped, `indexOf` from IAC to IAC, without
 * buffering anything, up to its IAC SE (or another IAC command, which is then
 * handled normally): memory stays bounded however long it is, and none of it
 * is taken for data. Parsing its tail as data instead would hand the game
 * whatever a large legitimate message held (a newline and `quit` inside a
 * GMCP JSON would run as a command the player never typed).
 *
 * Hand-written rather than taken from npm. Looked at: `telnet-stream`
 * (AGPL-3.0, unusable in this MIT package; a Transform stream that allocates
 * twice the chunk size per chunk, preallocates 8 KiB per connection, emits
 * `'error'` events that throw when unhandled, does not fold CR NUL, and hands
 * out payloads aliasing its reused buffer); `telnetlib` (bound to its own
 * socket class, which it ends on overflow; per-byte array pushes); `telnet2`
 * (a 0.0.1 client wrapper); `libtelnet` (not on npm, it is a C library).
 * None is incremental, bounded, allocation-light and non-throwing together.
 *
 * @publicApi
 */
export class TelnetParser {
  private state = DATA;
  /** The verb of an IAC WILL|WONT|DO|DONT waiting for its option. */
  private verb = 0;
  /** The option of the subnegotiation being collected. */
  private option = -1;
  /** The last data byte was a CR at the end of a chunk: a NUL next is dropped. */
  private sawCR = false;
  private sub: Buffer | null = null;
  private subLength = 0;

  /**
   * @param maxSubnegotiationLength The longest subnegotiation payload, in
   * bytes after unescaping IAC IAC; a longer one is reported and skipped.
   */
  constructor(
    readonly maxSubnegotiationLength: number = DEFAULT_MAX_SUBNEGOTIATION_LENGTH,
  ) {
    if (
      !Number.isInteger(maxSubnegotiationLength) ||
      maxSubnegotiationLength < 0
    )
      throw new RangeError(
        `maxSubnegotiationLength must be a non-negative integer, got ${maxSubnegotiationLength}`,
      );
  }

  /**
   * Whether a sequence (IAC ..., IAC SB ...) is incomplete, an overflowed
   * subnegotiation still being skipped included.
   */
  get midSequence(): boolean {
    return this.state !== DATA;
  }

  /**
   * Parses one chunk, calling the sink; state carries over to the next chunk,
   * so any split of any sequence gives the same calls (data runs may be split
   * differently, but their concatenation is the same). Never throws on any
   * input; an exception thrown by the sink propagates (see
   * {@link TelnetSink}).
   *
   * @param chunk The bytes, as received.
   * @param sink Receives what is found.
   */
  push(chunk: Buffer, sink: TelnetSink): void {
    const length = chunk.length;
    let pos = 0;
    // Next IAC / CR at or after pos; -2 = not searched yet, -1 = none left.
    // Each is searched once and reused until the scan passes it, so a chunk
    // full of commands never rescans the rest of the chunk per command.
    let iac = -2;
    let cr = -2;
    while (pos < length) {
      switch (this.state) {
        case DATA: {
          if (this.sawCR) {
            this.sawCR = false;
            if (chunk[pos] === NUL) {
              pos++;
              break;
            }
          }
          if (iac !== -1 && iac < pos) iac = chunk.indexOf(IAC, pos);
          const end = iac === -1 ? length : iac;
          let start = pos;
          for (;;) {
            if (cr !== -1 && cr < pos) cr = chunk.indexOf(CR, pos);
            if (cr === -1 || cr >= end) break;
            if (cr + 1 === length) {
              // Whether a NUL follows is only known with the next chunk.
              this.sawCR = true;
              break;
            }
            if (chunk[cr + 1] === NUL) {
              pos = cr + 2;
              sink.onTelnetData(chunk, start, cr + 1);
              start = pos;
            } else {
              pos = cr + 1;
            }
          }
          pos = end;
          if (start < end) sink.onTelnetData(chunk, start, end);
          if (end < length) {
            pos = end + 1;
            this.state = COMMAND;
          }
          break;
        }
        case COMMAND: {
          const byte = chunk[pos++];
          if (byte === IAC) {
            this.state = DATA;
            sink.onTelnetData(chunk, pos - 1, pos);
          } else if (this.enterCommand(byte)) {
            sink.onTelnetCommand(byte);
          }
          break;
        }
        case OPTION:
          this.state = DATA;
          sink.onTelnetNegotiation(this.verb, chunk[pos++]);
          break;
        case SUB_OPTION: {
          const byte = chunk[pos++];
          if (byte === IAC) {
            // No option byte: broken before it began; the IAC starts a command.
            this.state = COMMAND;
            sink.onTelnetSubnegotiationError(-1, 'malformed');
          } else {
            this.option = byte;
            this.subLength = 0;
            this.state = SUB_DATA;
          }
          break;
        }
        case SUB_DATA: {
          if (iac !== -1 && iac < pos) iac = chunk.indexOf(IAC, pos);
          const end = iac === -1 ? length : iac;
          const room = this.maxSubnegotiationLength - this.subLength;
          if (end - pos > room) {
            // What fit is dropped; the first byte that did not fit and the
            // rest are skipped (the SUB_SKIP case resumes after it).
            pos += room + 1;
            this.overflow(sink);
            break;
          }
          this.append(chunk, pos, end);
          pos = end;
          if (end < length) {
            pos = end + 1;
            this.state = SUB_COMMAND;
          }
          break;
        }
        case SUB_COMMAND: {
          const byte = chunk[pos++];
          if (byte === IAC) {
            if (this.subLength < this.maxSubnegotiationLength) {
              this.reserve(1);
              (this.sub as Buffer)[this.subLength++] = IAC;
              this.state = SUB_DATA;
            } else {
              // The escaped 255 did not fit: skipped with the rest.
              this.overflow(sink);
            }
          } else if (byte === SE) {
            const option = this.option;
            const payload =
              this.subLength === 0
                ? Buffer.alloc(0)
                : Buffer.from((this.sub as Buffer).subarray(0, this.subLength));
            this.release();
            this.state = DATA;
            sink.onTelnetSubnegotiation(option, payload);
          } else {
            const option = this.option;
            this.release();
            const simple = this.enterCommand(byte);
            sink.onTelnetSubnegotiationError(option, 'malformed');
            if (simple) sink.onTelnetCommand(byte);
          }
          break;
        }
        case SUB_SKIP: {
          if (iac !== -1 && iac < pos) iac = chunk.indexOf(IAC, pos);
          if (iac === -1) {
            pos = length;
          } else {
            pos = iac + 1;
            this.state = SUB_SKIP_COMMAND;
          }
          break;
        }
        case SUB_SKIP_COMMAND: {
          const byte = chunk[pos++];
          // IAC IAC: an escaped payload byte, skipped. IAC SE: the end, as
          // enterCommand drops a stray one. Anything else ends the skipped
          // subnegotiation too (already reported) and starts its own sequence.
          if (byte === IAC) this.state = SUB_SKIP;
          else if (this.enterCommand(byte)) sink.onTelnetCommand(byte);
          break;
        }
      }
    }
  }

  /**
   * Moves to the state that follows IAC `byte` (byte not IAC); returns
   * whether it is a two-byte command to report.
   */
  private enterCommand(byte: number): boolean {
    switch (byte) {
      case WILL:
      case WONT:
      case DO:
      case DONT:
        this.verb = byte;
        this.state = OPTION;
        return false;
      case SB:
        this.state = SUB_OPTION;
        return false;
      case SE:
        // Nothing to end: dropped.
        this.state = DATA;
        return false;
      default:
        this.state = DATA;
        return true;
    }
  }

  /**
   * Abandons the current subnegotiation for being too long: its buffer is
   * released and the rest of it skipped. The state is set before the sink
   * is called, so a sink that throws leaves the parser skipping.
   */
  private overflow(sink: TelnetSink): void {
    const option = this.option;
    this.release();
    this.state = SUB_SKIP;
    sink.onTelnetSubnegotiationError(option, 'overflow');
  }

  /** Ends the current subnegotiation's buffering. */
  private release(): void {
    this.option = -1;
    this.subLength = 0;
    // An idle connection keeps at most a small buffer.
    if (this.sub !== null && this.sub.length > SUB_RETAINED_SIZE)
      this.sub = null;
  }

  /** Makes room for `count` more payload bytes (the caller checked the limit). */
  private reserve(count: number): void {
    const needed = this.subLength + count;
    const current = this.sub;
    if (current !== null && current.length >= needed) return;
    let size = current === null ? SUB_INITIAL_SIZE : current.length * 2;
    while (size < needed) size *= 2;
    // Slow (unpooled) allocation: this buffer may live as long as the
    // connection and must not pin a shared pool slab.
    const grown = Buffer.allocUnsafeSlow(
      Math.min(size, this.maxSubnegotiationLength),
    );
    if (current !== null) current.copy(grown, 0, 0, this.subLength);
    this.sub = grown;
  }

  private append(chunk: Buffer, start: number, end: number): void {
    if (start === end) return;
    this.reserve(end - start);
    chunk.copy(this.sub as Buffer, this.subLength, start, end);
    this.subLength += end - start;
  }
}

/**
 * Doubles every 0xFF byte, as data sent over telnet needs. Returns `data`
 * itself when it has none (no copy); otherwise a new Buffer when given a
 * Buffer, a new Uint8Array when given another Uint8Array.
 *
 * @publicApi
 */
export function escapeIac(data: Buffer): Buffer;
/**
 * Doubles every 0xFF byte of a Uint8Array that is not a Buffer: returns
 * `data` itself when it has none, otherwise a new Uint8Array.
 *
 * @publicApi
 */
export function escapeIac(data: Uint8Array): Uint8Array;
export function escapeIac(data: Uint8Array): Uint8Array {
  const at = data.indexOf(IAC);
  if (at === -1) return data;
  const count = countIac(data, at);
  const out = Buffer.isBuffer(data)
    ? Buffer.allocUnsafe(data.length + count)
    : new Uint8Array(data.length + count);
  copyEscaped(data, at, out, 0);
  return out;
}

/**
 * Builds IAC `verb` `option`.
 *
 * @param verb WILL, WONT, DO or DONT.
 * @param option Any option byte, 0 to 255.
 * @throws RangeError when `verb` is not one of the four, or `option` is not a
 * byte.
 * @publicApi
 */
export function negotiation(verb: number, option: number): Buffer {
  if (verb !== WILL && verb !== WONT && verb !== DO && verb !== DONT)
    throw new RangeError(`Not a negotiation verb: ${verb}`);
  checkByte(option, 255);
  return Buffer.from([IAC, verb, option]);
}

/**
 * Builds IAC SB `option` `payload` IAC SE, with every 0xFF in the payload
 * doubled. A string payload is encoded as UTF-8 (as GMCP expects).
 *
 * @param option An option byte, 0 to 254 (255 would read as IAC).
 * @throws RangeError when `option` is not in range.
 * @publicApi
 */
export function subnegotiation(
  option: number,
  payload: Uint8Array | string,
): Buffer {
  checkByte(option, 254);
  const bytes = typeof payload === 'string' ? Buffer.from(payload) : payload;
  const first = bytes.indexOf(IAC);
  const count = first === -1 ? 0 : countIac(bytes, first);
  const out = Buffer.allocUnsafe(bytes.length + count + 5);
  out[0] = IAC;
  out[1] = SB;
  out[2] = option;
  if (first === -1) out.set(bytes, 3);
  else copyEscaped(bytes, first, out, 3);
  out[out.length - 2] = IAC;
  out[out.length - 1] = SE;
  return out;
}

function checkByte(value: number, max: number): void {
  if (!Number.isInteger(value) || value < 0 || value > max)
    throw new RangeError(`Not an option byte (0 to ${max}): ${value}`);
}

/** How many 0xFF bytes `data` holds, the first being at `first`. */
function countIac(data: Uint8Array, first: number): number {
  let count = 0;
  for (let at = first; at !== -1; at = data.indexOf(IAC, at + 1)) count++;
  return count;
}

/** Copies `data` into `out` at `offset`, doubling each 0xFF (first at `first`). */
function copyEscaped(
  data: Uint8Array,
  first: number,
  out: Uint8Array,
  offset: number,
): void {
  let from = 0;
  let to = offset;
  for (let at = first; at !== -1; at = data.indexOf(IAC, at + 1)) {
    // Up to and including the 0xFF, then one more 0xFF.
    out.set(data.subarray(from, at + 1), to);
    to += at + 1 - from;
    out[to++] = IAC;
    from = at + 1;
  }
  out.set(data.subarray(from), to);
}
