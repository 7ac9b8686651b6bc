import { StringDecoder } from 'node:string_decoder';
import { LineFramer, type LineSink } from '../framing/line-framer.js';
import { foreignProtocol } from '../framing/protocol-sniffer.js';
import type { DisconnectReason } from '../interfaces/connection.interface.js';
import {
  InputRateLimiter,
  type RateVerdict,
} from '../limits/input-rate-limiter.js';
import { type ConnectionCore, InputMode } from './connection-core.js';
import { enqueue } from './event-queue.js';
import { sendLine, sendRaw } from './outbox.js';

// The inbound path of a connection: chunk → sniff → rate → framer or telnet
// → event. Functions over the connection's state (see ConnectionCore).

/**
 * Sets up reading for a connection being admitted, by its listener's and
 * transport's settings.
 *
 * @internal
 */
export function startInput(connection: ConnectionCore): void {
  // The rate limiter and the line framer are made with the first chunk
  // (takeChunk): many connections sit idle, and some never send at all.
  const { settings, listener } = connection;
  if (listener.telnet !== null) {
    // Started by the connection (telnet-link.ts), which reads through here.
    connection.mode = InputMode.Telnet;
  } else if (settings.framing === 'line') {
    connection.mode = InputMode.Lines;
  } else if (settings.encoding) {
    connection.mode = InputMode.Text;
    connection.decoder = new StringDecoder(settings.encoding);
  } else {
    connection.mode = InputMode.Raw;
  }
}

/**
 * A connection's line framer and the sink of its lines: one object, so that
 * framing costs no object of its own per connection.
 */
class LineReader extends LineFramer implements LineSink {
  constructor(
    maxLineLength: number,
    private readonly connection: ConnectionCore,
  ) {
    super(maxLineLength);
  }

  onLine(chunk: Buffer, start: number, end: number): void {
    receiveLine(this.connection, chunk, start, end);
  }

  onOverflow(): void {
    lineTooLong(this.connection);
  }
}

/**
 * Frames bytes of the connection into lines, if it frames lines.
 *
 * @internal
 */
export function readLines(connection: ConnectionCore, bytes: Buffer): void {
  const framer = connection.framer;
  if (framer !== null) framer.push(bytes, framer);
}

/**
 * What an open connection reads with from its first chunk on: its input
 * rate (full buckets, as they would have been had they been made at
 * admission: they refill up to their bursts) and, in line framing, its
 * framer.
 */
function startReading(connection: ConnectionCore): void {
  const { inputRate, framing, maxLineLength } = connection.settings;
  if (inputRate !== null) {
    connection.rateLimiter = new InputRateLimiter(inputRate, Date.now());
  }
  if (framing === 'line') {
    connection.framer = new LineReader(maxLineLength, connection);
  }
}

/**
 * A chunk from the medium.
 *
 * @internal
 */
export function receive(connection: ConnectionCore, chunk: Buffer): void {
  if (connection.state !== 'open' || !takeChunk(connection, chunk)) return;
  switch (connection.mode) {
    case InputMode.Lines:
      readLines(connection, chunk);
      break;
    case InputMode.Telnet:
      try {
        connection.telnet?.push(chunk);
      } catch (err) {
        // Nothing a client sends may take the server down: this one ends.
        connection.logger.error(
          `Telnet input failed: ${err instanceof Error ? err.message : String(err)}; disconnecting.`,
        );
        connection.disconnect('protocol');
      }
      break;
    case InputMode.Text: {
      const text = (connection.decoder as StringDecoder).write(chunk);
      // A chunk ending mid-character decodes to nothing: no empty event.
      if (text.length > 0) receiveData(connection, text);
      break;
    }
    case InputMode.Raw:
      receiveData(connection, chunk);
      break;
  }
}

/**
 * An input event that is not a line: a raw chunk, or its text.
 *
 * @internal
 */
export function receiveData(
  connection: ConnectionCore,
  data: Buffer | string,
): void {
  if (connection.state !== 'open') return;
  connection.inputSeen = true;
  connection.owner.counters.linesReceived++;
  if (!withinRate(connection)) return;
  enqueue(connection, 'on_data', data);
}

/**
 * A line from the framer: `chunk[start, end)`.
 *
 * @internal
 */
export function receiveLine(
  connection: ConnectionCore,
  chunk: Buffer,
  start: number,
  end: number,
): void {
  // Only whole lines keep a connection alive: a client trickling bytes
  // that never end a line (slowloris) is idle.
  connection.inputSeen = true;
  connection.owner.counters.linesReceived++;
  // Its bytes were taken with the chunk they came in.
  if (!withinRate(connection)) return;
  enqueue(connection, 'on_data', decodeLine(connection, chunk, start, end));
}

/**
 * The current line grew past `maxLineLength`.
 *
 * @internal
 */
export function lineTooLong(connection: ConnectionCore): void {
  const { maxLineLength, overlongLinePolicy, messages } = connection.settings;
  connection.logger.warn(
    `Line longer than ${maxLineLength} bytes: ${overlongLinePolicy === 'disconnect' ? 'disconnecting' : 'discarded'}.`,
  );
  if (messages.lineTooLong !== false)
    sendLine(connection, messages.lineTooLong);
  if (overlongLinePolicy === 'disconnect') {
    connection.disconnect('line_too_long');
  }
}

/**
 * The connection stopped being open: a clean close keeps everything the
 * client sent, in order (a partial last line too); any other drops what
 * waits.
 *
 * @internal
 */
export function endOfInput(
  connection: ConnectionCore,
  reason: DisconnectReason,
): void {
  const framer = connection.framer;
  if (reason === 'client_closed') {
    const rest = framer?.flush();
    if (rest && connection.settings.deliverPartialLineOnEnd) {
      connection.owner.counters.linesReceived++;
      enqueue(
        connection,
        'on_data',
        decodeLine(connection, rest, 0, rest.length),
      );
    }
  } else {
    connection.queue = null;
    framer?.halt();
  }
}

/**
 * Takes one event (a line, a raw chunk, a telnet command, negotiation or
 * subnegotiation) from the connection's input rate; over it, applies the
 * flood policy. Its bytes were taken with its chunk ({@link takeChunk}).
 *
 * @returns Whether the event may go on.
 * @internal
 */
export function withinRate(connection: ConnectionCore): boolean {
  const limiter = connection.rateLimiter;
  if (limiter === null) return true;
  const verdict = limiter.take();
  if (verdict === 'pass') return true;
  connection.owner.counters.inputDropped++;
  overRate(connection, verdict);
  return false;
}

/**
 * Decodes a line, or gives its bytes (a view, not a copy: chunks from a
 * medium are never reused) when the transport has no `encoding`.
 *
 * @internal
 */
export function decodeLine(
  connection: ConnectionCore,
  chunk: Buffer,
  start: number,
  end: number,
): Buffer | string {
  if (connection.settings.encoding) {
    // A telnet client may have agreed to another charset.
    return chunk.toString(connection.encoding, start, end);
  }
  return start === 0 && end === chunk.length
    ? chunk
    : chunk.subarray(start, end);
}

/**
 * What every chunk of an open connection goes through before framing: the
 * first chunk is sniffed for another protocol, and the chunk's bytes are
 * taken from the input rate, every one of them, data or telnet protocol (one
 * clock read per chunk; each line or telnet event then only takes an event
 * token). A chunk over the byte rate is still framed, so the stream stays in
 * step, but everything in it is dropped.
 *
 * @returns Whether the chunk goes on (`false`: another protocol took it, or
 * the connection was dropped for flooding).
 */
function takeChunk(connection: ConnectionCore, chunk: Buffer): boolean {
  if (!connection.chunkSeen) {
    connection.chunkSeen = true;
    startReading(connection);
    if (sniff(connection, chunk)) return false;
  }
  const limiter = connection.rateLimiter;
  if (limiter !== null) {
    const verdict = limiter.takeChunk(chunk.length, Date.now());
    if (verdict !== 'pass') {
      overRate(connection, verdict);
      return connection.state === 'open';
    }
  }
  return true;
}

/**
 * Input over the connection's rate: warns at the first drop of an episode,
 * disconnects with `flood` at the last.
 */
function overRate(connection: ConnectionCore, verdict: RateVerdict): void {
  const { messages, inputRate } = connection.settings;
  // Telnet answers to what passed go out before what is said now.
  if (verdict !== 'drop') connection.telnet?.flushAnswers();
  if (verdict === 'warn') {
    connection.logger.warn('Input over its rate limit: dropping input.');
    if (messages.floodWarning !== false) {
      sendLine(connection, messages.floodWarning);
    }
  } else if (verdict === 'flood') {
    connection.logger.warn(
      `Still over its input rate after ${inputRate?.dropsBeforeDisconnect ?? 0} drops: disconnecting (flood).`,
    );
    if (messages.flood !== false) sendLine(connection, messages.flood);
    connection.disconnect('flood');
  }
}

/**
 * Looks at a connection's first chunk for another protocol.
 *
 * @returns Whether it was one (and the connection is being closed).
 */
function sniff(connection: ConnectionCore, chunk: Buffer): boolean {
  // A WebSocket's frames follow its own HTTP handshake: a frame that reads
  // like HTTP or TLS is a player's input, not a client on the wrong port.
  if (
    !connection.settings.sniffProtocols ||
    connection.state !== 'open' ||
    connection.medium.kind === 'websocket'
  ) {
    return false;
  }
  const protocol = foreignProtocol(chunk);
  if (protocol === undefined) return false;
  const logger = connection.logger;
  if (protocol === 'http' && connection.medium.outputBytes > 0) {
    // The game greeted first: an HTTP status line after that greeting
    // would not be one, so the browser gets nothing more.
    logger.warn(
      'HTTP request on the game port, after the game had written to it: closed without an HTTP answer.',
    );
  } else if (protocol === 'http') {
    logger.warn('HTTP request on the game port: answered and closed.');
    const body = connection.settings.messages.http;
    sendRaw(
      connection,
      'HTTP/1.0 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n' +
        (body === false ? '' : `${body}\r\n`),
    );
  } else {
    logger.warn('TLS handshake on a plain port: closed.');
  }
  connection.disconnect('protocol');
  return true;
}
