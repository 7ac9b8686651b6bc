import type { ConnectionCore } from './connection-core.js';
import { hangUp } from './outbox.js';

/** Queued events one connection handles before others get a turn. */
const FAIR_SHARE = 64;

/**
 * Queues an event for a connection; runs it at once if the connection is
 * idle. Events of one connection run one at a time, in order; reading
 * pauses while too many wait, so a flood slows the client down through TCP
 * instead of filling memory.
 *
 * @internal
 */
export function enqueue(
  connection: ConnectionCore,
  event: string,
  data: unknown,
): void {
  if (!connection.busy) {
    connection.busy = true;
    if (connection.owner.nested) {
      // Raised by a handler that is still running (a kick, a ban, a slow
      // consumer dropped by a send): its handlers run after it returns, so
      // that handlers never nest, as they do not through Nest's pipeline.
      queueMicrotask(() => run(connection, event, data));
    } else {
      run(connection, event, data);
    }
    return;
  }
  const queue = (connection.queue ??= []);
  queue.push(event, data);
  // Two entries per event. Pause at maxQueuedEvents waiting, resume (in
  // run) at half that, so a busy connection does not flap.
  if (
    !connection.inputPaused &&
    queue.length >= connection.settings.maxQueuedEvents * 2 &&
    connection.state === 'open'
  ) {
    connection.inputPaused = true;
    connection.medium.pause();
  }
}

/**
 * Stops waiting for the connection's running handler (its late result is
 * ignored) and goes on with what follows it.
 *
 * @internal
 */
export function stopWaiting(connection: ConnectionCore): void {
  const pending = connection.waiting;
  if (pending === null) return;
  connection.owner.done(connection);
  if (pending.event === 'on_block') {
    // A refused connection: nothing more to tell it.
    hangUp(connection);
  } else if (afterEvent(connection, pending.event)) {
    runNext(connection);
  }
}

/**
 * Runs `event`, then the events queued behind it, one after another until
 * none is left: synchronously while handlers finish at once, and from the
 * first that does not, when it has finished.
 */
function run(connection: ConnectionCore, event: string, data: unknown): void {
  const owner = connection.owner;
  let streak = 0;
  for (;;) {
    const handled = owner.run(connection, event, data);
    // A connection that already gave up on a handler after its client left
    // runs its remaining lines without waiting (see HandlerWatch): one
    // grace in all, not one per hung line. on_disconnect is waited for as
    // ever.
    if (
      handled !== true &&
      handled !== false &&
      (connection.waitsForHandlers || event === 'on_disconnect')
    ) {
      const pending = owner.wait(connection, event);
      void handled.then(() => {
        // No longer waited for (see HandlerWatch): its result is ignored.
        if (connection.waiting !== pending) return;
        owner.done(connection);
        if (afterEvent(connection, pending.event)) runNext(connection);
      });
      return;
    }
    if (!afterEvent(connection, event)) return;
    if (++streak === FAIR_SHARE) {
      // Handlers that finish at once never give the event loop a turn: a
      // connection with a long backlog (a chunk can hold thousands of
      // lines) would keep every other connection waiting until it is done.
      setImmediate(runNext, connection);
      return;
    }
    const queue = connection.queue as unknown[];
    event = queue.shift() as string;
    data = queue.shift();
    resumeInput(connection, queue);
  }
}

/**
 * After `finished` has run: finishes the connection after `on_disconnect`;
 * otherwise says whether an event waits, leaving the connection idle when
 * none does.
 */
function afterEvent(connection: ConnectionCore, finished: string): boolean {
  if (finished === 'on_disconnect') {
    connection.busy = false;
    connection.finish();
    return false;
  }
  return hasQueued(connection);
}

function hasQueued(connection: ConnectionCore): boolean {
  const queue = connection.queue;
  if (queue !== null && queue.length > 0) return true;
  connection.busy = false;
  return false;
}

/** Runs the connection's next queued event (and those behind it). */
function runNext(connection: ConnectionCore): void {
  if (!hasQueued(connection)) return;
  const queue = connection.queue as unknown[];
  const event = queue.shift() as string;
  const data = queue.shift();
  resumeInput(connection, queue);
  run(connection, event, data);
}

/** Reads again once the queue is down to half of what paused it. */
function resumeInput(connection: ConnectionCore, queue: unknown[]): void {
  if (
    connection.inputPaused &&
    queue.length <= connection.settings.maxQueuedEvents
  ) {
    connection.inputPaused = false;
    if (connection.state === 'open') connection.medium.resume();
  }
}
