import type { LoggerService } from '@nestjs/common';
import { Journal } from './journal.js';

/** One log call. */
export interface LogEntry {
  level: 'log' | 'error' | 'warn' | 'debug' | 'verbose' | 'fatal';
  message: string;
  context?: string;
}

/** A logger that records instead of printing, so tests can assert on logs. */
export class RecordingLogger implements LoggerService {
  readonly journal = new Journal<LogEntry>();

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

  /** Entries whose message contains `text`. */
  find(text: string | RegExp, level?: LogEntry['level']): LogEntry[] {
    return this.journal.entries.filter(
      (e) =>
        (level === undefined || e.level === level) &&
        (typeof text === 'string'
          ? e.message.includes(text)
          : text.test(e.message)),
    );
  }

  /** Waits for an entry whose message matches. */
  waitFor(text: string | RegExp, level?: LogEntry['level']): Promise<void> {
    return this.journal.waitFor(
      () => this.find(text, level).length > 0,
      `a log line matching ${String(text)}`,
    );
  }

  private add(
    level: LogEntry['level'],
    message: unknown,
    rest: unknown[],
  ): void {
    const context =
      typeof rest[rest.length - 1] === 'string'
        ? (rest[rest.length - 1] as string)
        : undefined;
    const text =
      message instanceof Error
        ? `${message.name}: ${message.message}`
        : String(message);
    this.journal.record({ level, message: text, context });
  }
}
