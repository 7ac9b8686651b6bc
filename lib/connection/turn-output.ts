// `node:timers`, not the global: a test's fake timers (Jest, Sinon) replace
// the global `setImmediate`, and output must not wait for a fake clock.
import { setImmediate } from 'node:timers';
import type { ConnectionCore } from './connection-core.js';

// One write per connection per turn. Everything a connection is sent
// within one turn of the event loop (a handler's sends, broadcasts that
// reach it, prompts, telnet answers) is held in its output stream (corked)
// and written at the end of the turn, in the check phase (`setImmediate`):
// after every I/O callback of the turn, so commands of many players read
// in one turn still cost each recipient one write. The system call, not the
// JavaScript, is what a line costs; a turn's lines leave as one `writev`.
//
// Corking the stream, rather than keeping buffers of our own, keeps Node's
// accounting as it is: `writableLength` counts what is held, `write()`
// answers `false` past the high-water mark, `end()` flushes first.

/** Connections holding output this turn (some already flushed). */
let held: ConnectionCore[] = [];
/** The list of the previous turn, emptied, to be reused. */
let spare: ConnectionCore[] = [];
let scheduled = false;

/**
 * Holds the connection's output until the end of the turn (the first
 * write of a turn corks its output stream).
 *
 * @internal
 */
export function holdOutput(connection: ConnectionCore): void {
  if (connection.corked !== null) return;
  const out = connection.out;
  out.cork();
  connection.corked = out;
  held.push(connection);
  if (!scheduled) {
    scheduled = true;
    setImmediate(flushTurn);
  }
}

/**
 * Writes what the connection holds now, and stops holding: before its
 * output ends, is destroyed or changes stream (compression).
 *
 * @internal
 */
export function flushOutput(connection: ConnectionCore): void {
  const out = connection.corked;
  if (out === null) return;
  connection.corked = null;
  out.uncork();
}

/**
 * Writes what the connection holds now and goes on holding: a turn's
 * output past the high-water mark leaves in parts, each one write, so a
 * reading client is never judged by what one turn sent.
 *
 * @internal
 */
export function flushEarly(connection: ConnectionCore): void {
  const out = connection.corked;
  if (out === null) return;
  out.uncork();
  out.cork();
}

/** The end of the turn: every held output is written. */
function flushTurn(): void {
  scheduled = false;
  const list = held;
  held = spare;
  for (let i = 0; i < list.length; i++) {
    const connection = list[i] as ConnectionCore;
    try {
      flushOutput(connection);
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
