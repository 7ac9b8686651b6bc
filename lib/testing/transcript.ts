import { EarwaxExpectationError } from './earwax-expectation.error.js';

/**
 * What a line is tested against: a string matches a line equal to it, a
 * RegExp is tested against each line, a function decides.
 *
 * @publicApi
 */
export type LinePattern = string | RegExp | ((line: string) => boolean);

/**
 * What the transcript needs to know about its client for a message.
 *
 * @internal
 */
export interface TranscriptOwner {
  /** `client 127.0.0.2:40112 → 127.0.0.1:4000`. */
  readonly label: string;
  /** Whether the connection can still bring lines. */
  readonly isOpen: boolean;
  /** `the connection is still open`, `the server closed the connection`... */
  describeState(): string;
  /** The text after the last complete line. */
  readonly partial: string;
  /** Extra facts for a failure message (dropped lines, telnet state). */
  notes(): string[];
}

/**
 * What one check of a wait found: its value, a reason it can never come, or
 * nothing yet.
 *
 * @internal
 */
export type Attempt<T> = { value: T } | { fail: string } | undefined;

/** A wait in progress, checked each time the transcript changes. */
interface Wait {
  /** Returns whether the wait is over (resolved or rejected). */
  settle(): boolean;
}

/** How many received lines a failure message lists at most. */
const LISTED_LINES = 30;
/** How many characters of one line a failure message shows. */
const LISTED_CHARS = 200;

/**
 * The lines one test client received, the read cursor that `expectLine()`
 * and the `read*()` methods move, and every wait on them: each bounded by a
 * timer, each failing with a message that lists what was received. Nothing
 * polls: the owner calls {@link wake} whenever something arrived or the
 * connection changed.
 *
 * Hand-written: it is a few lines over the client's own socket events, and
 * the wait helpers on npm (`p-wait-for`, `wait-for-expect`) poll on a timer
 * and know nothing of lines, cursors or who closed the connection.
 *
 * @internal
 */
export class Transcript {
  /** Every complete line, in order. */
  readonly lines: string[] = [];
  /** Lines before this index have been read. */
  cursor = 0;
  private waits: Wait[] = [];

  constructor(private readonly owner: TranscriptOwner) {}

  /** The lines received and not yet read. */
  get unread(): string[] {
    return this.lines.slice(this.cursor);
  }

  /** Re-checks every wait; called after each change. */
  wake(): void {
    if (this.waits.length === 0) return;
    // In the order they were made, so two reads waiting at once get lines
    // in that order.
    for (const wait of [...this.waits]) {
      if (wait.settle()) this.waits = this.waits.filter((w) => w !== wait);
    }
  }

  /**
   * Reads up to and including the first unread line that `matches`:
   * resolves with the lines read, the match last.
   */
  readUntil(
    matches: (line: string, index: number) => boolean,
    what: string,
    timeout: number,
  ): Promise<string[]> {
    let scanned = this.cursor;
    return this.wait(what, timeout, true, () => {
      const lines = this.lines;
      for (let i = Math.max(scanned, this.cursor); i < lines.length; i++) {
        if (matches(lines[i], i)) {
          const read = lines.slice(this.cursor, i + 1);
          this.cursor = i + 1;
          return { value: read };
        }
      }
      scanned = lines.length;
      return undefined;
    });
  }

  /** Reads the next `count` unread lines, waiting for them. */
  readLines(count: number, timeout: number): Promise<string[]> {
    if (!Number.isInteger(count) || count < 0) {
      return Promise.reject(
        new TypeError(
          `${this.owner.label}: readLines() needs a whole number of lines, got ${String(count)}`,
        ),
      );
    }
    const what = count === 1 ? 'a line' : `${count} more lines`;
    return this.wait(what, timeout, true, () => {
      if (this.lines.length - this.cursor < count) return undefined;
      const read = this.lines.slice(this.cursor, this.cursor + count);
      this.cursor += count;
      return { value: read };
    });
  }

  /** Waits until `condition()` holds; the connection closing does not end it. */
  waitFor(
    condition: () => boolean,
    what: string,
    timeout: number,
  ): Promise<void> {
    return this.wait<void>(
      what,
      timeout,
      false,
      () => (condition() ? { value: undefined } : undefined),
      'it did not happen',
    );
  }

  /**
   * Waits for `attempt` to give a value (or a reason to fail), for at most
   * `timeout` ms; with `failOnClose`, fails as soon as the connection can
   * bring nothing more.
   *
   * @param what What is expected, for the message (`a line matching /x/`).
   * @param missing Why it failed when time ran out (`none came`).
   */
  wait<T>(
    what: string,
    timeout: number,
    failOnClose: boolean,
    attempt: () => Attempt<T>,
    missing = 'none came',
  ): Promise<T> {
    // Created here so that a failure's stack shows the test line that waited.
    const origin = new Error();
    if (!Number.isFinite(timeout) || timeout < 0) {
      return Promise.reject(
        new TypeError(
          `${this.owner.label}: a timeout is a number of milliseconds (0 or more), got ${String(timeout)}`,
        ),
      );
    }
    const closedFirst = () => `${this.owner.describeState()} first`;
    const now = attempt();
    if (now && 'value' in now) return Promise.resolve(now.value);
    if (now)
      return Promise.reject(this.failure(what, timeout, now.fail, origin));
    if (failOnClose && !this.owner.isOpen) {
      return Promise.reject(this.failure(what, timeout, closedFirst(), origin));
    }
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waits = this.waits.filter((w) => w !== wait);
        reject(this.failure(what, timeout, missing, origin));
      }, timeout);
      const wait: Wait = {
        settle: () => {
          const got = attempt();
          let fail: string | undefined;
          if (got && 'value' in got) {
            clearTimeout(timer);
            resolve(got.value);
            return true;
          }
          if (got) fail = got.fail;
          else if (failOnClose && !this.owner.isOpen) fail = closedFirst();
          if (fail === undefined) return false;
          clearTimeout(timer);
          reject(this.failure(what, timeout, fail, origin));
          return true;
        },
      };
      this.waits.push(wait);
    });
  }

  /**
   * The error of a failed wait.
   *
   * @param reason Why, after "but" (`none came`, `the server closed the
   *   connection first`).
   */
  failure(
    what: string,
    timeout: number,
    reason: string,
    origin?: Error,
  ): EarwaxExpectationError {
    const owner = this.owner;
    const lines = [
      `${owner.label}: expected ${what} within ${timeout} ms, but ${reason}.`,
      `Connection: ${owner.describeState()}.`,
      ...this.describeLines(),
      ...owner.notes(),
    ];
    return new EarwaxExpectationError(lines.join('\n'), origin);
  }

  /** The received lines, most recent last, read ones marked. */
  describeLines(): string[] {
    const { lines, cursor } = this;
    const partial = this.owner.partial;
    const out: string[] = [];
    if (lines.length === 0) {
      out.push('Lines received: none.');
    } else {
      const read =
        cursor === 0
          ? 'none read yet'
          : cursor === lines.length
            ? 'all read'
            : `the first ${cursor} read`;
      out.push(
        `Lines received: ${lines.length} (${read}; read ones marked "·"; most recent last):`,
      );
      const first = Math.max(0, lines.length - LISTED_LINES);
      if (first > 0) out.push(`  … ${first} earlier lines not shown`);
      const width = String(lines.length).length;
      for (let i = first; i < lines.length; i++) {
        const mark = i < cursor ? '·' : ' ';
        out.push(
          `  ${mark} ${String(i + 1).padStart(width)}: ${quote(lines[i])}`,
        );
      }
    }
    out.push(
      partial.length > 0
        ? `Unterminated line (no line end yet): ${quote(partial)}`
        : 'Unterminated line: none.',
    );
    return out;
  }
}

/** A line as a JSON string (control characters and spaces visible), cut short. */
function quote(line: string): string {
  if (line.length <= LISTED_CHARS) return JSON.stringify(line);
  return `${JSON.stringify(line.slice(0, LISTED_CHARS))} … (${line.length - LISTED_CHARS} more characters)`;
}

/** How a pattern reads in a message. */
export function describePattern(pattern: LinePattern): string {
  if (typeof pattern === 'string') return `the line ${JSON.stringify(pattern)}`;
  if (pattern instanceof RegExp) return `a line matching ${String(pattern)}`;
  return `a line accepted by ${pattern.name || 'the given function'}`;
}

/** A pattern as a test on one line. */
export function lineMatcher(pattern: LinePattern): (line: string) => boolean {
  if (typeof pattern === 'string') return (line) => line === pattern;
  if (pattern instanceof RegExp) {
    return (line) => {
      // A global or sticky RegExp keeps state between tests: start afresh.
      pattern.lastIndex = 0;
      return pattern.test(line);
    };
  }
  if (typeof pattern === 'function') return pattern;
  throw new TypeError(
    `A line pattern is a string, a RegExp or a function, got ${typeof pattern}`,
  );
}
