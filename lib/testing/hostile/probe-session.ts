import { escapeIac } from '../../telnet/telnet-parser.js';
import { HostileSocket } from './hostile-socket.js';

/**
 * A probe with its defaults applied.
 *
 * @internal
 */
export interface ResolvedProbe {
  readonly line: string;
  readonly expect: string | RegExp;
  readonly timeoutMs: number;
  readonly intervalMs: number;
  readonly telnet: boolean;
  readonly encoding: BufferEncoding;
  readonly preamble: string | Uint8Array | undefined;
  readonly from: string | undefined;
}

/** How long closing a probe waits for the server to close its side. */
const CLOSE_GRACE_MS = 2000;

/**
 * One well-behaved connection: it sends the probe's preamble once, then its
 * line on each round trip, and counts the replies that match, so a late
 * reply to an earlier probe is never taken for the answer to a later one.
 * Built on the same socket as the attacks (rather than `EarwaxClient`)
 * because it must connect from a chosen local address.
 *
 * @internal
 */
export class ProbeSession {
  private readonly line: Buffer;
  private replies = 0;

  private constructor(
    private readonly socket: HostileSocket,
    private readonly probe: ResolvedProbe,
    private readonly stop: AbortController,
  ) {
    const line = Buffer.from(`${probe.line}\r\n`, probe.encoding);
    this.line = probe.telnet ? escapeIac(line) : line;
  }

  /**
   * Connects (within the probe's timeout) and sends the preamble.
   *
   * @throws Error (rejects) when the connection cannot be made.
   */
  static async open(
    host: string,
    port: number,
    probe: ResolvedProbe,
  ): Promise<ProbeSession> {
    const stop = new AbortController();
    const socket = new HostileSocket({
      host,
      port,
      from: probe.from,
      read: true,
      telnet: probe.telnet,
      encoding: probe.encoding,
      expect: probe.expect,
      signal: stop.signal,
    });
    const timer = setTimeout(() => socket.destroy(), probe.timeoutMs);
    const connected = await socket.ready;
    clearTimeout(timer);
    if (!connected) {
      stop.abort();
      const { error } = socket.outcome();
      throw new Error(
        error === undefined
          ? `no connection within ${probe.timeoutMs} ms`
          : `connecting failed with ${error}`,
      );
    }
    if (probe.preamble !== undefined) await socket.write(probe.preamble);
    return new ProbeSession(socket, probe, stop);
  }

  /**
   * Sends the probe's line and waits for a new matching reply.
   *
   * @returns Why it was not served, or `undefined` when it was.
   */
  async roundTrip(): Promise<string | undefined> {
    const { socket, probe } = this;
    const last = () => {
      const { lastReceived } = socket.outcome();
      return lastReceived === ''
        ? 'nothing received'
        : `last received: ${JSON.stringify(lastReceived)}`;
    };
    if (!(await socket.write(this.line))) {
      return `its connection was closed by the server (${last()})`;
    }
    const before = this.replies;
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      socket.wake();
    }, probe.timeoutMs);
    await socket.until(() => timedOut || socket.answers > before);
    clearTimeout(timer);
    // Every reply that came is used up, so a late one is never reused.
    this.replies = socket.answers;
    if (socket.answers > before) return undefined;
    const expected =
      typeof probe.expect === 'string'
        ? JSON.stringify(probe.expect)
        : String(probe.expect);
    return timedOut
      ? `no reply matching ${expected} within ${probe.timeoutMs} ms (${last()})`
      : `its connection closed before a reply matching ${expected} (${last()})`;
  }

  /** Closes the connection cleanly. */
  async close(): Promise<void> {
    await this.socket.close(CLOSE_GRACE_MS);
    this.stop.abort();
  }
}
