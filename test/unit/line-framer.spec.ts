import { describe, expect, it } from '@jest/globals';
import { LineFramer, type LineSink } from '../../lib/framing/line-framer.js';

/** Collects what a framer reports; `lines` holds copies of each line. */
class Collector implements LineSink {
  readonly events: string[] = [];
  onLine(chunk: Buffer, start: number, end: number): void {
    this.events.push(chunk.toString('latin1', start, end));
  }
  onOverflow(): void {
    this.events.push('<overflow>');
  }
}

function frame(
  chunks: Array<string | Buffer>,
  max = 1024,
): { events: string[]; rest?: string } {
  const framer = new LineFramer(max);
  const sink = new Collector();
  for (const chunk of chunks)
    framer.push(Buffer.from(chunk as string, 'latin1'), sink);
  return { events: sink.events, rest: framer.flush()?.toString('latin1') };
}

describe('LineFramer', () => {
  it('ends lines at CRLF, LF and a lone CR, removing the terminator', () => {
    expect(frame(['a\r\nb\nc\rd\r\n'])).toEqual({
      events: ['a', 'b', 'c', 'd'],
      rest: undefined,
    });
  });

  it('keeps empty lines and reports an unterminated tail on flush', () => {
    expect(frame(['\n\r\n\rx\n', 'tail'])).toEqual({
      events: ['', '', '', 'x'],
      rest: 'tail',
    });
  });

  it('frames the same for every split of a stream into two and three chunks', () => {
    const stream = 'look\r\nsay hi\nnorth\rsouth\r\n\r\n\nlast\r\r\nend';
    const whole = frame([stream]);
    expect(whole).toEqual({
      events: ['look', 'say hi', 'north', 'south', '', '', 'last', ''],
      rest: 'end',
    });
    for (let i = 0; i <= stream.length; i++) {
      expect(frame([stream.slice(0, i), stream.slice(i)])).toEqual(whole);
      for (let j = i; j <= stream.length; j++) {
        expect(
          frame([stream.slice(0, i), stream.slice(i, j), stream.slice(j)]),
        ).toEqual(whole);
      }
    }
  });

  it('frames the same when the stream arrives one byte at a time', () => {
    const stream = 'a\r\nb\r\rc\n\r\nd';
    expect(frame([...stream])).toEqual(frame([stream]));
  });

  it('treats a CR at the end of a chunk and an LF at the start of the next as one terminator', () => {
    expect(frame(['a\r', '\nb\r', 'c\n'])).toEqual({
      events: ['a', 'b', 'c'],
      rest: undefined,
    });
  });

  it('reports each over-long line once, discards it up to its terminator, and goes on', () => {
    expect(frame(['12345\nabc', 'defgh', 'ij\nok\n'], 4)).toEqual({
      events: ['<overflow>', '<overflow>', 'ok'],
      rest: undefined,
    });
    expect(frame(['abcd\nabcde\nab', 'cde\nabc', 'd\n'], 4)).toEqual({
      events: ['abcd', '<overflow>', '<overflow>', 'abcd'],
      rest: undefined,
    });
  });

  it('never buffers more than the limit while a line has no terminator', () => {
    const framer = new LineFramer(1000);
    const sink = new Collector();
    const chunk = Buffer.alloc(600, 0x61);
    for (let i = 0; i < 100; i++) framer.push(chunk, sink);
    expect(sink.events).toEqual(['<overflow>']);
    expect(framer.hasPartialLine).toBe(false);
    expect(framer.flush()).toBeUndefined();
  });

  it('does not rescan for CR on LF-only input (linear in the input)', () => {
    const framer = new LineFramer(64);
    let count = 0;
    const sink: LineSink = {
      onLine: () => void count++,
      onOverflow: () => undefined,
    };
    framer.push(Buffer.from('x\n'.repeat(200_000)), sink);
    expect(count).toBe(200_000);
  });

  it('stops framing after halt()', () => {
    const framer = new LineFramer(64);
    const events: string[] = [];
    const sink: LineSink = {
      onLine: (c, s, e) => {
        events.push(c.toString('latin1', s, e));
        framer.halt();
      },
      onOverflow: () => undefined,
    };
    framer.push(Buffer.from('one\ntwo\nthr'), sink);
    framer.push(Buffer.from('ee\n'), sink);
    expect(events).toEqual(['one']);
    expect(framer.flush()).toBeUndefined();
  });

  it('hands out a line that does not alias later input', () => {
    const framer = new LineFramer(64);
    const lines: Buffer[] = [];
    const sink: LineSink = {
      onLine: (c, s, e) => void lines.push(Buffer.from(c.subarray(s, e))),
      onOverflow: () => undefined,
    };
    const chunk = Buffer.from('ab');
    framer.push(chunk, sink);
    chunk.fill(0x7a);
    framer.push(Buffer.from('c\n'), sink);
    expect(lines.map(String)).toEqual(['abc']);
  });
});
