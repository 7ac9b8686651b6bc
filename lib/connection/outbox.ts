import { constants as zlibConstants, createDeflate } from 'node:zlib';
import type { Writable } from 'node:stream';
import { escapeIac } from '../telnet/telnet-parser.js';
import type { ConnectionCore } from './connection-core.js';
import { flushOutput, hold } from './turn-output.js';

// The outbound path of a connection: send → encode → escape → compress →
// write (held until the end of the turn, see turn-output.ts) →
// slow-consumer policy; and the end of output (hang up, linger, abort).
// Functions over the connection's state (see ConnectionCore).

const CRLF = Buffer.from('\r\n');
/** Encodings in which `'\r\n'` encodes to the two bytes CR LF. */
const ASCII_COMPATIBLE = new Set<BufferEncoding>([
  'utf8',
  'utf-8',
  'latin1',
  'binary',
  'ascii',
]);
/** Up to this size a line is copied to add its terminator; past it, two parts. */
const COPY_LIMIT = 16 * 1024;
/** Node's default `writableHighWaterMark` for sockets. */
const HIGH_WATER_MARK = 16 * 1024;

const kConnection = Symbol('earwax:connection');
type Tagged = Writable & { [kConnection]?: ConnectionCore };

/**
 * Whether output may be written; logs (debug) why not.
 *
 * @internal
 */
export function writable(connection: ConnectionCore, what: string): boolean {
  // `writable` is already false once a stream is ending, ended, destroyed
  // or errored: one getter per send.
  const out = connection.out;
  if (
    out.writable &&
    (out === connection.medium.output || connection.medium.output.writable) &&
    !connection.tlsPending
  ) {
    return true;
  }
  connection.logger.debug(`${what} ignored: the connection is closed.`);
  return false;
}

/**
 * Writes text and an ASCII `\r\n`.
 *
 * @returns `false` above the high-water mark, as `Writable.write()`.
 * @internal
 */
export function writeTextLine(
  connection: ConnectionCore,
  text: string,
  encoding: BufferEncoding,
): boolean {
  if (encoding === 'utf8' || encoding === 'utf-8') {
    // UTF-8 never has a 0xFF byte: nothing to escape in telnet mode.
    return hold(connection, text + '\r\n');
  }
  if (connection.telnet !== null) {
    // Other encodings may (latin-1 ÿ).
    hold(connection, escapeIac(Buffer.from(text, encoding)));
    return hold(connection, CRLF);
  }
  if (ASCII_COMPATIBLE.has(encoding)) {
    return hold(connection, Buffer.from(text + '\r\n', encoding));
  }
  hold(connection, Buffer.from(text, encoding));
  return hold(connection, CRLF);
}

/**
 * Writes bytes and `\r\n` (telnet data escaped).
 *
 * @internal
 */
export function writeBytesLine(
  connection: ConnectionCore,
  data: Uint8Array,
): boolean {
  // Telnet data: every 0xFF byte doubled, so it cannot be read as IAC.
  const bytes = connection.telnet !== null ? escapeIac(data) : data;
  if (bytes.length <= COPY_LIMIT) {
    // One small copy costs less than a second part to join.
    return hold(connection, withCrlf(bytes));
  }
  hold(connection, bytes);
  return hold(connection, CRLF);
}

/**
 * Writes text or bytes with no terminator (telnet data escaped).
 *
 * @internal
 */
export function writeRaw(
  connection: ConnectionCore,
  data: Uint8Array | string,
): boolean {
  if (connection.telnet !== null) {
    const bytes =
      typeof data === 'string' ? Buffer.from(data, connection.encoding) : data;
    return hold(connection, escapeIac(bytes));
  }
  if (typeof data !== 'string') return hold(connection, data);
  const encoding = connection.settings.encoding ?? 'utf8';
  return hold(
    connection,
    encoding === 'utf8' || encoding === 'utf-8'
      ? data
      : Buffer.from(data, encoding),
  );
}

/**
 * Writes a prompt: the text, then the telnet prompt mark.
 *
 * @internal
 */
export function writePrompt(connection: ConnectionCore, text: string): boolean {
  const telnet = connection.telnet;
  const encoding = connection.encoding;
  const end = telnet?.promptEnd();
  let ok =
    encoding === 'utf8' || encoding === 'utf-8'
      ? hold(connection, text)
      : hold(
          connection,
          telnet !== null
            ? escapeIac(Buffer.from(text, encoding))
            : Buffer.from(text, encoding),
        );
  if (end !== undefined) ok = hold(connection, end);
  return ok;
}

/**
 * A line of the server's own (a refusal, a warning, a goodbye): written if
 * the connection can still be written to, under the slow-consumer policy.
 *
 * @internal
 */
export function sendLine(connection: ConnectionCore, text: string): boolean {
  if (!writable(connection, 'sendString')) return false;
  return checkOutput(
    connection,
    writeTextLine(connection, text, connection.encoding),
  );
}

/**
 * Raw output of the server's own (an HTTP answer on the game port).
 *
 * @internal
 */
export function sendRaw(connection: ConnectionCore, data: string): boolean {
  if (!writable(connection, 'sendRaw')) return false;
  return checkOutput(connection, writeRaw(connection, data));
}

/**
 * Writes telnet protocol bytes as they are (already escaped), under the
 * slow-consumer policy.
 *
 * @internal
 */
export function writeProtocol(
  connection: ConnectionCore,
  bytes: Buffer,
): boolean {
  if (!writable(connection, 'telnet')) return false;
  return checkOutput(connection, hold(connection, bytes));
}

/**
 * Applies the slow-consumer policy after a write: `ok` is what the write
 * returned (false once output is above the high-water mark), so a reading
 * peer costs no further check.
 *
 * @returns Whether the connection keeps its output (`false`: dropped as a
 *   slow consumer).
 * @internal
 */
export function checkOutput(connection: ConnectionCore, ok: boolean): boolean {
  const { maxOutputBuffer } = connection.settings;
  if (ok && maxOutputBuffer >= HIGH_WATER_MARK) return true;
  const out = connection.out;
  if (
    connection.turnOutput !== null &&
    out.writableLength + connection.turnBytes > maxOutputBuffer
  ) {
    // What this turn holds is not yet the client's backlog: written now,
    // what stays queued is.
    ok = flushOutput(connection);
  }
  if (out.writableLength > maxOutputBuffer) {
    connection.disconnect('slow_consumer');
    return false;
  }
  if (!ok && connection.drainTimer === undefined) {
    // Buffered past the high-water mark: it must drain within writeTimeout.
    connection.drainTimer = setTimeout(
      drainTimedOut,
      connection.settings.writeTimeout,
      connection,
    );
    (out as Tagged)[kConnection] = connection;
    out.once('drain', onDrain);
  }
  return true;
}

/**
 * Flushes and closes our side; closes the medium if the peer lingers.
 *
 * @internal
 */
export function hangUp(connection: ConnectionCore): void {
  flushOutput(connection);
  const medium = connection.medium;
  if (medium.closed) {
    connection.owner.settle(connection);
    return;
  }
  // Input is read and thrown away (the connection is no longer open), so a
  // client still sending can finish, read what we sent, and see our FIN;
  // one that never stops is cut off when the linger time runs out.
  medium.resume();
  const out = connection.out;
  if (out !== medium.output) {
    // The compressed stream ends first; the pipe then ends the medium.
    if (!out.writableEnded) out.end();
  } else {
    medium.end();
  }
  if (!connection.lingerTimer) {
    const { lingerTimeout, writeTimeout } = connection.settings;
    // Output still queued gets the slow-consumer deadline to flush first.
    const wait =
      medium.pendingBytes > 0 || out.writableLength > 0
        ? writeTimeout + lingerTimeout
        : lingerTimeout;
    connection.lingerTimer = setTimeout(abort, wait, connection);
    connection.lingerTimer.unref();
  }
}

/**
 * Closes the medium now; a reset when queued output is thrown away.
 *
 * @internal
 */
export function abort(connection: ConnectionCore): void {
  // What the turn held was sent before the abort, as it would have been
  // without holding: only what the client did not take is lost.
  flushOutput(connection);
  const out = connection.out;
  connection.medium.abort(
    out !== connection.medium.output && out.writableLength > 0,
  );
}

/**
 * MCCP2: from now on the connection's output goes through zlib, each write
 * flushed (Z_SYNC_FLUSH) so a line is never held back, the dictionary kept
 * between writes so repeated text still compresses.
 *
 * @internal
 */
export function compress(connection: ConnectionCore): void {
  const output = connection.medium.output;
  if (connection.out !== output || !output.writable) return;
  // What was held goes uncompressed (it ends with the agreement); from now
  // on the compressor is what a turn holds.
  flushOutput(connection);
  // A 4 KiB window and small hash tables: about 48 KiB of zlib state per
  // connection instead of 256 KiB; any client's inflater reads it.
  const deflate = createDeflate({
    flush: zlibConstants.Z_SYNC_FLUSH,
    windowBits: 12,
    memLevel: 6,
  });
  deflate.on('error', (err: Error) => {
    connection.logger.warn(
      `Compression failed (${err.message}): disconnecting.`,
    );
    abort(connection);
  });
  deflate.pipe(output);
  connection.out = deflate;
  connection.logger.debug('MCCP2 compression on.');
}

/**
 * Frees what output holds beyond the medium (the compressor).
 *
 * @internal
 */
export function releaseOutput(connection: ConnectionCore): void {
  connection.turnOutput = null;
  connection.turnBytes = 0;
  if (connection.out !== connection.medium.output) connection.out.destroy();
}

/**
 * A copy of `bytes` with `\r\n` after it: a line ready to write.
 *
 * @internal
 */
export function withCrlf(bytes: Uint8Array): Buffer {
  const line = Buffer.allocUnsafe(bytes.length + 2);
  line.set(bytes);
  line[bytes.length] = 0x0d;
  line[bytes.length + 1] = 0x0a;
  return line;
}

function onDrain(this: Tagged): void {
  const connection = this[kConnection] as ConnectionCore;
  clearTimeout(connection.drainTimer);
  connection.drainTimer = undefined;
}

function drainTimedOut(connection: ConnectionCore): void {
  connection.drainTimer = undefined;
  if (connection.state !== 'open') return;
  connection.logger.warn(
    'Output did not drain within writeTimeout (the client reads too slowly): disconnecting (slow_consumer).',
  );
  connection.disconnect('slow_consumer');
}
