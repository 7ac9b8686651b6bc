/**
 * Receives what a {@link LineFramer} finds in the bytes pushed into it.
 *
 * @publicApi
 */
export interface LineSink {
  /**
   * A complete line: `chunk[start, end)`, terminator removed. The bytes are
   * only valid during the call when `chunk` is the pushed chunk; copy or
   * decode them before returning if they must outlive it.
   */
  onLine(chunk: Buffer, start: number, end: number): void;
  /** The current line has grown past the maximum line length. */
  onOverflow(): void;
}

const LF = 0x0a;
const CR = 0x0d;

/**
 * Splits a byte stream into lines, incrementally, for any split of the stream
 * into chunks. `\r\n`, `\n` and a lone `\r` each end a line (a `\r\n` split
 * across two chunks ends one line, not two); the terminator is removed.
 *
 * Memory is bounded by `maxLineLength`: when the current line would grow past
 * it the sink is told once through `onOverflow()`, the rest of that line up to
 * its terminator is discarded, and framing carries on with the next line. A
 * sink that wants to stop framing altogether calls {@link LineFramer.halt}.
 *
 * Hand-written rather than `readline` or a Transform stream: those allocate a
 * string and a stream hop per line and have no length cap, and this sits on
 * the hot path of every line a player sends.
 *
 * @publicApi
 */
export class LineFramer {
  private pending: Buffer[] | null = null;
  private pendingLength = 0;
  private sawCR = false;
  private discarding = false;
  private halted = false;

  /**
   * @param maxLineLength The longest line, in bytes without its terminator.
   */
  constructor(readonly maxLineLength: number) {}

  /** Whether part of a line is buffered, waiting for its terminator. */
  get hasPartialLine(): boolean {
    return this.pending !== null;
  }

  /**
   * Frames one chunk, calling the sink for each line it completes.
   *
   * @param chunk The bytes, as received.
   * @param sink Receives the lines and overflows.
   */
  push(chunk: Buffer, sink: LineSink): void {
    const length = chunk.length;
    let pos = 0;
    if (length === 0) return;
    if (this.sawCR) {
      this.sawCR = false;
      if (chunk[0] === LF) pos = 1;
    }
    // Each index is searched once and reused until the scan passes it, so a
    // chunk of LF-only lines never rescans for a CR that is not there.
    let lf = chunk.indexOf(LF, pos);
    let cr = chunk.indexOf(CR, pos);
    while (pos < length && !this.halted) {
      if (lf !== -1 && lf < pos) lf = chunk.indexOf(LF, pos);
      if (cr !== -1 && cr < pos) cr = chunk.indexOf(CR, pos);
      if (lf === -1 && cr === -1) {
        this.append(chunk, pos, length, sink);
        return;
      }
      let end: number;
      let next: number;
      if (cr === -1 || (lf !== -1 && lf < cr)) {
        end = lf;
        next = lf + 1;
      } else {
        end = cr;
        if (cr + 1 < length) {
          next = chunk[cr + 1] === LF ? cr + 2 : cr + 1;
        } else {
          next = length;
          this.sawCR = true;
        }
      }
      this.complete(chunk, pos, end, sink);
      pos = next;
    }
  }

  /**
   * Ends the stream: returns the unterminated rest of the last line, if any
   * (and if it was not being discarded), and resets the framer.
   */
  flush(): Buffer | undefined {
    const rest =
      this.pending && !this.discarding
        ? Buffer.concat(this.pending, this.pendingLength)
        : undefined;
    this.reset();
    return rest;
  }

  /** Stops framing: the rest of the current chunk and later chunks are ignored. */
  halt(): void {
    this.halted = true;
    this.reset();
  }

  private reset(): void {
    this.pending = null;
    this.pendingLength = 0;
    this.sawCR = false;
    this.discarding = false;
  }

  private complete(
    chunk: Buffer,
    start: number,
    end: number,
    sink: LineSink,
  ): void {
    if (this.discarding) {
      this.discarding = false;
      return;
    }
    const total = this.pendingLength + (end - start);
    if (total > this.maxLineLength) {
      this.pending = null;
      this.pendingLength = 0;
      sink.onOverflow();
      return;
    }
    if (this.pending === null) {
      sink.onLine(chunk, start, end);
      return;
    }
    this.pending.push(chunk.subarray(start, end));
    const line = Buffer.concat(this.pending, total);
    this.pending = null;
    this.pendingLength = 0;
    sink.onLine(line, 0, line.length);
  }

  private append(
    chunk: Buffer,
    start: number,
    end: number,
    sink: LineSink,
  ): void {
    if (this.discarding) return;
    const total = this.pendingLength + (end - start);
    if (total > this.maxLineLength) {
      this.pending = null;
      this.pendingLength = 0;
      this.discarding = true;
      sink.onOverflow();
      return;
    }
    // Copied, so a few buffered bytes never pin a whole socket read buffer.
    (this.pending ??= []).push(Buffer.from(chunk.subarray(start, end)));
    this.pendingLength = total;
  }
}
