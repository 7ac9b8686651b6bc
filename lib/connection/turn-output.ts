// `node:timers`, not the global: a test's fake timers (Jest, Sinon) replace
// the global `setImmediate`, and output must not wait for a fake clock.
import { setImmediate } from 'node:timers';
import type { ConnectionCore } from './connection-core.js';

// One write per connection per turn. Everything a connection is sent
// within one turn of the event loop (a handler's sends, broadcasts that
// reach it, prompts, telnet answers) is held by the connection and written
// at the end of the turn, in the check phase (`setImmediate`): after every
// I/O callback of the turn, so commands of many players read in one turn
// still cost each recipient one write. The exception is a reply to input
// when no other output waits: it leaves as soon as the read is done (see
// readInput). The system call, not the JavaScript, is what a line costs.
//
// Held here rather than corked in the stream: a corked socket hands its
// chunks to a native writev that encodes each string on its own, about
// twice the cost of one write of the joined text (measured: five lines
// corked 11–13 µs, joined 5.5–6 µs, on loopback).

/** Past this much held output a turn is written in parts (16 KiB). */
export const HELD_LIMIT = 16 * 1024;
/** Up to this size mixed or byte parts are copied into one buffer. */
const JOIN_LIMIT = 64 * 1024;

/** The connection whose input is being read, if any. */
let reading: ConnectionCore | null = null;
/** Connections holding output this turn (some already flushed). */
let held: ConnectionCore[] = [];
/** The list of the previous turn, emptied, to be reused. */
let spare: ConnectionCore[] = [];
let scheduled = false;
/**
 * Holds output until the end of the turn. `data` is a UTF-8 string or
 * bytes (text in other encodings is encoded by the caller).
 *
 * @returns `false` when what is queued (held and unsent) is past the
 *   high-water mark, as `Writable.write()` would answer.
 * @internal
 */
export function hold(
  connection: ConnectionCore,
  data: string | Uint8Array,
): boolean {
  const parts = connection.turnOutput;
  if (parts === null) {
    connection.turnOutput = data;
    // A reply to the input being read is settled when the read is done.
    if (connection !== reading) holdForTurn(connection);
  } else if (Array.isArray(parts)) {
    parts.push(data);
  } else {
    connection.turnOutput = [parts, data];
  }
  // UTF-16 units for a string: exact for ASCII, an estimate otherwise,
  // which is all a limit needs.
  const bytes = (connection.turnBytes += data.length);
  if (bytes >= HELD_LIMIT) return flushOutput(connection);
  const out = connection.out;
  return out.writableLength + bytes < out.writableHighWaterMark;
}

/**
 * Writes what the connection holds now, as one write: before its output
 * ends, is destroyed or changes stream (compression), or when a turn holds
 * more than {@link HELD_LIMIT}.
 *
 * @returns What the write returned (`true` when nothing was held).
 * @internal
 */
export function flushOutput(connection: ConnectionCore): boolean {
  const parts = connection.turnOutput;
  if (parts === null) return true;
  connection.turnOutput = null;
  connection.turnBytes = 0;
  const out = connection.out;
  // Closed meanwhile: nothing to write to (and no error to raise).
  if (!out.writable) return true;
  if (!Array.isArray(parts)) return out.write(parts);
  let text = true;
  for (const part of parts) {
    if (typeof part !== 'string') {
      text = false;
      break;
    }
  }
  if (text) return out.write(parts.join(''));
  let length = 0;
  for (const part of parts) {
    length += typeof part === 'string' ? Buffer.byteLength(part) : part.length;
  }
  if (length <= JOIN_LIMIT) {
    // One copy of every part into one buffer (text encoded in place).
    const joined = Buffer.allocUnsafe(length);
    let at = 0;
    for (const part of parts) {
      if (typeof part === 'string') {
        at += joined.write(part, at);
      } else {
        joined.set(part, at);
        at += part.length;
      }
    }
    return out.write(joined);
  }
  // Large: a writev of the parts, not a copy of them.
  let ok = true;
  out.cork();
  try {
    for (const part of parts) ok = out.write(part);
  } finally {
    out.uncork();
  }
  return ok;
}

/**
 * Reads a chunk of the connection's input with `read`. What the connection
 * is sent meanwhile (its replies, and what it already held this turn) is
 * written as one write when the read is done if no other connection has
 * output waiting for the end of the turn: the player who typed gets the
 * answer at once, and a turn of lone replies (echo, a command answered
 * with several lines) costs no deferred flush. Otherwise it waits for the
 * end of the turn with the rest, for one write per connection per turn.
 *
 * @internal
 */
export function readInput<T>(
  connection: ConnectionCore,
  read: (connection: ConnectionCore, chunk: T) => void,
  chunk: T,
): void {
  const previous = reading;
  reading = connection;
  try {
    read(connection, chunk);
  } finally {
    reading = previous;
    if (connection.turnOutput !== null) {
      // Alone in the turn so far: written now. Others have output waiting
      // (a broadcast, say): this joins them, so that a busy room still
      // costs each player one write per turn.
      if (held.length === 0) connection.written(flushOutput(connection));
      else holdForTurn(connection);
    }
  }
}

/** Lists the connection for the write at the end of the turn. */
function holdForTurn(connection: ConnectionCore): void {
  held.push(connection);
  if (!scheduled) {
    scheduled = true;
    setImmediate(flushTurn);
  }
}

/** The end of the turn: what every connection holds is written. */
function flushTurn(): void {
  scheduled = false;
  const list = held;
  held = spare;
  for (let i = 0; i < list.length; i++) {
    const connection = list[i] as ConnectionCore;
    try {
      if (connection.turnOutput !== null) {
        connection.written(flushOutput(connection));
      }
    } catch (err) {
      // A stream that throws on write must not hold back everyone else's.
      connection.logger.warn(
        `Output failed (${(err as Error).message}): closing.`,
      );
      connection.medium.destroy();
    }
  }
  list.length = 0;
  spare = list;
}
