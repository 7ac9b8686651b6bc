import {
  ConsoleLogger,
  type LoggerService,
  type LogLevel,
} from '@nestjs/common';
import { EarwaxExpectationError } from './earwax-expectation.error.js';

/**
 * One log call recorded by an {@link EarwaxTestLogger}.
 *
 * @publicApi
 */
export interface EarwaxTestLogEntry {
  readonly level: LogLevel;
  /** The message; an Error logged as such reads `Name: message`. */
  readonly message: string;
  /** The logger's context (`EarwaxTransport`, `Connection 127.0.0.1:40112#3`). */
  readonly context?: string;
}

/** Options of an {@link EarwaxTestLogger}. @publicApi */
export interface EarwaxTestLoggerOptions {
  /**
   * Levels also printed to the console.
   * @default ['error', 'fatal']
   */
  print?: readonly LogLevel[];
  /**
   * Entries kept; past it the oldest go, so a flood test does not fill
   * memory.
   * @default 10000
   */
  maxEntries?: number;
  /**
   * Default timeout of {@link EarwaxTestLogger.waitFor}, in milliseconds.
   * @default 5000
   */
  timeout?: number;
}

/** How many entries a failure message lists at most. */
const LISTED_ENTRIES = 30;

/**
 * A Nest logger for tests: it records every entry, so a test can assert on
 * what the application logged or wait for a log line instead of sleeping,
 * and prints only the levels it is told to (errors, by default, as
 * `@nestjs/testing` does). `EarwaxTesting.createServer()` installs one as
 * `server.logs`.
 *
 * @example
 * ```ts
 * await server.logs.waitFor(/failed on on_data/, { level: 'warn' });
 * expect(server.logs.find('Connection refused')).toHaveLength(1);
 * ```
 *
 * @publicApi
 */
export class EarwaxTestLogger implements LoggerService {
  private readonly list: EarwaxTestLogEntry[] = [];
  private waits: Array<() => boolean> = [];
  private readonly printer = new ConsoleLogger();
  private readonly print: ReadonlySet<LogLevel>;
  private readonly maxEntries: number;
  private readonly timeout: number;

  constructor(options: EarwaxTestLoggerOptions = {}) {
    this.print = new Set(options.print ?? ['error', 'fatal']);
    this.maxEntries = options.maxEntries ?? 10_000;
    this.timeout = options.timeout ?? 5000;
  }

  /** The entries recorded, oldest first. */
  get entries(): readonly EarwaxTestLogEntry[] {
    return this.list;
  }

  log(message: unknown, ...rest: unknown[]): void {
    this.add('log', message, rest);
  }
  error(message: unknown, ...rest: unknown[]): void {
    this.add('error', message, rest);
  }
  warn(message: unknown, ...rest: unknown[]): void {
    this.add('warn', message, rest);
  }
  debug(message: unknown, ...rest: unknown[]): void {
    this.add('debug', message, rest);
  }
  verbose(message: unknown, ...rest: unknown[]): void {
    this.add('verbose', message, rest);
  }
  fatal(message: unknown, ...rest: unknown[]): void {
    this.add('fatal', message, rest);
  }

  /**
   * The entries whose message contains `pattern` (a string) or matches it
   * (a RegExp), at `level` if given.
   */
  find(pattern: string | RegExp, level?: LogLevel): EarwaxTestLogEntry[] {
    const matches = entryMatcher(pattern, level);
    return this.list.filter(matches);
  }

  /**
   * Resolves with the first entry, logged before or after the call, whose
   * message contains or matches `pattern`.
   *
   * @throws EarwaxExpectationError (rejects) when none is logged within the
   *   timeout; the message lists the latest entries.
   */
  waitFor(
    pattern: string | RegExp,
    options: { level?: LogLevel; timeout?: number } = {},
  ): Promise<EarwaxTestLogEntry> {
    const origin = new Error();
    const timeout = options.timeout ?? this.timeout;
    const matches = entryMatcher(pattern, options.level);
    const found = this.list.find(matches);
    if (found) return Promise.resolve(found);
    let checked = this.list.length;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waits = this.waits.filter((w) => w !== check);
        reject(this.failure(pattern, options.level, timeout, origin));
      }, timeout);
      const check = () => {
        // Only new entries: each is tested once. The oldest may have gone,
        // so the index is clamped.
        const list = this.list;
        for (let i = Math.min(checked, list.length); i < list.length; i++) {
          if (matches(list[i])) {
            clearTimeout(timer);
            resolve(list[i]);
            return true;
          }
        }
        checked = list.length;
        return false;
      };
      this.waits.push(check);
    });
  }

  private add(level: LogLevel, message: unknown, rest: unknown[]): void {
    // Nest passes the context last, after an error's stack if any.
    const last = rest[rest.length - 1];
    const context = typeof last === 'string' ? last : undefined;
    const text =
      message instanceof Error
        ? `${message.name}: ${message.message}`
        : typeof message === 'string'
          ? message
          : safeJson(message);
    if (this.list.length >= this.maxEntries) this.list.shift();
    this.list.push({ level, message: text, context });
    if (this.print.has(level)) this.printer[level](message, ...rest);
    if (this.waits.length > 0) {
      this.waits = this.waits.filter((check) => !check());
    }
  }

  private failure(
    pattern: string | RegExp,
    level: LogLevel | undefined,
    timeout: number,
    origin: Error,
  ): EarwaxExpectationError {
    const what =
      typeof pattern === 'string'
        ? `a log entry containing ${JSON.stringify(pattern)}`
        : `a log entry matching ${String(pattern)}`;
    const at = level === undefined ? '' : ` at level ${level}`;
    const list = this.list;
    const first = Math.max(0, list.length - LISTED_ENTRIES);
    const lines = [
      `EarwaxTestLogger: expected ${what}${at} within ${timeout} ms, but none was logged.`,
      list.length === 0
        ? 'Entries: none.'
        : `Entries: ${list.length} (most recent last):`,
      ...(first > 0 ? [`  … ${first} earlier entries not shown`] : []),
      ...list
        .slice(first)
        .map(
          (e) =>
            `  [${e.level}]${e.context ? ` ${e.context}:` : ''} ${e.message}`,
        ),
    ];
    return new EarwaxExpectationError(lines.join('\n'), origin);
  }
}

function entryMatcher(
  pattern: string | RegExp,
  level: LogLevel | undefined,
): (entry: EarwaxTestLogEntry) => boolean {
  const test =
    typeof pattern === 'string'
      ? (message: string) => message.includes(pattern)
      : (message: string) => {
          pattern.lastIndex = 0;
          return pattern.test(message);
        };
  return (entry) =>
    (level === undefined || entry.level === level) && test(entry.message);
}

function safeJson(value: unknown): string {
  try {
    return JSON.stringify(value) ?? String(value);
  } catch {
    return String(value);
  }
}
