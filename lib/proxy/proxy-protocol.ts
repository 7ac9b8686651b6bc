import { isIPv4, isIPv6, SocketAddress } from 'node:net';
import { ProxyProtocolError } from '../errors/proxy-protocol.error.js';

// Re-exported: it was declared here, and is still importable from here.
export { ProxyProtocolError };

/**
 * What a PROXY protocol header says about the connection it precedes.
 *
 * @publicApi
 */
export interface ProxyHeader {
  readonly version: 1 | 2;
  /**
   * `'PROXY'`: addresses follow (when the family has them). `'LOCAL'` (v2) or
   * `UNKNOWN` (v1): a health check or an unknown protocol; use the socket's
   * own addresses.
   */
  readonly command: 'PROXY' | 'LOCAL';
  /**
   * The address family the header declares. For a v2 LOCAL header it is what
   * the sender wrote, but no addresses are read; v1 UNKNOWN gives `'UNSPEC'`.
   */
  readonly family: 'IPv4' | 'IPv6' | 'UNIX' | 'UNSPEC';
  /** The transport the header declares (v1 TCP4/TCP6: `'TCP'`). */
  readonly transport: 'TCP' | 'UDP' | 'UNSPEC';
  /**
   * The client's address; only for PROXY over IPv4 or IPv6. IPv6 addresses
   * are in Node's compressed form (as `net.SocketAddress` prints them).
   */
  readonly source?: { readonly address: string; readonly port: number };
  /** The address the client connected to; present exactly when `source` is. */
  readonly destination?: { readonly address: string; readonly port: number };
  /**
   * v2 TLVs, type → raw value (nested ones such as PP2_TYPE_SSL left raw);
   * empty for v1 and for v2 LOCAL. PP2_TYPE_NOOP (0x04) is skipped, as the
   * spec says, and PP2_TYPE_CRC32C (0x03) is passed on, not verified.
   */
  readonly tlvs: ReadonlyMap<number, Buffer>;
}

/**
 * What {@link ProxyHeaderParser.push} found.
 *
 * @publicApi
 */
export type ProxyParseResult =
  | { readonly state: 'incomplete' }
  | {
      readonly state: 'done';
      readonly header: ProxyHeader;
      /**
       * The bytes after the header in the chunk that completed it: a view of
       * that chunk (empty when the header ended with it).
       */
      readonly rest: Buffer;
    };

/**
 * Options of {@link ProxyHeaderParser}.
 *
 * @publicApi
 */
export interface ProxyHeaderParserOptions {
  /**
   * The longest v2 header, in bytes after its 16-byte fixed part (the
   * length field); longer ones are rejected before any of it is buffered.
   * An integer in [0, 65535]; default 4096.
   */
  readonly maxV2Length?: number;
  /** The versions accepted; default both. */
  readonly versions?: ReadonlyArray<1 | 2>;
}

/** The longest v1 line, CRLF included (spec, 2.1). */
const V1_MAX_LENGTH = 107;
const V1_PREFIX = Buffer.from('PROXY ', 'latin1');
const V2_SIGNATURE = Buffer.from([
  0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a,
]);
/** Signature, version/command, family/transport, length. */
const V2_FIXED_LENGTH = 16;
const DEFAULT_MAX_V2_LENGTH = 4096;
const PP2_TYPE_NOOP = 0x04;
const LF = 0x0a;
const CR = 0x0d;
const PORT = /^(?:0|[1-9][0-9]{0,4})$/;
/** What an IPv6 address may be written with: no zone id, no brackets. */
const IPV6_CHARS = /^[0-9A-Fa-f:.]+$/;

const STATE_START = 0;
const STATE_V1 = 1;
const STATE_V2_FIXED = 2;
const STATE_V2_BLOCK = 3;
const STATE_DONE = 4;
const STATE_FAILED = 5;

const INCOMPLETE: ProxyParseResult = Object.freeze({ state: 'incomplete' });
const NO_TLVS: ReadonlyMap<number, Buffer> = new Map();

type Family = ProxyHeader['family'];
type Transport = ProxyHeader['transport'];

/** The v2 family/transport bytes the spec allows, and their address sizes. */
const V2_FAMILIES: ReadonlyMap<
  number,
  { family: Family; transport: Transport; addressLength: number }
> = new Map([
  [0x00, { family: 'UNSPEC', transport: 'UNSPEC', addressLength: 0 }],
  [0x11, { family: 'IPv4', transport: 'TCP', addressLength: 12 }],
  [0x12, { family: 'IPv4', transport: 'UDP', addressLength: 12 }],
  [0x21, { family: 'IPv6', transport: 'TCP', addressLength: 36 }],
  [0x22, { family: 'IPv6', transport: 'UDP', addressLength: 36 }],
  [0x31, { family: 'UNIX', transport: 'TCP', addressLength: 216 }],
  [0x32, { family: 'UNIX', transport: 'UDP', addressLength: 216 }],
]);

/**
 * Reads the HAProxy PROXY protocol header (v1 text or v2 binary, per
 * https://www.haproxy.org/download/2.9/doc/proxy-protocol.txt) at the start of
 * a connection, incrementally, for any split of it into chunks.
 *
 * - Strict: anything the spec does not allow is a {@link ProxyProtocolError},
 *   never a partial header. Data that is not a PROXY header fails at the
 *   first byte that cannot belong to a signature (`GET ` at the `G`).
 * - Bounded: a v1 line without CRLF fails at its 107th byte; a v2 length
 *   over `maxV2Length` fails as soon as the length field is read.
 * - Allocation-light: a header that arrives in one chunk is parsed in place
 *   (TLVs copied once); a split one is copied into one buffer of exactly the
 *   size it needs (107 bytes for v1, the v2 length for v2: the v2 fixed part is
 *   checked byte by byte and never buffered).
 *
 * v1 `UNKNOWN` gives command `'LOCAL'`; v2 LOCAL skips the address block and
 * TLVs unread (the spec says to discard them) but its family byte must still
 * be one the spec lists. UNIX addresses are not decoded. A TLV type other
 * than NOOP appearing twice is rejected, so an authority or unique-id TLV
 * cannot mean one thing to the parser and another to a second reader.
 *
 * Hand-written after looking at npm (2025): `proxy-protocol-js` (MIT, v1+v2)
 * parses one complete buffer only (no incremental API; a short buffer is just
 * an error), does not enforce the 107-byte v1 bound, and its error classes
 * do not extend Error; `proxy-protocol-v2` (balena) only has a dev build with
 * `hexy`/`ip-address` dependencies; `proxy-protocol` (racker, 2012) is v1
 * only and callback/stream based; `findhit-proxywrap` wraps `net.Server` and
 * v1 only. None is incremental and strict for both versions.
 *
 * @publicApi
 */
export class ProxyHeaderParser {
  private readonly acceptV1: boolean;
  private readonly acceptV2: boolean;
  private readonly maxV2Length: number;
  private state = STATE_START;
  /** Header bytes consumed so far: the v1 line, or the v2 fixed part. */
  private seen = 0;
  /**
   * The v1 line or v2 PROXY block so far, once it spans chunks: allocated
   * then, at the size the header needs, and dropped when it ends.
   */
  private buffer: Buffer | null = null;
  private buffered = 0;
  private verCmd = 0;
  private familyByte = 0;
  private v2Length = 0;

  /**
   * @param options Length bound and accepted versions.
   * @throws RangeError on an invalid option.
   */
  constructor(options: ProxyHeaderParserOptions = {}) {
    const max = options.maxV2Length ?? DEFAULT_MAX_V2_LENGTH;
    if (!Number.isInteger(max) || max < 0 || max > 0xffff) {
      throw new RangeError(
        `maxV2Length must be an integer in [0, 65535], got ${String(max)}`,
      );
    }
    const versions = options.versions ?? [1, 2];
    if (versions.length === 0 || versions.some((v) => v !== 1 && v !== 2)) {
      throw new RangeError(
        `versions must be a non-empty list of 1 and 2, got [${versions.join(', ')}]`,
      );
    }
    this.maxV2Length = max;
    this.acceptV1 = versions.includes(1);
    this.acceptV2 = versions.includes(2);
  }

  /**
   * Feeds the next chunk of the connection.
   *
   * @param chunk The bytes, as received. It is not kept: the header's
   *   TLVs are copies, and only `rest` is a view of it.
   * @returns `'incomplete'` until the chunk that ends the header, then
   *   `'done'` with the header and the bytes that follow it in that chunk.
   * @throws ProxyProtocolError when the bytes are not a valid header of an
   *   accepted version, and on any push after `'done'` or an error.
   */
  push(chunk: Buffer): ProxyParseResult {
    if (this.state === STATE_DONE || this.state === STATE_FAILED) {
      throw new ProxyProtocolError(
        this.state === STATE_DONE
          ? 'PROXY header already parsed: push() after done'
          : 'PROXY header already rejected: push() after an error',
      );
    }
    try {
      return this.feed(chunk);
    } catch (error) {
      this.state = STATE_FAILED;
      this.buffer = null;
      throw error;
    }
  }

  private feed(chunk: Buffer): ProxyParseResult {
    if (chunk.length === 0) return INCOMPLETE;
    if (this.state === STATE_START) this.state = this.pickVersion(chunk);
    if (this.state === STATE_V1) return this.feedV1(chunk);
    let pos = 0;
    if (this.state === STATE_V2_FIXED) {
      pos = this.feedV2Fixed(chunk);
      if (this.state === STATE_V2_FIXED) return INCOMPLETE;
    }
    return this.feedV2Block(chunk, pos);
  }

  private pickVersion(chunk: Buffer): number {
    const first = chunk[0];
    if (first === V1_PREFIX[0]) {
      if (this.acceptV1) return STATE_V1;
      throw new ProxyProtocolError(
        'PROXY v1 header not accepted (only v2 is)' + preview(chunk),
      );
    }
    if (first === V2_SIGNATURE[0]) {
      if (this.acceptV2) return STATE_V2_FIXED;
      throw new ProxyProtocolError(
        'PROXY v2 header not accepted (only v1 is)' + preview(chunk),
      );
    }
    throw new ProxyProtocolError(
      'not a PROXY protocol header' + preview(chunk),
    );
  }

  private feedV1(chunk: Buffer): ProxyParseResult {
    const length = chunk.length;
    const base = this.seen;
    let i = 0;
    for (; i < length && base + i < V1_PREFIX.length; i++) {
      if (chunk[i] !== V1_PREFIX[base + i]) {
        throw signatureError(1, base + i, chunk[i], V1_PREFIX[base + i]);
      }
    }
    // The spec's bound: the LF must be within the first 107 bytes.
    const end = Math.min(length, V1_MAX_LENGTH - base);
    for (; i < end; i++) {
      if (chunk[i] !== LF) continue;
      const beforeLF = i > 0 ? chunk[i - 1] : this.buffer![this.buffered - 1];
      if (beforeLF !== CR) {
        throw new ProxyProtocolError('PROXY v1: line ends in LF without CR');
      }
      let header: ProxyHeader;
      if (this.buffer === null) {
        header = parseV1(chunk, i - 1);
      } else {
        chunk.copy(this.buffer, this.buffered, 0, i + 1);
        header = parseV1(this.buffer, this.buffered + i - 1);
      }
      return this.finish(header, chunk, i + 1);
    }
    if (base + length >= V1_MAX_LENGTH) {
      throw new ProxyProtocolError(
        `PROXY v1: no CRLF within ${V1_MAX_LENGTH} bytes`,
      );
    }
    this.buffer ??= Buffer.allocUnsafe(V1_MAX_LENGTH);
    chunk.copy(this.buffer, this.buffered);
    this.buffered += length;
    this.seen += length;
    return INCOMPLETE;
  }

  /** Checks the fixed part as it arrives; returns where it ends in `chunk`. */
  private feedV2Fixed(chunk: Buffer): number {
    const length = chunk.length;
    let i = 0;
    for (; i < length && this.seen < V2_FIXED_LENGTH; i++, this.seen++) {
      const byte = chunk[i];
      const at = this.seen;
      if (at < V2_SIGNATURE.length) {
        if (byte !== V2_SIGNATURE[at]) {
          throw signatureError(2, at, byte, V2_SIGNATURE[at]);
        }
      } else if (at === 12) {
        if (byte >> 4 !== 2) {
          throw new ProxyProtocolError(
            `PROXY v2: bad version ${byte >> 4} (byte 12 is ${hex(byte)})`,
          );
        }
        if ((byte & 0x0f) > 1) {
          throw new ProxyProtocolError(
            `PROXY v2: bad command ${byte & 0x0f} (byte 12 is ${hex(byte)})`,
          );
        }
        this.verCmd = byte;
      } else if (at === 13) {
        if (!V2_FAMILIES.has(byte)) {
          throw new ProxyProtocolError(
            `PROXY v2: bad family/transport byte ${hex(byte)}`,
          );
        }
        this.familyByte = byte;
      } else if (at === 14) {
        this.v2Length = byte << 8;
      } else {
        this.v2Length |= byte;
        this.checkV2Length();
        this.state = STATE_V2_BLOCK;
      }
    }
    return i;
  }

  private checkV2Length(): void {
    const length = this.v2Length;
    if (length > this.maxV2Length) {
      throw new ProxyProtocolError(
        `PROXY v2: length ${length} over the maximum ${this.maxV2Length}`,
      );
    }
    const addressLength = V2_FAMILIES.get(this.familyByte)!.addressLength;
    if (this.isProxyCommand() && length < addressLength) {
      throw new ProxyProtocolError(
        `PROXY v2: address block of ${addressLength} bytes longer than the length ${length}`,
      );
    }
  }

  /** Collects the address/TLV block that follows the fixed part. */
  private feedV2Block(chunk: Buffer, pos: number): ProxyParseResult {
    const need = this.v2Length - this.buffered;
    const available = chunk.length - pos;
    if (available < need) {
      // A LOCAL block is discarded unread, so it is only counted.
      if (this.isProxyCommand()) {
        this.buffer ??= Buffer.allocUnsafe(this.v2Length);
        chunk.copy(this.buffer, this.buffered, pos);
      }
      this.buffered += available;
      return INCOMPLETE;
    }
    let header: ProxyHeader;
    if (this.buffer === null) {
      header = this.parseV2(chunk, pos, false);
    } else {
      chunk.copy(this.buffer, this.buffered, pos, pos + need);
      header = this.parseV2(this.buffer, 0, true);
    }
    return this.finish(header, chunk, pos + need);
  }

  private isProxyCommand(): boolean {
    return (this.verCmd & 0x0f) === 1;
  }

  /**
   * Decodes the block at `block[start, start + v2Length)`. `owned`: the
   * block is this parser's own copy, so TLV values may be views of it.
   */
  private parseV2(block: Buffer, start: number, owned: boolean): ProxyHeader {
    const { family, transport, addressLength } = V2_FAMILIES.get(
      this.familyByte,
    )!;
    if (!this.isProxyCommand()) {
      return { version: 2, command: 'LOCAL', family, transport, tlvs: NO_TLVS };
    }
    let source: ProxyHeader['source'];
    let destination: ProxyHeader['destination'];
    if (family === 'IPv4') {
      source = {
        address: ipv4(block, start),
        port: block.readUInt16BE(start + 8),
      };
      destination = {
        address: ipv4(block, start + 4),
        port: block.readUInt16BE(start + 10),
      };
    } else if (family === 'IPv6') {
      source = {
        address: ipv6(block, start),
        port: block.readUInt16BE(start + 32),
      };
      destination = {
        address: ipv6(block, start + 16),
        port: block.readUInt16BE(start + 34),
      };
    }
    let tlvStart = start + addressLength;
    let tlvEnd = start + this.v2Length;
    if (tlvStart < tlvEnd && !owned) {
      // One copy, so the TLVs never pin (or alias) the socket's read buffer.
      block = Buffer.from(block.subarray(tlvStart, tlvEnd));
      tlvStart = 0;
      tlvEnd = block.length;
    }
    const tlvs = parseTlvs(
      block,
      tlvStart,
      tlvEnd,
      V2_FIXED_LENGTH + addressLength,
    );
    return source === undefined
      ? { version: 2, command: 'PROXY', family, transport, tlvs }
      : {
          version: 2,
          command: 'PROXY',
          family,
          transport,
          source,
          destination,
          tlvs,
        };
  }

  private finish(
    header: ProxyHeader,
    chunk: Buffer,
    end: number,
  ): ProxyParseResult {
    this.state = STATE_DONE;
    this.buffer = null;
    return { state: 'done', header, rest: chunk.subarray(end) };
  }
}

/**
 * Decodes a v1 line, `line[0, cr)` being everything before its CRLF (the
 * `PROXY ` prefix already checked).
 */
function parseV1(line: Buffer, cr: number): ProxyHeader {
  const text = line.toString('latin1', V1_PREFIX.length, cr);
  if (text === 'UNKNOWN' || text.startsWith('UNKNOWN ')) {
    // The spec: the receiver ignores anything else before the CRLF.
    return {
      version: 1,
      command: 'LOCAL',
      family: 'UNSPEC',
      transport: 'UNSPEC',
      tlvs: NO_TLVS,
    };
  }
  if (text === '') throw new ProxyProtocolError('PROXY v1: missing family');
  const fields = text.split(' ');
  if (fields.includes('')) {
    throw new ProxyProtocolError(
      `PROXY v1: fields must be separated by single spaces in ${quote(text)}`,
    );
  }
  const word = fields[0];
  if (word !== 'TCP4' && word !== 'TCP6') {
    throw new ProxyProtocolError(`PROXY v1: bad family ${quote(word)}`);
  }
  if (fields.length !== 5) {
    throw new ProxyProtocolError(
      `PROXY v1: expected ${word} source destination sport dport, got ${fields.length - 1} fields after ${word}`,
    );
  }
  return {
    version: 1,
    command: 'PROXY',
    family: word === 'TCP4' ? 'IPv4' : 'IPv6',
    transport: 'TCP',
    source: {
      address: v1Address(word, fields[1], 'source'),
      port: v1Port(fields[3], 'source'),
    },
    destination: {
      address: v1Address(word, fields[2], 'destination'),
      port: v1Port(fields[4], 'destination'),
    },
    tlvs: NO_TLVS,
  };
}

function v1Address(
  word: 'TCP4' | 'TCP6',
  text: string,
  which: 'source' | 'destination',
): string {
  // Node's isIPv4 already refuses leading zeroes, as the spec does.
  if (word === 'TCP4') {
    if (isIPv4(text)) return text;
    if (isIPv6(text)) {
      throw new ProxyProtocolError(
        `PROXY v1: TCP4 with an IPv6 ${which} address ${quote(text)}`,
      );
    }
  } else {
    if (IPV6_CHARS.test(text) && isIPv6(text)) {
      return new SocketAddress({ address: text, family: 'ipv6' }).address;
    }
    if (isIPv4(text)) {
      throw new ProxyProtocolError(
        `PROXY v1: TCP6 with an IPv4 ${which} address ${quote(text)}`,
      );
    }
  }
  throw new ProxyProtocolError(`PROXY v1: bad ${which} address ${quote(text)}`);
}

function v1Port(text: string, which: 'source' | 'destination'): number {
  const port = PORT.test(text) ? Number(text) : NaN;
  if (!(port <= 0xffff)) {
    throw new ProxyProtocolError(`PROXY v1: bad ${which} port ${quote(text)}`);
  }
  return port;
}

/**
 * Reads the TLVs of `block[start, end)`; `offset` is the header offset of
 * `start`, for messages.
 */
function parseTlvs(
  block: Buffer,
  start: number,
  end: number,
  offset: number,
): ReadonlyMap<number, Buffer> {
  if (start === end) return NO_TLVS;
  const tlvs = new Map<number, Buffer>();
  let pos = start;
  while (pos < end) {
    const at = offset + (pos - start);
    if (end - pos < 3) {
      throw new ProxyProtocolError(
        `PROXY v2: truncated TLV at byte ${at} (${end - pos} of its 3 header bytes)`,
      );
    }
    const type = block[pos];
    const length = block.readUInt16BE(pos + 1);
    pos += 3;
    if (length > end - pos) {
      throw new ProxyProtocolError(
        `PROXY v2: TLV ${hex(type)} at byte ${at} runs past the header end (length ${length}, ${end - pos} bytes left)`,
      );
    }
    if (type !== PP2_TYPE_NOOP) {
      if (tlvs.has(type)) {
        throw new ProxyProtocolError(
          `PROXY v2: TLV ${hex(type)} repeated at byte ${at}`,
        );
      }
      tlvs.set(type, block.subarray(pos, pos + length));
    }
    pos += length;
  }
  return tlvs;
}

function ipv4(block: Buffer, at: number): string {
  return `${block[at]}.${block[at + 1]}.${block[at + 2]}.${block[at + 3]}`;
}

/**
 * Formats 16 bytes as Node prints an IPv6 address: lowercase, no leading
 * zeroes, the first longest run of two or more zero groups as `::`, and the
 * IPv4-compatible (`::a.b.c.d`) and IPv4-mapped (`::ffff:a.b.c.d`) forms.
 */
function ipv6(block: Buffer, at: number): string {
  let bestStart = -1;
  let bestLength = 0;
  let runStart = -1;
  for (let i = 0; i <= 8; i++) {
    const zero = i < 8 && block.readUInt16BE(at + 2 * i) === 0;
    if (zero) {
      if (runStart === -1) runStart = i;
    } else if (runStart !== -1) {
      if (i - runStart > bestLength) {
        bestStart = runStart;
        bestLength = i - runStart;
      }
      runStart = -1;
    }
  }
  if (bestLength < 2) bestStart = -1;
  if (
    bestStart === 0 &&
    (bestLength === 6 ||
      (bestLength === 5 && block.readUInt16BE(at + 10) === 0xffff))
  ) {
    return `::${bestLength === 5 ? 'ffff:' : ''}${ipv4(block, at + 12)}`;
  }
  let text = '';
  for (let i = 0; i < 8; i++) {
    if (i === bestStart) {
      text += '::';
      i += bestLength - 1;
      continue;
    }
    if (text !== '' && !text.endsWith(':')) text += ':';
    text += block.readUInt16BE(at + 2 * i).toString(16);
  }
  return text;
}

function signatureError(
  version: 1 | 2,
  at: number,
  byte: number,
  expected: number,
): ProxyProtocolError {
  return new ProxyProtocolError(
    `not a PROXY protocol header: byte ${at} is ${hex(byte)}, the v${version} signature has ${hex(expected)}`,
  );
}

/** The first byte, for a message (the same whatever the chunking). */
function preview(chunk: Buffer): string {
  const first = chunk[0];
  return `: first byte ${hex(first)} ${quote(String.fromCharCode(first))}`;
}

function quote(text: string): string {
  return JSON.stringify(text.length > 48 ? text.slice(0, 48) + '…' : text);
}

function hex(byte: number): string {
  return '0x' + byte.toString(16).padStart(2, '0');
}
