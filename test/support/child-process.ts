import {
  type ChildProcess,
  spawn,
  type SpawnOptions,
} from 'node:child_process';
import { join } from 'node:path';
import { StringDecoder } from 'node:string_decoder';
import { pathToFileURL } from 'node:url';
import { Journal } from './journal.js';
import { pendingWait } from './pending-waits.js';
import { Waiters } from './waiters.js';

/** How a child process ended. */
export interface ChildEnd {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  /** Set if it could not be started (`spawn` failed: not installed...). */
  readonly error?: Error;
}

/** Options of {@link WatchedChild.spawn}. */
export interface WatchedChildOptions extends SpawnOptions {
  /** Split stderr into {@link WatchedChild.lines} too, as lines arrive. */
  readonly stderrLines?: boolean;
}

/** How much of stderr a {@link WatchedChild} keeps (the last characters). */
const STDERR_LIMIT = 16_000;

/**
 * A child process run by a test, whose every wait ends on an event and
 * never on a time budget that a busy machine can exceed.
 *
 * - Readiness: the child reports it on stdout (`port:<n>`, a log line), and
 *   {@link waitForLine} ends when that line arrives, or fails at once, with
 *   the child's stderr, when the child ends without it.
 * - The end: {@link closed} resolves on the child's `'close'` event, which
 *   comes after its exit *and* after its stdout and stderr have been read to
 *   their end (the `'exit'` event can come before the last lines), so what a
 *   test asserts on the output once it has ended is all of it.
 */
export class WatchedChild {
  /** The lines written on stdout (and stderr, with `stderrLines`), in order. */
  readonly lines = new Journal<string>();
  /** What it wrote on stderr: the last {@link STDERR_LIMIT} characters. */
  stderr = '';
  /** How it ended, once it has and its output has been read. */
  end: ChildEnd | undefined;
  /** Resolves once it has ended and its output has been read to the end. */
  readonly closed: Promise<ChildEnd>;
  private readonly stdoutChunks: Buffer[] = [];
  private readonly waits = new Waiters(() => this.describe());

  private constructor(
    /** Names it in failure messages (`app2`, `haproxy`...). */
    readonly name: string,
    readonly child: ChildProcess,
    stderrLines: boolean,
  ) {
    // Each chunk is kept (and split into lines) before the waits look.
    child.stdout?.on('data', (chunk: Buffer) => {
      this.stdoutChunks.push(chunk);
    });
    this.splitLines(child.stdout);
    const stderr = new StringDecoder('utf8');
    child.stderr?.on('data', (chunk: Buffer) => {
      this.stderr = (this.stderr + stderr.write(chunk)).slice(-STDERR_LIMIT);
    });
    if (stderrLines) this.splitLines(child.stderr);
    child.stdout?.on('data', () => this.waits.wake());
    child.stderr?.on('data', () => this.waits.wake());
    let spawnError: Error | undefined;
    child.once('error', (err) => (spawnError ??= err));
    this.closed = new Promise((resolve) => {
      child.once('close', (code: number | null, signal: NodeJS.Signals) => {
        this.end = {
          code,
          signal,
          ...(spawnError !== undefined && { error: spawnError }),
        };
        this.lines.end('the process ended');
        this.waits.end('the process ended');
        resolve(this.end);
      });
    });
  }

  /**
   * Spawns `command` with `args` (stdin ignored unless `options.stdio` says
   * otherwise; stdout and stderr piped and read).
   */
  static spawn(
    name: string,
    command: string,
    args: readonly string[],
    options: WatchedChildOptions = {},
  ): WatchedChild {
    const { stderrLines = false, ...spawnOptions } = options;
    const child = spawn(command, args, {
      stdio: ['ignore', 'pipe', 'pipe'],
      ...spawnOptions,
    });
    return new WatchedChild(name, child, stderrLines);
  }

  /** Whether the process has not exited yet (it can take a signal). */
  get running(): boolean {
    return (
      this.end === undefined &&
      this.child.exitCode === null &&
      this.child.signalCode === null
    );
  }

  /** Everything it wrote on stdout so far. */
  stdout(encoding: BufferEncoding = 'utf8'): string {
    return Buffer.concat(this.stdoutChunks).toString(encoding);
  }

  /** Its state and the end of its stderr, for failure messages. */
  describe(): string {
    return `${this.name} ${this.status()}; its stdout lines: ${JSON.stringify(this.lines.entries.slice(-30))}; its stderr: ${this.stderr.slice(-4000)}`;
  }

  /**
   * Waits until `condition()` holds; fails at once, with its output, if the
   * child ends (and its output has been read) without it holding.
   */
  until(condition: () => boolean, what: string): Promise<void> {
    return this.waits.until(condition, what);
  }

  /**
   * Waits for a line matching `pattern`, among the lines from index `from`
   * on, and returns it; fails at once, with its stderr, if the child ends
   * without writing one.
   */
  async waitForLine(pattern: RegExp, from = 0): Promise<string> {
    const match = () =>
      this.lines.entries.slice(from).find((line) => pattern.test(line));
    await this.until(
      () => match() !== undefined,
      `${this.name} to write a line matching ${String(pattern)}`,
    );
    return match() as string;
  }

  /**
   * Waits until it has ended by itself and its output has been read; how it
   * ended.
   */
  waitForEnd(): Promise<ChildEnd> {
    return pendingWait(
      this.closed,
      () => `${this.name} to end; ${this.describe()}`,
    );
  }

  /**
   * Awaits `promise` (something the child should cause: a log line of the
   * server it talks to), failing at once, with its output, if the child
   * ends first.
   */
  async whileRunning<T>(promise: Promise<T>, what: string): Promise<T> {
    const ended = this.closed.then(() => {
      throw new Error(`Waited for ${what}, but ${this.describe()}`);
    });
    // Only the race's outcome matters once it is decided.
    ended.catch(() => undefined);
    return Promise.race([promise, ended]);
  }

  /** Sends `signal` if the process has not exited yet. */
  signal(signal: NodeJS.Signals): void {
    if (this.running) this.child.kill(signal);
  }

  /**
   * Sends `signal` (if it has not exited yet) and waits until it has ended
   * and its output has been read. `killAfterMs`, for cleanup only, sends
   * SIGKILL if it has not exited by then (what a test asserts never depends
   * on it).
   */
  async stop(
    signal: NodeJS.Signals = 'SIGTERM',
    killAfterMs?: number,
  ): Promise<ChildEnd> {
    this.signal(signal);
    let timer: NodeJS.Timeout | undefined;
    if (killAfterMs !== undefined && signal !== 'SIGKILL') {
      timer = setTimeout(() => this.signal('SIGKILL'), killAfterMs);
    }
    try {
      return await pendingWait(
        this.closed,
        () => `${this.name} to end after ${signal}; ${this.describe()}`,
      );
    } finally {
      clearTimeout(timer);
    }
  }

  private status(): string {
    const end = this.end;
    if (end?.error) return `could not start (${end.error.message})`;
    if (end)
      return `ended (${end.signal ? `signal ${end.signal}` : `code ${end.code}`})`;
    if (this.child.exitCode !== null || this.child.signalCode !== null) {
      return 'exited (its output not yet read to the end)';
    }
    return 'is running';
  }

  private splitLines(stream: NodeJS.ReadableStream | null): void {
    if (!stream) return;
    const decoder = new StringDecoder('utf8');
    let pending = '';
    const split = (text: string) => {
      const parts = (pending + text).split('\n');
      pending = parts.pop() ?? '';
      for (const part of parts) this.lines.record(part.replace(/\r$/, ''));
    };
    stream.on('data', (chunk: Buffer) => split(decoder.write(chunk)));
    // 'end' comes before the child's 'close': a last line without a newline
    // is recorded before the child counts as ended.
    stream.on('end', () => {
      split(decoder.end());
      if (pending !== '') this.lines.record(pending);
      pending = '';
      this.waits.wake();
    });
  }
}

/**
 * `node --import <loader hooks> <script>`: runs a TypeScript program of this
 * repository without a build (see shutdown-child-hooks.mjs). `cluster.fork()`
 * in such a program gives its workers the same flags.
 */
export function spawnTypeScript(
  name: string,
  script: string,
  env: NodeJS.ProcessEnv,
  options: WatchedChildOptions = {},
): WatchedChild {
  const support = join(process.cwd(), 'test', 'support');
  const hooks = pathToFileURL(join(support, 'shutdown-child-hooks.mjs'));
  const register = `import { register } from 'node:module'; register(${JSON.stringify(hooks.href)});`;
  return WatchedChild.spawn(
    name,
    process.execPath,
    [
      '--import',
      `data:text/javascript,${encodeURIComponent(register)}`,
      script,
    ],
    { ...options, env: { ...process.env, NODE_NO_WARNINGS: '1', ...env } },
  );
}
