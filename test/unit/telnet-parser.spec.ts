import { describe, expect, it } from '@jest/globals';
import {
  TelnetCommand,
  TelnetOption,
  TelnetSubCode,
  describeOption,
} from '../../lib/telnet/telnet-codes.js';
import {
  TelnetParser,
  escapeIac,
  negotiation,
  subnegotiation,
  type TelnetSink,
} from '../../lib/telnet/telnet-parser.js';

const { IAC, DONT, DO, WONT, WILL, SB, SE, NOP, GA } = TelnetCommand;
const { NAWS, TTYPE, GMCP } = TelnetOption;
const VERBS = [WILL, WONT, DO, DONT];
const ECHO_OPTION = TelnetOption.ECHO;

// Events are strings, so whole streams compare with one string comparison;
// data is shown as a JSON latin1 string and consecutive data events are
// merged (data runs may be split differently, never their concatenation).
const text = (bytes: Uint8Array | number[]): string =>
  JSON.stringify(Buffer.from(bytes).toString('latin1'));
const data = (s: string): string => `data ${JSON.stringify(s)}`;
const cmd = (c: number): string => `cmd ${c}`;
const neg = (verb: number, option: number): string => `neg ${verb} ${option}`;
const sb = (option: number, payload: string): string =>
  `sb ${option} ${JSON.stringify(payload)}`;
const err = (option: number, reason: 'overflow' | 'malformed'): string =>
  `err ${option} ${reason}`;

/** Bytes from numbers and latin1 strings. */
function bytes(...parts: Array<number | string>): Buffer {
  return Buffer.concat(
    parts.map((p) =>
      typeof p === 'number' ? Buffer.from([p]) : Buffer.from(p, 'latin1'),
    ),
  );
}

/**
 * Records what a parser reports, checking each call is well-formed: problems
 * are collected rather than thrown, so a test sees them all.
 */
class Recorder implements TelnetSink {
  readonly events: string[] = [];
  readonly problems: string[] = [];
  private pendingData = '';
  dataBytes = 0;

  onTelnetData(chunk: Buffer, start: number, end: number): void {
    if (!Buffer.isBuffer(chunk)) this.problems.push('data chunk not a Buffer');
    if (!(Number.isInteger(start) && Number.isInteger(end)))
      this.problems.push(`data range not integers: ${start} ${end}`);
    if (!(start >= 0 && start < end && end <= chunk.length))
      this.problems.push(
        `bad data range [${start}, ${end}) of ${chunk.length}`,
      );
    this.pendingData += chunk.toString('latin1', start, end);
    this.dataBytes += end - start;
  }
  onTelnetCommand(command: number): void {
    if ([IAC, WILL, WONT, DO, DONT, SB, SE].includes(command as never))
      this.problems.push(`command ${command} reported as a command`);
    if (!isByte(command)) this.problems.push(`command not a byte: ${command}`);
    this.push(cmd(command));
  }
  onTelnetNegotiation(verb: number, option: number): void {
    if (!VERBS.includes(verb as never)) this.problems.push(`verb ${verb}`);
    if (!isByte(option)) this.problems.push(`option not a byte: ${option}`);
    this.push(neg(verb, option));
  }
  onTelnetSubnegotiation(option: number, payload: Buffer): void {
    if (!isByte(option) || option === IAC)
      this.problems.push(`sb option ${option}`);
    if (!Buffer.isBuffer(payload)) this.problems.push('payload not a Buffer');
    this.push(`sb ${option} ${text(payload)}`);
  }
  onTelnetSubnegotiationError(
    option: number,
    reason: 'overflow' | 'malformed',
  ): void {
    if (!(isByte(option) || option === -1))
      this.problems.push(`error option ${option}`);
    if (reason !== 'overflow' && reason !== 'malformed')
      this.problems.push(`reason ${String(reason)}`);
    this.push(err(option, reason));
  }
  /** The events, with any data not yet followed by another event. */
  result(): string[] {
    this.flushData();
    return this.events;
  }
  private push(event: string): void {
    this.flushData();
    this.events.push(event);
  }
  private flushData(): void {
    if (this.pendingData === '') return;
    this.events.push(data(this.pendingData));
    this.pendingData = '';
  }
}

const isByte = (n: number): boolean => Number.isInteger(n) && n >= 0 && n < 256;

/** Parses `stream` cut at `cuts` (ascending offsets); returns the events. */
function parse(
  stream: Buffer,
  cuts: number[] = [],
  max?: number,
): { events: string[]; problems: string[]; midSequence: boolean } {
  const parser = new TelnetParser(max);
  const sink = new Recorder();
  let from = 0;
  for (const cut of [...cuts, stream.length]) {
    // Copies, so a view into one chunk can never show another's bytes.
    parser.push(Buffer.from(stream.subarray(from, cut)), sink);
    from = cut;
  }
  return {
    events: sink.result(),
    problems: sink.problems,
    midSequence: parser.midSequence,
  };
}

/**
 * A byte-at-a-time reference parser, written for clarity and not speed,
 * following the semantics the TelnetParser documents. It also sorts every
 * input byte into what became of it, to check all bytes are accounted for.
 */
function reference(
  stream: Uint8Array,
  max = 8192,
): { events: string[]; fates: Record<string, number> } {
  const events: string[] = [];
  const fates: Record<string, number> = {};
  const fate = (name: string, count = 1): void => {
    fates[name] = (fates[name] ?? 0) + count;
  };
  let out: number[] = [];
  const emit = (event: string): void => {
    if (out.length > 0) events.push(`data ${text(out)}`);
    out = [];
    events.push(event);
  };
  type State =
    'data' | 'iac' | 'opt' | 'sbopt' | 'sb' | 'sbiac' | 'skip' | 'skipiac';
  let state = 'data' as State;
  let prevCR = false;
  let verb = 0;
  let option = -1;
  let payload: number[] = [];
  const command = (b: number): void => {
    if (b === IAC) {
      out.push(IAC);
      fate('escaped data', 2);
      state = 'data';
    } else if (VERBS.includes(b as never)) {
      verb = b;
      state = 'opt';
    } else if (b === SB) {
      state = 'sbopt';
    } else if (b === SE) {
      fate('stray IAC SE', 2);
      state = 'data';
    } else {
      emit(cmd(b));
      fate('command', 2);
      state = 'data';
    }
  };
  for (const b of stream) {
    switch (state) {
      case 'data':
        if (prevCR && b === 0) {
          fate('dropped NUL');
          prevCR = false;
          break;
        }
        prevCR = false;
        if (b === IAC) {
          state = 'iac';
        } else {
          out.push(b);
          fate('data');
          prevCR = b === 0x0d;
        }
        break;
      case 'iac':
        command(b);
        break;
      case 'opt':
        emit(neg(verb, b));
        fate('negotiation', 3);
        state = 'data';
        break;
      case 'sbopt':
        if (b === IAC) {
          emit(err(-1, 'malformed'));
          fate('broken subnegotiation', 2);
          state = 'iac';
        } else {
          option = b;
          payload = [];
          fate('subnegotiation', 3);
          state = 'sb';
        }
        break;
      case 'sb':
        if (b === IAC) {
          state = 'sbiac';
        } else if (payload.length < max) {
          payload.push(b);
          fate('subnegotiation');
        } else {
          emit(err(option, 'overflow'));
          fate('skipped subnegotiation');
          state = 'skip';
        }
        break;
      case 'sbiac':
        if (b === IAC) {
          if (payload.length < max) {
            payload.push(IAC);
            fate('subnegotiation', 2);
            state = 'sb';
          } else {
            emit(err(option, 'overflow'));
            fate('skipped subnegotiation', 2);
            state = 'skip';
          }
        } else if (b === SE) {
          emit(`sb ${option} ${text(payload)}`);
          fate('subnegotiation', 2);
          state = 'data';
        } else {
          // The IAC is counted with the command it starts.
          emit(err(option, 'malformed'));
          command(b);
        }
        break;
      case 'skip':
        if (b === IAC) state = 'skipiac';
        else fate('skipped subnegotiation');
        break;
      case 'skipiac':
        if (b === IAC) {
          fate('skipped subnegotiation', 2);
          state = 'skip';
        } else if (b === SE) {
          fate('skipped subnegotiation', 2);
          state = 'data';
        } else {
          // Ends the skipped one, silently; the IAC goes with its command.
          command(b);
        }
        break;
    }
  }
  if (out.length > 0) events.push(`data ${text(out)}`);
  // Bytes of a sequence still open at the end of the stream.
  const open = {
    data: 0,
    iac: 1,
    opt: 2,
    sbopt: 2,
    sb: 0,
    sbiac: 1,
    skip: 0,
    skipiac: 1,
  }[state];
  if (open > 0) fate('open sequence', open);
  return { events, fates };
}

// Bound once: a global lookup (Math) is slow inside Jest's VM context.
const imul = Math.imul;

/** A deterministic PRNG (mulberry32): floats in [0, 1). */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = imul(t ^ (t >>> 15), t | 1);
    t ^= t + imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Random ascending cut positions in [0, length]. */
function randomCuts(random: () => number, length: number): number[] {
  const count = Math.floor(random() * 12);
  return Array.from({ length: count }, () =>
    Math.floor(random() * (length + 1)),
  ).sort((a, b) => a - b);
}

interface Case {
  name: string;
  stream: Buffer;
  expected: string[];
  max?: number;
  /** Whether a sequence is left open at the end. */
  open?: boolean;
}

const CASES: Case[] = [
  { name: 'plain data', stream: bytes('hello'), expected: [data('hello')] },
  {
    name: 'IAC IAC in data',
    stream: bytes('a', IAC, IAC, 'b', IAC, IAC, IAC, IAC),
    expected: [data('a\xffb\xff\xff')],
  },
  {
    name: 'CR NUL becomes CR, CR LF passes',
    stream: bytes('a\r\0b\r\nc\r\0\0d\r\r\0\r'),
    expected: [data('a\rb\r\nc\r\0d\r\r\r')],
  },
  {
    name: 'a NUL is only dropped right after a CR',
    stream: bytes('\0a\0\r', IAC, NOP, '\0\r', IAC, IAC, '\0'),
    expected: [data('\0a\0\r'), cmd(NOP), data('\0\r\xff\0')],
  },
  {
    name: 'each two-byte command',
    stream: bytes(
      ...[239, 241, 242, 243, 244, 245, 246, 247, 248, 249].flatMap((c) => [
        IAC,
        c,
      ]),
    ),
    expected: [239, 241, 242, 243, 244, 245, 246, 247, 248, 249].map(cmd),
  },
  {
    name: 'unknown command bytes are commands; a stray IAC SE is dropped',
    stream: bytes('x', IAC, 0, IAC, 0x41, IAC, SE, IAC, 238, 'y'),
    expected: [data('x'), cmd(0), cmd(0x41), cmd(238), data('y')],
  },
  {
    name: 'each negotiation verb, with any option byte',
    stream: bytes(
      IAC,
      WILL,
      NAWS,
      IAC,
      WONT,
      0,
      IAC,
      DO,
      255,
      IAC,
      DONT,
      SE,
      IAC,
      WILL,
      IAC,
      'z',
    ),
    expected: [
      neg(WILL, NAWS),
      neg(WONT, 0),
      neg(DO, 255),
      neg(DONT, SE),
      neg(WILL, IAC),
      data('z'),
    ],
  },
  {
    name: 'a subnegotiation payload holding 255, 240, 0, 10 and 13',
    stream: bytes(IAC, SB, GMCP, 'a', IAC, IAC, SE, 0, 10, 13, 0, IAC, SE, 'b'),
    expected: [sb(GMCP, 'a\xff\xf0\0\n\r\0'), data('b')],
  },
  {
    name: 'NAWS with escaped 255s',
    stream: bytes(IAC, SB, NAWS, 0, IAC, IAC, IAC, IAC, 0, 10, IAC, SE),
    expected: [sb(NAWS, '\0\xff\xff\0\n')],
  },
  {
    name: 'an empty subnegotiation',
    stream: bytes(IAC, SB, TTYPE, IAC, SE),
    expected: [sb(TTYPE, '')],
  },
  {
    name: 'a nested IAC SB abandons the first and starts a second',
    stream: bytes(IAC, SB, TTYPE, 'x', IAC, SB, NAWS, 0, 80, 0, 24, IAC, SE),
    expected: [err(TTYPE, 'malformed'), sb(NAWS, '\0P\0\x18')],
  },
  {
    name: 'a command inside a subnegotiation is malformed, then handled',
    stream: bytes(IAC, SB, GMCP, 'abc', IAC, NOP, 'z', IAC, SE, 'w'),
    expected: [err(GMCP, 'malformed'), cmd(NOP), data('zw')],
  },
  {
    name: 'a negotiation inside a subnegotiation is malformed, then handled',
    stream: bytes(IAC, SB, TTYPE, 0, IAC, DO, TTYPE, 'q'),
    expected: [err(TTYPE, 'malformed'), neg(DO, TTYPE), data('q')],
  },
  {
    name: 'IAC SB IAC SE (no option byte) is malformed',
    stream: bytes(IAC, SB, IAC, SE, 'a', IAC, SB, IAC, IAC, 'b'),
    expected: [
      err(-1, 'malformed'),
      data('a'),
      err(-1, 'malformed'),
      data('\xffb'),
    ],
  },
  {
    name: 'an unterminated subnegotiation',
    stream: bytes('a', IAC, SB, GMCP, 'abc', IAC, IAC),
    expected: [data('a')],
    open: true,
  },
  {
    name: 'a payload of exactly the limit',
    stream: bytes(IAC, SB, GMCP, 'ab', IAC, IAC, 'd', IAC, SE),
    expected: [sb(GMCP, 'ab\xffd')],
    max: 4,
  },
  {
    name: 'overflow: the rest of the subnegotiation is skipped, not data',
    stream: bytes(IAC, SB, GMCP, 'abcdefg\r\0h', IAC, SE, 'ok'),
    expected: [err(GMCP, 'overflow'), data('ok')],
    max: 4,
  },
  {
    name: 'overflow: a line inside the tail never becomes data',
    stream: bytes(
      IAC,
      SB,
      GMCP,
      'Say {"t":"\r\nquit\r\n"}',
      IAC,
      SE,
      'look\r\n',
    ),
    expected: [err(GMCP, 'overflow'), data('look\r\n')],
    max: 6,
  },
  {
    name: 'overflow on an escaped 255',
    stream: bytes(IAC, SB, GMCP, 'ab', IAC, IAC, 'c', IAC, SE, IAC, NOP),
    expected: [err(GMCP, 'overflow'), cmd(NOP)],
    max: 2,
  },
  {
    name: 'overflow on an escaped 255 with a limit of 0',
    stream: bytes(IAC, SB, GMCP, IAC, IAC, IAC, SE, 'a'),
    expected: [err(GMCP, 'overflow'), data('a')],
    max: 0,
  },
  {
    name: 'overflow: IAC IAC inside the skipped part stays skipping',
    stream: bytes(
      IAC,
      SB,
      GMCP,
      'abcdef',
      IAC,
      IAC,
      SE,
      'quit\r\n',
      IAC,
      IAC,
      IAC,
      IAC,
      WILL,
      IAC,
      IAC,
      IAC,
      SE,
      'ok',
    ),
    expected: [err(GMCP, 'overflow'), data('ok')],
    max: 4,
  },
  {
    name: 'overflow: IAC WILL inside the skipped part ends it, then is a negotiation',
    stream: bytes(IAC, SB, GMCP, 'abcdef', IAC, WILL, ECHO_OPTION, 'ok\r\n'),
    expected: [err(GMCP, 'overflow'), neg(WILL, ECHO_OPTION), data('ok\r\n')],
    max: 4,
  },
  {
    name: 'overflow: a command inside the skipped part ends it, then is reported',
    stream: bytes(IAC, SB, GMCP, 'abcdef', IAC, NOP, 'ok', IAC, SE, 'z'),
    expected: [err(GMCP, 'overflow'), cmd(NOP), data('okz')],
    max: 4,
  },
  {
    name: 'overflow, then a complete subnegotiation',
    stream: bytes(IAC, SB, 1, 'abc', IAC, SB, 2, 'x', IAC, SE),
    expected: [err(1, 'overflow'), sb(2, 'x')],
    max: 2,
  },
  {
    name: 'overflow, then an overflowing subnegotiation reports again',
    stream: bytes(IAC, SB, 1, 'abc', IAC, SB, 2, 'xyz', IAC, SE, 'w'),
    expected: [err(1, 'overflow'), err(2, 'overflow'), data('w')],
    max: 2,
  },
  {
    name: 'overflow, never ended',
    stream: bytes('a', IAC, SB, GMCP, 'abcdef', IAC, IAC, 'g'),
    expected: [data('a'), err(GMCP, 'overflow')],
    max: 4,
    open: true,
  },
  {
    name: 'overflow, cut after an IAC of the skipped part',
    stream: bytes(IAC, SB, GMCP, 'abcdef', IAC),
    expected: [err(GMCP, 'overflow')],
    max: 4,
    open: true,
  },
  {
    name: 'a limit of 0 allows only empty payloads',
    stream: bytes(IAC, SB, 1, IAC, SE, IAC, SB, 2, 'x', IAC, SE, 'y'),
    expected: [sb(1, ''), err(2, 'overflow'), data('y')],
    max: 0,
  },
];

/** Every split of `stream` into two chunks, then one byte at a time. */
function mismatches(
  stream: Buffer,
  expected: string[],
  max?: number,
): string[] {
  const want = expected.join('\n');
  const found: string[] = [];
  const check = (cuts: number[]): void => {
    const got = parse(stream, cuts, max);
    const problems = got.problems.join('; ');
    if (got.events.join('\n') !== want || problems)
      found.push(
        `cuts ${cuts.join(',')}: ${got.events.join(' | ')} ${problems}`,
      );
  };
  for (let i = 0; i <= stream.length; i++) check([i]);
  check(Array.from({ length: stream.length }, (_, i) => i));
  return found;
}

describe('telnet codes', () => {
  it('has the RFC 854 command numbers', () => {
    expect(TelnetCommand).toEqual({
      IAC: 255,
      DONT: 254,
      DO: 253,
      WONT: 252,
      WILL: 251,
      SB: 250,
      GA: 249,
      EL: 248,
      EC: 247,
      AYT: 246,
      AO: 245,
      IP: 244,
      BRK: 243,
      DM: 242,
      NOP: 241,
      SE: 240,
      EOR: 239,
    });
  });

  it('has the option numbers and sub-codes', () => {
    expect(TelnetOption).toEqual({
      ECHO: 1,
      SGA: 3,
      TTYPE: 24,
      EOR: 25,
      NAWS: 31,
      LINEMODE: 34,
      CHARSET: 42,
      MSSP: 70,
      MCCP2: 86,
      GMCP: 201,
    });
    expect(TelnetSubCode).toEqual({
      IS: 0,
      SEND: 1,
      REQUEST: 1,
      ACCEPTED: 2,
      REJECTED: 3,
      MSSP_VAR: 1,
      MSSP_VAL: 2,
    });
  });

  it('names options for logs', () => {
    for (const [name, code] of Object.entries(TelnetOption))
      expect(describeOption(code)).toBe(name);
    expect(describeOption(39)).toBe('NEW-ENVIRON');
    expect(describeOption(123)).toBe('option 123');
    expect(describeOption(-1)).toBe('option -1');
  });
});

describe('TelnetParser', () => {
  it.each(CASES)(
    '$name: the same for every split and byte by byte',
    ({ stream, expected, max, open }) => {
      // The hand-written expectation and the reference agree...
      expect(reference(stream, max ?? 8192).events).toEqual(expected);
      // ...and so does the parser, however the stream is cut.
      expect(parse(stream, [], max)).toEqual({
        events: expected,
        problems: [],
        midSequence: open ?? false,
      });
      expect(mismatches(stream, expected, max)).toEqual([]);
    },
  );

  it('gives the same for all 2-split positions of a stream combining every case', () => {
    const stream = Buffer.concat(
      CASES.filter((c) => !c.open).map((c) => c.stream),
    );
    const max = 4;
    const { events } = reference(stream, max);
    expect(parse(stream, [], max).events).toEqual(events);
    // ~25,000 parses: a lean sink that only builds one string, compared with
    // what it gives for the whole stream (just checked to be right).
    const compact = (i: number, j: number): string => {
      const parser = new TelnetParser(max);
      let out = '';
      let pending = '';
      const put = (event: string): void => {
        if (pending !== '') out += `D${pending.length}:${pending}|`;
        pending = '';
        out += event;
      };
      const sink: TelnetSink = {
        onTelnetData: (c, s, e) => {
          if (!(s >= 0 && s < e && e <= c.length)) put('BAD RANGE|');
          pending += c.toString('latin1', s, e);
        },
        onTelnetCommand: (c) => put(`C${c}|`),
        onTelnetNegotiation: (v, o) => put(`N${v},${o}|`),
        onTelnetSubnegotiation: (o, p) =>
          put(`S${o},${p.length}:${p.toString('latin1')}|`),
        onTelnetSubnegotiationError: (o, r) => put(`E${o},${r}|`),
      };
      parser.push(Buffer.from(stream.subarray(0, i)), sink);
      parser.push(Buffer.from(stream.subarray(i, j)), sink);
      parser.push(Buffer.from(stream.subarray(j)), sink);
      put('');
      return out;
    };
    const want = compact(stream.length, stream.length);
    const bad: string[] = [];
    for (let i = 0; i <= stream.length; i++)
      for (let j = i; j <= stream.length; j++)
        if (compact(i, j) !== want) bad.push(`${i},${j}`);
    expect(bad).toEqual([]);
  });

  it('hands data runs out as views of the pushed chunk, not copies', () => {
    const chunk = bytes('abc', IAC, IAC, 'de\r\0f', IAC, GA, 'g');
    const seen: Array<[Buffer, number, number]> = [];
    const sink = new Recorder();
    sink.onTelnetData = (c, s, e) => void seen.push([c, s, e]);
    new TelnetParser().push(chunk, sink);
    expect(seen.every(([c]) => c === chunk)).toBe(true);
    expect(
      Buffer.concat(seen.map(([c, s, e]) => c.subarray(s, e))).toString(
        'latin1',
      ),
    ).toBe('abc\xffde\rfg');
  });

  it('hands out payloads the sink may keep', () => {
    const parser = new TelnetParser();
    const payloads: Buffer[] = [];
    const sink = new Recorder();
    sink.onTelnetSubnegotiation = (_option, payload) =>
      void payloads.push(payload);
    const chunk = bytes(IAC, SB, TTYPE, 0, 'xterm', IAC, SE, IAC, SB, TTYPE);
    parser.push(chunk, sink);
    chunk.fill(0x7a);
    parser.push(bytes(0, 'vt100', IAC, SE), sink);
    expect(payloads.map((p) => p.toString('latin1'))).toEqual([
      '\0xterm',
      '\0vt100',
    ]);
  });

  it('tells when a sequence is incomplete', () => {
    const parser = new TelnetParser();
    const sink = new Recorder();
    const states = [
      bytes('a\r'),
      bytes(IAC),
      bytes(WILL),
      bytes(NAWS, IAC),
      bytes(SB),
      bytes(TTYPE),
      bytes('x'),
      bytes(IAC),
      bytes(SE),
    ].map((chunk) => {
      parser.push(chunk, sink);
      return parser.midSequence;
    });
    expect(states).toEqual([
      false,
      true,
      true,
      true,
      true,
      true,
      true,
      true,
      false,
    ]);
    expect(sink.result()).toEqual([
      data('a\r'),
      neg(WILL, NAWS),
      sb(TTYPE, 'x'),
    ]);
  });

  it('ignores empty chunks, even mid-sequence', () => {
    expect(
      parse(bytes('a\r', IAC, WILL, 1), [2, 2, 3, 3, 4, 4]).events,
    ).toEqual([data('a\r'), neg(WILL, 1)]);
  });

  it('is left consistent when a sink callback throws', () => {
    const parser = new TelnetParser();
    const sink = new Recorder();
    const record = sink.onTelnetCommand.bind(sink);
    sink.onTelnetCommand = (c) => {
      record(c);
      if (c === NOP) throw new Error('sink failed');
    };
    // The rest of the chunk after the throwing byte is not parsed...
    expect(() =>
      parser.push(bytes('a', IAC, NOP, 'lost', IAC, DO), sink),
    ).toThrow('sink failed');
    expect(parser.midSequence).toBe(false);
    // ...and the next chunk is parsed from the byte after it.
    parser.push(bytes(IAC, DO, NAWS, 'b'), sink);
    expect(sink.result()).toEqual([
      data('a'),
      cmd(NOP),
      neg(DO, NAWS),
      data('b'),
    ]);

    // A throwing 'malformed' report skips the command that follows it, but
    // the state already is the one after the byte: here an option is awaited.
    const parser2 = new TelnetParser();
    const sink2 = new Recorder();
    sink2.onTelnetSubnegotiationError = () => {
      throw new Error('no');
    };
    expect(() =>
      parser2.push(bytes(IAC, SB, TTYPE, 'x', IAC, WILL), sink2),
    ).toThrow('no');
    expect(parser2.midSequence).toBe(true);
    parser2.push(bytes(ECHO_OPTION, 'y\r'), sink2);
    expect(() => parser2.push(bytes('\0z'), sink2)).not.toThrow();
    expect(sink2.result()).toEqual([neg(WILL, ECHO_OPTION), data('y\rz')]);

    // A throwing data callback at a chunk-ending CR still drops the next NUL.
    const parser3 = new TelnetParser();
    const sink3 = new Recorder();
    let fail = true;
    const recordData = sink3.onTelnetData.bind(sink3);
    sink3.onTelnetData = (c, s, e) => {
      recordData(c, s, e);
      if (fail) {
        fail = false;
        throw new Error('once');
      }
    };
    expect(() => parser3.push(bytes('ab\r'), sink3)).toThrow('once');
    parser3.push(bytes('\0c'), sink3);
    expect(sink3.result()).toEqual([data('ab\rc')]);

    // A throwing 'overflow' report leaves the parser skipping, right after
    // the first byte that did not fit.
    const parser4 = new TelnetParser(2);
    const sink4 = new Recorder();
    const recordError = sink4.onTelnetSubnegotiationError.bind(sink4);
    sink4.onTelnetSubnegotiationError = (o, r) => {
      recordError(o, r);
      throw new Error('full');
    };
    expect(() =>
      parser4.push(bytes(IAC, SB, GMCP, 'abc', IAC, SE, 'lost'), sink4),
    ).toThrow('full');
    expect(parser4.midSequence).toBe(true);
    parser4.push(bytes('d', IAC, IAC, SE, 'e', IAC, SE, 'f'), sink4);
    expect(sink4.result()).toEqual([err(GMCP, 'overflow'), data('f')]);
  });

  it('keeps memory bounded through a never-terminated 1 MiB subnegotiation, reporting one overflow and no data', () => {
    const parser = new TelnetParser(8192);
    const sink = new Recorder();
    // Every 0xFF in it is escaped, some pairs split across pushes: it stays
    // one subnegotiation.
    parser.push(bytes(IAC, SB, GMCP, IAC), sink);
    const block = Buffer.alloc(64 * 1024, 0x61);
    block.fill(IAC, 1000, 1100);
    block[0] = IAC;
    block[block.length - 1] = IAC;
    // Counts what the parser allocates for itself (its collecting buffer).
    const allocUnsafeSlow = Buffer.allocUnsafeSlow;
    let allocated = 0;
    let allocatedAfterOverflow = 0;
    let overflowed = false;
    Buffer.allocUnsafeSlow = (size: number): Buffer<ArrayBuffer> => {
      allocated += size;
      if (overflowed) allocatedAfterOverflow += size;
      return allocUnsafeSlow(size);
    };
    try {
      for (let i = 0; i < 16; i++) {
        parser.push(block, sink);
        if (i === 0) {
          // Reported as soon as the limit is passed, nothing more buffered.
          expect(sink.events).toEqual([err(GMCP, 'overflow')]);
          overflowed = true;
        }
      }
    } finally {
      Buffer.allocUnsafeSlow = allocUnsafeSlow;
    }
    expect(allocated).toBeGreaterThan(0);
    expect(allocated).toBeLessThan(2 * 8192);
    expect(allocatedAfterOverflow).toBe(0);
    expect(sink.dataBytes).toBe(0);
    expect(sink.result()).toEqual([err(GMCP, 'overflow')]);
    expect(parser.midSequence).toBe(true);
    // The 0xFF ending the last block is escaped: still skipping...
    parser.push(bytes(IAC), sink);
    expect(sink.result()).toEqual([err(GMCP, 'overflow')]);
    expect(parser.midSequence).toBe(true);
    // ...until IAC SE ends it, and the connection carries on.
    parser.push(
      bytes(IAC, SE, 'ok', IAC, SB, NAWS, 0, 80, 0, 24, IAC, SE),
      sink,
    );
    expect(sink.result()).toEqual([
      err(GMCP, 'overflow'),
      data('ok'),
      sb(NAWS, '\0P\0\x18'),
    ]);
    expect(parser.midSequence).toBe(false);
  });

  it('overflows on exactly the first byte past the limit, and skips the rest, however it trickles in', () => {
    const parser = new TelnetParser(100);
    const sink = new Recorder();
    parser.push(bytes(IAC, SB, GMCP), sink);
    for (let i = 0; i < 100; i++) parser.push(bytes('a'), sink);
    expect(sink.events).toEqual([]);
    expect(parser.midSequence).toBe(true);
    parser.push(bytes('b'), sink);
    expect(sink.result()).toEqual([err(GMCP, 'overflow')]);
    const tail = bytes('c\r\nquit\r\n', IAC, IAC, SE, 'd', IAC, SE, 'e');
    for (const byte of tail) parser.push(Buffer.of(byte), sink);
    expect(sink.result()).toEqual([err(GMCP, 'overflow'), data('e')]);
    expect(parser.midSequence).toBe(false);
  });

  it('rejects an invalid limit', () => {
    expect(() => new TelnetParser(-1)).toThrow(RangeError);
    expect(() => new TelnetParser(1.5)).toThrow(RangeError);
    expect(new TelnetParser().maxSubnegotiationLength).toBe(8192);
  });

  it('parses a large chunk of many sequences completely', () => {
    const unit = bytes('ab', IAC, NOP, IAC, IAC, 'c\r\0', IAC, WILL, 1);
    const stream = Buffer.concat(Array.from({ length: 20_000 }, () => unit));
    const parser = new TelnetParser();
    let commands = 0;
    let negotiations = 0;
    let dataBytes = 0;
    parser.push(stream, {
      onTelnetData: (_c, s, e) => void (dataBytes += e - s),
      onTelnetCommand: () => void commands++,
      onTelnetNegotiation: () => void negotiations++,
      onTelnetSubnegotiation: () => undefined,
      onTelnetSubnegotiationError: () => undefined,
    });
    expect([commands, negotiations, dataBytes]).toEqual([
      20_000, 20_000, 100_000,
    ]);
  });

  it('never throws on random bytes, and matches the reference for random splits', () => {
    const random = prng(0x7e1e7);
    // Bytes that matter to the parser come often, so every state is reached.
    const special = [IAC, IAC, IAC, SB, SE, WILL, DO, NOP, GA, 0, 13, 10];
    for (let n = 0; n < 200; n++) {
      const length = Math.floor(random() * 4096);
      const values = new Array<number>(length);
      for (let i = 0; i < length; i++)
        values[i] =
          random() < 0.3
            ? special[(random() * special.length) | 0]
            : (random() * 256) | 0;
      const stream = Buffer.from(values);
      const max = [0, 3, 16, 8192][n % 4];
      const ref = reference(stream, max);
      const accounted = Object.values(ref.fates).reduce((a, b) => a + b, 0);
      expect(accounted).toBe(length);
      const cuts = randomCuts(random, length);
      // A throw fails the test.
      const got = parse(stream, cuts, max);
      expect(got.problems).toEqual([]);
      if (got.events.join('\n') !== ref.events.join('\n')) {
        // Only build the (large) diff when there is one.
        expect({ n, cuts, events: got.events }).toEqual({
          n,
          cuts,
          events: ref.events,
        });
      }
    }
  });

  it('reads back what escapeIac, negotiation and subnegotiation build, for random streams', () => {
    const random = prng(42);
    const byte = (): number => Math.floor(random() * 256);
    for (let n = 0; n < 200; n++) {
      const parts: Uint8Array[] = [];
      const expected: string[] = [];
      let pending = '';
      const flush = (): void => {
        if (pending) expected.push(data(pending));
        pending = '';
      };
      for (let t = Math.floor(random() * 30); t > 0; t--) {
        const kind = Math.floor(random() * 4);
        if (kind === 0) {
          // Data with no CR (CR NUL folding makes CR ambiguous to rebuild).
          const raw = Uint8Array.from(
            { length: Math.floor(random() * 40) },
            () => {
              const b = random() < 0.2 ? IAC : byte();
              return b === 13 ? 14 : b;
            },
          );
          parts.push(escapeIac(raw));
          pending += Buffer.from(raw).toString('latin1');
        } else if (kind === 1) {
          const verb = VERBS[Math.floor(random() * 4)];
          const option = byte();
          parts.push(negotiation(verb, option));
          flush();
          expected.push(neg(verb, option));
        } else if (kind === 2) {
          const option = Math.floor(random() * 255);
          const payload = Buffer.from(
            Array.from({ length: Math.floor(random() * 40) }, () =>
              random() < 0.2 ? IAC : byte(),
            ),
          );
          parts.push(subnegotiation(option, payload));
          flush();
          expected.push(`sb ${option} ${text(payload)}`);
        } else {
          const command = [GA, NOP, 239, 246, 244][Math.floor(random() * 5)];
          parts.push(Uint8Array.of(IAC, command));
          flush();
          expected.push(cmd(command));
        }
      }
      flush();
      const stream = Buffer.concat(parts);
      const got = parse(stream, randomCuts(random, stream.length));
      expect(got).toEqual({
        events: expected,
        problems: [],
        midSequence: false,
      });
    }
  });
});

describe('escapeIac', () => {
  it('returns its argument itself when there is no 0xFF', () => {
    const buffer = Buffer.from('plain');
    expect(escapeIac(buffer)).toBe(buffer);
    const array = Uint8Array.of(1, 2, 3);
    expect(escapeIac(array)).toBe(array);
    const empty = Buffer.alloc(0);
    expect(escapeIac(empty)).toBe(empty);
  });

  it('doubles every 0xFF, keeping the type', () => {
    const escaped = escapeIac(bytes(IAC, 'a', IAC, IAC, 'b', IAC));
    expect(Buffer.isBuffer(escaped)).toBe(true);
    expect([...escaped]).toEqual([
      IAC,
      IAC,
      97,
      IAC,
      IAC,
      IAC,
      IAC,
      98,
      IAC,
      IAC,
    ]);
    const array = escapeIac(Uint8Array.of(IAC, 0));
    expect(Buffer.isBuffer(array)).toBe(false);
    expect(array).toBeInstanceOf(Uint8Array);
    expect([...array]).toEqual([IAC, IAC, 0]);
  });

  it('round-trips every byte value through the parser', () => {
    // Without CR, whose NUL-folding is tested above.
    const all = Array.from({ length: 256 }, (_, i) => i).filter(
      (b) => b !== 13,
    );
    expect(parse(Buffer.from(escapeIac(Buffer.from(all)))).events).toEqual([
      `data ${text(all)}`,
    ]);
  });
});

describe('negotiation and subnegotiation', () => {
  it('build the wire form', () => {
    expect([...negotiation(WILL, GMCP)]).toEqual([IAC, WILL, GMCP]);
    expect([...negotiation(DONT, 255)]).toEqual([IAC, DONT, 255]);
    expect([...subnegotiation(NAWS, Uint8Array.of(0, 255, 1, 0))]).toEqual([
      IAC,
      SB,
      NAWS,
      0,
      IAC,
      IAC,
      1,
      0,
      IAC,
      SE,
    ]);
    expect([...subnegotiation(TTYPE, new Uint8Array(0))]).toEqual([
      IAC,
      SB,
      TTYPE,
      IAC,
      SE,
    ]);
  });

  it('encode a string payload as UTF-8, which parses back', () => {
    const message = 'Core.Hello {"client":"Mudlet","é":"ÿ"}';
    const built = subnegotiation(GMCP, message);
    let payload: Buffer | undefined;
    const sink = new Recorder();
    sink.onTelnetSubnegotiation = (option, p) => {
      expect(option).toBe(GMCP);
      payload = p;
    };
    new TelnetParser().push(built, sink);
    expect(payload?.toString('utf8')).toBe(message);
  });

  it('reject what is not a verb or an option byte', () => {
    expect(() => negotiation(SB, 1)).toThrow(RangeError);
    expect(() => negotiation(WILL, 256)).toThrow(RangeError);
    expect(() => negotiation(WILL, -1)).toThrow(RangeError);
    expect(() => subnegotiation(255, '')).toThrow(RangeError);
    expect(() => subnegotiation(1.5, '')).toThrow(RangeError);
  });
});
