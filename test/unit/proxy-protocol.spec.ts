import { describe, expect, it } from '@jest/globals';
import { isIPv4, isIPv6, SocketAddress } from 'node:net';
import {
  ProxyHeaderParser,
  ProxyProtocolError,
  type ProxyHeader,
  type ProxyParseResult,
} from '../../lib/proxy/proxy-protocol.js';

const SIGNATURE = Buffer.from([
  0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a,
]);
const TRAILER = Buffer.from('look\r\n\x00\xff', 'latin1');

/** A v2 header: `verCmd` whole (0x20 LOCAL, 0x21 PROXY), then `fam`. */
function v2(verCmd: number, fam: number, ...parts: Buffer[]): Buffer {
  const body = Buffer.concat(parts);
  const fixed = Buffer.alloc(4);
  fixed[0] = verCmd;
  fixed[1] = fam;
  fixed.writeUInt16BE(body.length, 2);
  return Buffer.concat([SIGNATURE, fixed, body]);
}

/** `header` with its length field overwritten (the block is left as is). */
function withLength(header: Buffer, length: number): Buffer {
  const out = Buffer.from(header);
  out.writeUInt16BE(length, 14);
  return out;
}

function tlv(type: number, value: Buffer | string): Buffer {
  const bytes = Buffer.from(value);
  const head = Buffer.alloc(3);
  head[0] = type;
  head.writeUInt16BE(bytes.length, 1);
  return Buffer.concat([head, bytes]);
}

function ports(source: number, destination: number): Buffer {
  const bytes = Buffer.alloc(4);
  bytes.writeUInt16BE(source, 0);
  bytes.writeUInt16BE(destination, 2);
  return bytes;
}

const bytes = (...values: number[]): Buffer => Buffer.from(values);
const latin1 = (text: string): Buffer => Buffer.from(text, 'latin1');
const ipv6Bytes = (text: string): Buffer => {
  // Expands `text` (no `::` handling needed: callers give all 8 groups).
  const out = Buffer.alloc(16);
  text.split(':').forEach((g, i) => out.writeUInt16BE(parseInt(g, 16), 2 * i));
  return out;
};

/** What feeding some chunks gave: the header, and every byte after it. */
type Outcome =
  | { kind: 'done'; header: ProxyHeader; after: Buffer }
  | { kind: 'incomplete' }
  | { kind: 'error'; message: string };

/**
 * Feeds chunks until the header is done; `after` is `rest` followed by the
 * chunks not fed. Anything thrown but a ProxyProtocolError is rethrown.
 */
function feed(chunks: Buffer[], parser = new ProxyHeaderParser()): Outcome {
  for (let i = 0; i < chunks.length; i++) {
    let result: ProxyParseResult;
    try {
      result = parser.push(chunks[i]);
    } catch (error) {
      if (error instanceof ProxyProtocolError) {
        return { kind: 'error', message: error.message };
      }
      throw error;
    }
    if (result.state === 'done') {
      const tail = chunks[i].subarray(chunks[i].length - result.rest.length);
      expect(result.rest.equals(tail)).toBe(true);
      return {
        kind: 'done',
        header: result.header,
        after: Buffer.concat([result.rest, ...chunks.slice(i + 1)]),
      };
    }
  }
  return { kind: 'incomplete' };
}

function splitAt(data: Buffer, ...at: number[]): Buffer[] {
  const cuts = [0, ...at, data.length];
  return cuts.slice(1).map((end, i) => data.subarray(cuts[i], end));
}

function byteByByte(data: Buffer): Buffer[] {
  return [...data].map((byte) => Buffer.from([byte]));
}

/** Checks `data` gives `expected` fed whole, split anywhere, and bytewise. */
function expectEverySplit(data: Buffer, expected: Outcome): void {
  expect(feed([data])).toEqual(expected);
  for (let i = 0; i <= data.length; i++) {
    expect(feed(splitAt(data, i))).toEqual(expected);
  }
  expect(feed(byteByByte(data))).toEqual(expected);
  // Empty chunks in between change nothing.
  const empty = Buffer.alloc(0);
  expect(
    feed(byteByByte(data).flatMap((chunk) => [empty, chunk, empty])),
  ).toEqual(expected);
}

const noTlvs = new Map<number, Buffer>();

const ALL_ONES_V6 = Array<string>(8).fill('ffff').join(':');
const escape = (text: string): string =>
  text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

const VALID: Array<{ name: string; data: Buffer; header: ProxyHeader }> = [
  {
    name: 'v1 TCP4',
    data: latin1('PROXY TCP4 192.168.0.1 10.0.0.2 56324 443\r\n'),
    header: {
      version: 1,
      command: 'PROXY',
      family: 'IPv4',
      transport: 'TCP',
      source: { address: '192.168.0.1', port: 56324 },
      destination: { address: '10.0.0.2', port: 443 },
      tlvs: noTlvs,
    },
  },
  {
    name: 'v1 TCP6 (addresses compressed as Node prints them)',
    data: latin1(
      'PROXY TCP6 2001:0DB8:0000:0000:0000:0000:0000:0001 ::ffff:10.0.0.1 0 65535\r\n',
    ),
    header: {
      version: 1,
      command: 'PROXY',
      family: 'IPv6',
      transport: 'TCP',
      source: { address: '2001:db8::1', port: 0 },
      destination: { address: '::ffff:10.0.0.1', port: 65535 },
      tlvs: noTlvs,
    },
  },
  {
    name: 'v1 TCP6 of the longest form (104 bytes)',
    data: latin1(`PROXY TCP6 ${ALL_ONES_V6} ${ALL_ONES_V6} 65535 65535\r\n`),
    header: {
      version: 1,
      command: 'PROXY',
      family: 'IPv6',
      transport: 'TCP',
      source: { address: ALL_ONES_V6, port: 65535 },
      destination: { address: ALL_ONES_V6, port: 65535 },
      tlvs: noTlvs,
    },
  },
  {
    name: 'v1 UNKNOWN',
    data: latin1('PROXY UNKNOWN\r\n'),
    header: {
      version: 1,
      command: 'LOCAL',
      family: 'UNSPEC',
      transport: 'UNSPEC',
      tlvs: noTlvs,
    },
  },
  {
    name: 'v1 UNKNOWN with ignored fields, 107 bytes in all',
    data: latin1('PROXY UNKNOWN ' + 'x\r'.repeat(45) + 'a\r\n'),
    header: {
      version: 1,
      command: 'LOCAL',
      family: 'UNSPEC',
      transport: 'UNSPEC',
      tlvs: noTlvs,
    },
  },
  {
    name: 'v2 PROXY TCP4',
    data: v2(0x21, 0x11, bytes(127, 0, 0, 1, 192, 0, 2, 1), ports(12345, 80)),
    header: {
      version: 2,
      command: 'PROXY',
      family: 'IPv4',
      transport: 'TCP',
      source: { address: '127.0.0.1', port: 12345 },
      destination: { address: '192.0.2.1', port: 80 },
      tlvs: noTlvs,
    },
  },
  {
    name: 'v2 PROXY UDP4 with TLVs (ALPN, AUTHORITY, raw nested SSL, NOOP skipped)',
    data: v2(
      0x21,
      0x12,
      bytes(10, 1, 2, 3, 255, 255, 255, 255),
      ports(0, 65535),
      tlv(0x01, 'h2'),
      tlv(0x04, Buffer.alloc(5)),
      tlv(0x02, 'example.com'),
      tlv(0x20, Buffer.concat([bytes(0x07, 0, 0, 0, 0), tlv(0x21, 'TLSv1.3')])),
      tlv(0xe0, ''),
      tlv(0x04, ''),
    ),
    header: {
      version: 2,
      command: 'PROXY',
      family: 'IPv4',
      transport: 'UDP',
      source: { address: '10.1.2.3', port: 0 },
      destination: { address: '255.255.255.255', port: 65535 },
      tlvs: new Map([
        [0x01, latin1('h2')],
        [0x02, latin1('example.com')],
        [0x20, Buffer.concat([bytes(0x07, 0, 0, 0, 0), tlv(0x21, 'TLSv1.3')])],
        [0xe0, Buffer.alloc(0)],
      ]),
    },
  },
  {
    name: 'v2 PROXY TCP6',
    data: v2(
      0x21,
      0x21,
      ipv6Bytes('2001:0db8:0000:0000:0001:0000:0000:0001'),
      ipv6Bytes('0000:0000:0000:0000:0000:ffff:c000:0201'),
      ports(443, 8443),
      tlv(0x05, 'id-42'),
    ),
    header: {
      version: 2,
      command: 'PROXY',
      family: 'IPv6',
      transport: 'TCP',
      source: { address: '2001:db8::1:0:0:1', port: 443 },
      destination: { address: '::ffff:192.0.2.1', port: 8443 },
      tlvs: new Map([[0x05, latin1('id-42')]]),
    },
  },
  {
    name: 'v2 PROXY UNIX (addresses not decoded) with a TLV',
    data: v2(
      0x21,
      0x31,
      Buffer.alloc(108, 0x61),
      Buffer.alloc(108, 0x62),
      tlv(0x01, 'irc'),
    ),
    header: {
      version: 2,
      command: 'PROXY',
      family: 'UNIX',
      transport: 'TCP',
      tlvs: new Map([[0x01, latin1('irc')]]),
    },
  },
  {
    name: 'v2 PROXY UNSPEC',
    data: v2(0x21, 0x00),
    header: {
      version: 2,
      command: 'PROXY',
      family: 'UNSPEC',
      transport: 'UNSPEC',
      tlvs: noTlvs,
    },
  },
  {
    name: 'v2 LOCAL (health check)',
    data: v2(0x20, 0x00),
    header: {
      version: 2,
      command: 'LOCAL',
      family: 'UNSPEC',
      transport: 'UNSPEC',
      tlvs: noTlvs,
    },
  },
  {
    name: 'v2 LOCAL with an address block and bytes that are not TLVs, all ignored',
    data: v2(0x20, 0x22, Buffer.alloc(36, 7), bytes(0x01, 0xff)),
    header: {
      version: 2,
      command: 'LOCAL',
      family: 'IPv6',
      transport: 'UDP',
      tlvs: noTlvs,
    },
  },
];

const MALFORMED: Array<{ name: string; data: Buffer; message: RegExp }> = [
  {
    name: 'an HTTP request',
    data: latin1('GET / HTTP/1.1\r\n\r\n'),
    message: /^not a PROXY protocol header: first byte 0x47 "G"$/,
  },
  {
    name: 'a v1 signature gone wrong',
    data: latin1('PROXZ TCP4 1.2.3.4 5.6.7.8 1 2\r\n'),
    message: /byte 4 is 0x5a, the v1 signature has 0x59/,
  },
  {
    name: 'a lowercase v1 signature',
    data: latin1('proxy TCP4 1.2.3.4 5.6.7.8 1 2\r\n'),
    message: /^not a PROXY protocol header/,
  },
  {
    name: 'a v2 signature gone wrong',
    data: Buffer.concat([latin1('\r\n\r\n\x00\r\nQUIX\n'), bytes(0x21, 0)]),
    message: /byte 10 is 0x58, the v2 signature has 0x54/,
  },
  {
    name: 'a v1 line with no CRLF within 107 bytes',
    data: latin1('PROXY UNKNOWN ' + 'x'.repeat(92) + '\r\n'),
    message: /^PROXY v1: no CRLF within 107 bytes$/,
  },
  {
    name: 'a v1 line with no terminator at all',
    data: latin1('PROXY TCP4 ' + '1'.repeat(200)),
    message: /no CRLF within 107 bytes/,
  },
  {
    name: 'a bad v1 family word',
    data: latin1('PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n'),
    message: /^PROXY v1: bad family "TCP5"$/,
  },
  {
    name: 'UNKNOWN run into more letters',
    data: latin1('PROXY UNKNOWNX\r\n'),
    message: /bad family "UNKNOWNX"/,
  },
  {
    name: 'a missing v1 family',
    data: latin1('PROXY \r\n'),
    message: /^PROXY v1: missing family$/,
  },
  {
    name: 'a bad IPv4 address',
    data: latin1('PROXY TCP4 1.2.3.256 5.6.7.8 1 2\r\n'),
    message: /^PROXY v1: bad source address "1.2.3.256"$/,
  },
  {
    name: 'an IPv4 address with a leading zero',
    data: latin1('PROXY TCP4 1.2.3.4 5.6.7.08 1 2\r\n'),
    message: /^PROXY v1: bad destination address "5.6.7.08"$/,
  },
  {
    name: 'an IPv6 address with a zone id',
    data: latin1('PROXY TCP6 fe80::1%eth0 ::1 1 2\r\n'),
    message: /^PROXY v1: bad source address "fe80::1%eth0"$/,
  },
  {
    name: 'TCP4 with an IPv6 address',
    data: latin1('PROXY TCP4 ::1 5.6.7.8 1 2\r\n'),
    message: /^PROXY v1: TCP4 with an IPv6 source address "::1"$/,
  },
  {
    name: 'TCP6 with an IPv4 address',
    data: latin1('PROXY TCP6 ::1 5.6.7.8 1 2\r\n'),
    message: /^PROXY v1: TCP6 with an IPv4 destination address "5.6.7.8"$/,
  },
  {
    name: 'a port over 65535',
    data: latin1('PROXY TCP4 1.2.3.4 5.6.7.8 99999 2\r\n'),
    message: /^PROXY v1: bad source port "99999"$/,
  },
  ...['080', '+80', '-1', '0x50', '8O', '100000'].map((port) => ({
    name: `the port ${port}`,
    data: latin1(`PROXY TCP4 1.2.3.4 5.6.7.8 1 ${port}\r\n`),
    message: new RegExp(`^PROXY v1: bad destination port "${escape(port)}"$`),
  })),
  {
    name: 'a double space',
    data: latin1('PROXY TCP4  1.2.3.4 5.6.7.8 1 2\r\n'),
    message: /^PROXY v1: fields must be separated by single spaces/,
  },
  {
    name: 'a double space after PROXY',
    data: latin1('PROXY  TCP4 1.2.3.4 5.6.7.8 1 2\r\n'),
    message: /single spaces/,
  },
  {
    name: 'a trailing space',
    data: latin1('PROXY TCP4 1.2.3.4 5.6.7.8 1 2 \r\n'),
    message: /single spaces/,
  },
  {
    name: 'a tab for a space',
    data: latin1('PROXY TCP4 1.2.3.4\t5.6.7.8 1 2\r\n'),
    message:
      /^PROXY v1: expected TCP4 source destination sport dport, got 3 fields/,
  },
  {
    name: 'a missing port',
    data: latin1('PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n'),
    message: /got 3 fields after TCP4/,
  },
  {
    name: 'an extra field',
    data: latin1('PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n'),
    message: /got 5 fields after TCP4/,
  },
  {
    name: 'LF without CR',
    data: latin1('PROXY TCP4 1.2.3.4 5.6.7.8 1 2\nmore\r\n'),
    message: /^PROXY v1: line ends in LF without CR$/,
  },
  {
    name: 'LF without CR right after PROXY',
    data: latin1('PROXY \n'),
    message: /LF without CR/,
  },
  {
    name: 'v2 version 1',
    data: v2(0x11, 0x11, Buffer.alloc(12)),
    message: /^PROXY v2: bad version 1 \(byte 12 is 0x11\)$/,
  },
  {
    name: 'v2 version 3',
    data: v2(0x31, 0x11, Buffer.alloc(12)),
    message: /bad version 3/,
  },
  {
    name: 'v2 command 2',
    data: v2(0x22, 0x11, Buffer.alloc(12)),
    message: /^PROXY v2: bad command 2 \(byte 12 is 0x22\)$/,
  },
  ...[0x01, 0x10, 0x13, 0x23, 0x41, 0xff].map((fam) => ({
    name: `v2 family byte 0x${fam.toString(16)}`,
    data: v2(0x21, fam, Buffer.alloc(12)),
    message: /^PROXY v2: bad family\/transport byte 0x/,
  })),
  {
    name: 'a bad family byte under LOCAL',
    data: v2(0x20, 0x13),
    message: /bad family\/transport byte 0x13/,
  },
  {
    name: 'a v2 length over maxV2Length (default 4096)',
    data: withLength(v2(0x21, 0x11, Buffer.alloc(24)), 4097),
    message: /^PROXY v2: length 4097 over the maximum 4096$/,
  },
  {
    name: 'an IPv4 address block longer than the length',
    data: v2(0x21, 0x11, Buffer.alloc(11)),
    message: /^PROXY v2: address block of 12 bytes longer than the length 11$/,
  },
  {
    name: 'an IPv6 address block longer than the length',
    data: v2(0x21, 0x21, Buffer.alloc(12)),
    message: /address block of 36 bytes longer than the length 12/,
  },
  {
    name: 'a UNIX address block longer than the length',
    data: v2(0x21, 0x32, Buffer.alloc(215)),
    message: /address block of 216 bytes longer than the length 215/,
  },
  {
    name: 'a TLV cut in its header',
    data: v2(0x21, 0x11, Buffer.alloc(12), tlv(0x01, 'h2'), bytes(0x02, 0)),
    message: /^PROXY v2: truncated TLV at byte 33 \(2 of its 3 header bytes\)$/,
  },
  {
    name: 'a TLV running past the end',
    data: v2(0x21, 0x11, Buffer.alloc(12), tlv(0x02, 'host').subarray(0, 6)),
    message:
      /^PROXY v2: TLV 0x02 at byte 28 runs past the header end \(length 4, 3 bytes left\)$/,
  },
  {
    name: 'a repeated TLV',
    data: v2(0x21, 0x00, tlv(0x02, 'a'), tlv(0x02, 'b')),
    message: /^PROXY v2: TLV 0x02 repeated at byte 20$/,
  },
];

describe('ProxyHeaderParser', () => {
  describe.each(VALID)('valid: $name', ({ data, header }) => {
    it('gives the header and the bytes after it, for any split', () => {
      const stream = Buffer.concat([data, TRAILER]);
      expectEverySplit(stream, { kind: 'done', header, after: TRAILER });
      expectEverySplit(data, { kind: 'done', header, after: Buffer.alloc(0) });
    });

    it('is incomplete until the last byte of the header', () => {
      const parser = new ProxyHeaderParser();
      expect(parser.push(data.subarray(0, data.length - 1))).toEqual({
        state: 'incomplete',
      });
      const result = parser.push(data.subarray(data.length - 1));
      expect(result).toEqual({ state: 'done', header, rest: Buffer.alloc(0) });
    });
  });

  describe.each(MALFORMED)('malformed: $name', ({ data, message }) => {
    it('throws a ProxyProtocolError saying what is wrong, for any split', () => {
      const outcome = feed([data]);
      expect(outcome.kind).toBe('error');
      expect(outcome.kind === 'error' && outcome.message).toMatch(message);
      expectEverySplit(data, outcome);
      expectEverySplit(Buffer.concat([data, TRAILER]), outcome);
    });
  });

  it('rejects non-PROXY data at the first byte that cannot be a signature', () => {
    expect(() => new ProxyHeaderParser().push(latin1('G'))).toThrow(
      ProxyProtocolError,
    );
    const v1 = new ProxyHeaderParser();
    for (const c of 'PROX') expect(v1.push(latin1(c)).state).toBe('incomplete');
    expect(() => v1.push(latin1('Z'))).toThrow(/byte 4 is 0x5a/);
    const v2p = new ProxyHeaderParser();
    for (const byte of SIGNATURE.subarray(0, 7)) {
      expect(v2p.push(bytes(byte)).state).toBe('incomplete');
    }
    expect(() => v2p.push(bytes(0x00))).toThrow(/byte 7 is 0x00/);
  });

  it('fails a v1 line at its 107th byte without CRLF, and not before', () => {
    const parser = new ProxyHeaderParser();
    const line = latin1('PROXY UNKNOWN ' + 'x'.repeat(93));
    expect(line.length).toBe(107);
    expect(parser.push(line.subarray(0, 106)).state).toBe('incomplete');
    expect(() => parser.push(line.subarray(106))).toThrow(
      /no CRLF within 107 bytes/,
    );
  });

  it('checks the v2 length against maxV2Length before the block arrives', () => {
    const header = v2(
      0x21,
      0x11,
      Buffer.alloc(12),
      tlv(0xe0, Buffer.alloc(85)),
    );
    expect(
      feed([header], new ProxyHeaderParser({ maxV2Length: 100 })).kind,
    ).toBe('done');
    const parser = new ProxyHeaderParser({ maxV2Length: 99 });
    expect(() => parser.push(header.subarray(0, 16))).toThrow(
      'PROXY v2: length 100 over the maximum 99',
    );
    const most = new ProxyHeaderParser({ maxV2Length: 65535 });
    const longest = v2(0x21, 0x00, tlv(0xe0, Buffer.alloc(65532)));
    expect(longest.length).toBe(16 + 65535);
    const result = most.push(longest);
    expect(
      result.state === 'done' && result.header.tlvs.get(0xe0)?.length,
    ).toBe(65532);
  });

  it('accepts only the versions asked for', () => {
    const v1Line = latin1('PROXY UNKNOWN\r\n');
    const v2Local = v2(0x20, 0x00);
    expect(() => new ProxyHeaderParser({ versions: [2] }).push(v1Line)).toThrow(
      /^PROXY v1 header not accepted \(only v2 is\): first byte 0x50/,
    );
    expect(() =>
      new ProxyHeaderParser({ versions: [1] }).push(v2Local),
    ).toThrow(/^PROXY v2 header not accepted \(only v1 is\)/);
    expect(feed([v1Line], new ProxyHeaderParser({ versions: [1] })).kind).toBe(
      'done',
    );
    expect(feed([v2Local], new ProxyHeaderParser({ versions: [2] })).kind).toBe(
      'done',
    );
  });

  it('rejects invalid options', () => {
    for (const maxV2Length of [-1, 1.5, 65536, NaN]) {
      expect(() => new ProxyHeaderParser({ maxV2Length })).toThrow(RangeError);
    }
    expect(() => new ProxyHeaderParser({ versions: [] })).toThrow(RangeError);
    expect(
      () => new ProxyHeaderParser({ versions: [3 as unknown as 1] }),
    ).toThrow(RangeError);
  });

  it('throws on a push after done, and after an error', () => {
    const done = new ProxyHeaderParser();
    expect(done.push(latin1('PROXY UNKNOWN\r\nhi')).state).toBe('done');
    expect(() => done.push(latin1('more'))).toThrow(
      new ProxyProtocolError('PROXY header already parsed: push() after done'),
    );
    const failed = new ProxyHeaderParser();
    expect(() => failed.push(latin1('PROXY TCP9 x\r\n'))).toThrow(
      ProxyProtocolError,
    );
    expect(() => failed.push(latin1('PROXY UNKNOWN\r\n'))).toThrow(
      /already rejected/,
    );
  });

  it('throws errors named ProxyProtocolError that are Errors', () => {
    let caught: unknown;
    try {
      new ProxyHeaderParser().push(latin1('GET / HTTP/1.1\r\n'));
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(ProxyProtocolError);
    expect(caught).toBeInstanceOf(Error);
    expect((caught as Error).name).toBe('ProxyProtocolError');
  });

  it('hands out rest as a view of the chunk, and TLVs that do not alias it', () => {
    const header = v2(0x21, 0x00, tlv(0x02, 'example.com'));
    for (const chunks of [
      [Buffer.concat([header, TRAILER])],
      splitAt(Buffer.concat([header, TRAILER]), 20),
    ]) {
      const parser = new ProxyHeaderParser();
      let result: ProxyParseResult = { state: 'incomplete' };
      for (const chunk of chunks) result = parser.push(chunk);
      if (result.state !== 'done') throw new Error('expected a header');
      const last = chunks[chunks.length - 1];
      last.fill(0x7a);
      chunks[0].fill(0x7a);
      expect(result.rest).toEqual(Buffer.alloc(TRAILER.length, 0x7a));
      expect(result.header.tlvs.get(0x02)).toEqual(latin1('example.com'));
    }
  });

  it('formats IPv6 addresses exactly as Node does', () => {
    const random = mulberry32(6);
    const samples = [
      '0000:0000:0000:0000:0000:0000:0000:0000',
      '0000:0000:0000:0000:0000:0000:0000:0001',
      '0000:0000:0000:0000:0000:0000:0000:0002',
      '0000:0000:0000:0000:0000:0000:0102:0304',
      '0000:0000:0000:0000:0000:ffff:0102:0304',
      '0000:0000:0000:0000:ffff:0000:0102:0304',
      '0001:0000:0000:0000:0000:0000:0000:0000',
      '0001:0000:0001:0000:0000:0001:0000:0000',
      '0001:0000:0000:0001:0000:0000:0000:0001',
      '0001:0000:0001:0000:0001:0000:0001:0000',
      'FE80:0000:0000:0000:ABCD:0000:0000:0001',
    ];
    for (let n = 0; n < 800; n++) {
      const groups = Array.from({ length: 8 }, () => {
        const r = random();
        if (r < 0.6) return 0;
        if (r < 0.7) return 0xffff;
        if (r < 0.75) return 1;
        return Math.floor(random() * 0x10000);
      });
      samples.push(
        groups.map((g) => g.toString(16).padStart(4, '0')).join(':'),
      );
    }
    for (const text of samples) {
      const data = v2(
        0x21,
        0x21,
        ipv6Bytes(text),
        Buffer.alloc(16),
        ports(1, 2),
      );
      const outcome = feed([data]);
      const node = new SocketAddress({ address: text, family: 'ipv6' });
      expect(outcome.kind === 'done' && outcome.header.source?.address).toBe(
        node.address,
      );
    }
  });

  describe('fuzz (seeded)', () => {
    /**
     * Parses `data` whole and in random chunks: both must agree, and only
     * ProxyProtocolError may be thrown (`feed` rethrows anything else).
     */
    function check(data: Buffer, random: () => number): Outcome {
      const whole = feed([data]);
      const cuts = new Set<number>();
      const count = Math.floor(random() * 5);
      for (let i = 0; i < count; i++) {
        cuts.add(Math.floor(random() * (data.length + 1)));
      }
      const chunks = splitAt(data, ...[...cuts].sort((a, b) => a - b));
      expect(feed(chunks)).toEqual(whole);
      if (whole.kind === 'done') {
        const { header } = whole;
        for (const end of [header.source, header.destination]) {
          if (end === undefined) continue;
          expect(isIPv4(end.address) || isIPv6(end.address)).toBe(true);
          expect(Number.isInteger(end.port)).toBe(true);
          expect(end.port >= 0 && end.port <= 65535).toBe(true);
        }
      }
      return whole;
    }

    it('random bytes: only ProxyProtocolError, whatever the split', () => {
      const random = mulberry32(1);
      const starts = [Buffer.alloc(0), latin1('PROXY '), SIGNATURE];
      const outcomes = { done: 0, incomplete: 0, error: 0 };
      for (let n = 0; n < 1500; n++) {
        const start = starts[Math.floor(random() * starts.length)];
        const noise = randomBytes(
          random,
          Math.floor(random() * 160),
          random() < 0.5,
        );
        outcomes[check(Buffer.concat([start, noise]), random).kind]++;
      }
      expect(outcomes.error).toBeGreaterThan(1000);
      expect(outcomes.incomplete).toBeGreaterThan(100);
    });

    it('mutated valid headers: only ProxyProtocolError, never a header for a broken signature', () => {
      const random = mulberry32(2);
      const outcomes = { done: 0, incomplete: 0, error: 0 };
      for (let n = 0; n < 3000; n++) {
        const { data } = VALID[Math.floor(random() * VALID.length)];
        const mutated = mutate(Buffer.concat([data, TRAILER]), random);
        const outcome = check(mutated, random);
        outcomes[outcome.kind]++;
        if (outcome.kind === 'done') {
          const signature =
            outcome.header.version === 1 ? latin1('PROXY ') : SIGNATURE;
          expect(mutated.subarray(0, signature.length)).toEqual(signature);
        }
        // A broken signature is caught within its own bytes.
        const v1Broken =
          mutated[0] === 0x50 &&
          !mutated.subarray(0, 6).equals(latin1('PROXY '));
        const v2Broken =
          mutated[0] === 0x0d && !mutated.subarray(0, 12).equals(SIGNATURE);
        if (
          (v1Broken && mutated.length >= 6) ||
          (v2Broken && mutated.length >= 12)
        ) {
          expect(outcome.kind).toBe('error');
          expect(outcome.kind === 'error' && outcome.message).toMatch(
            /^not a PROXY protocol header/,
          );
        }
      }
      expect(outcomes.done).toBeGreaterThan(300);
      expect(outcomes.error).toBeGreaterThan(1000);
    });
  });
});

/** A small seeded PRNG (mulberry32): deterministic fuzz inputs. */
function mulberry32(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Random bytes; `text`: mostly the characters a v1 line is made of. */
function randomBytes(
  random: () => number,
  length: number,
  text: boolean,
): Buffer {
  const alphabet = latin1('0123456789abcdefABCDEF.: TCP46UNKOW\r\n');
  const out = Buffer.alloc(length);
  for (let i = 0; i < length; i++) {
    out[i] = text
      ? alphabet[Math.floor(random() * alphabet.length)]
      : Math.floor(random() * 256);
  }
  return out;
}

/** One to three random edits: flip, set, insert, delete, truncate. */
function mutate(data: Buffer, random: () => number): Buffer {
  let out = Buffer.from(data);
  const edits = 1 + Math.floor(random() * 3);
  for (let e = 0; e < edits && out.length > 0; e++) {
    const at = Math.floor(random() * out.length);
    switch (Math.floor(random() * 5)) {
      case 0:
        out[at] ^= 1 << Math.floor(random() * 8);
        break;
      case 1:
        out[at] = Math.floor(random() * 256);
        break;
      case 2:
        out = Buffer.concat([
          out.subarray(0, at),
          bytes(Math.floor(random() * 256)),
          out.subarray(at),
        ]);
        break;
      case 3:
        out = Buffer.concat([out.subarray(0, at), out.subarray(at + 1)]);
        break;
      default:
        out = out.subarray(0, at);
    }
  }
  return out;
}
