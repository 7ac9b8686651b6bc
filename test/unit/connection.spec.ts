import 'reflect-metadata';
import { afterEach, beforeAll, describe, expect, it } from '@jest/globals';
import { Logger } from '@nestjs/common';
import { PassThrough, Writable } from 'node:stream';
import {
  recordingOwner,
  releaseTestConnections,
  testConnection,
  TestMedium,
} from '../support/test-connection.js';

beforeAll(() => Logger.overrideLogger(false));
afterEach(releaseTestConnections);

/** A connection over a readable in-memory output, admitted. */
function opened(settings = {}) {
  const output = new PassThrough();
  const medium = new TestMedium(output);
  const made = testConnection({ medium, settings });
  made.connection.open();
  const written = () =>
    ((output.read() as Buffer | null) ?? Buffer.alloc(0)).toString();
  return { ...made, medium, written };
}

/** A promise and the function that settles it. */
function deferred() {
  let resolve!: (handled: boolean) => void;
  const promise = new Promise<boolean>((r) => (resolve = r));
  return { promise, resolve };
}

describe('Connection states', () => {
  it('runs on_connect first when opened, then each line as on_data', () => {
    const { connection, owner, medium } = opened();
    expect(connection.state).toBe('open');
    expect(owner.registry.size).toBe(1);
    medium.feed('look\r\nno');
    medium.feed('rth\n');
    expect(owner.events).toEqual([
      'on_connect',
      'on_data:look',
      'on_data:north',
    ]);
  });

  it('keeps a clean close: the partial last line, then on_disconnect, then closed', () => {
    const { connection, owner, medium } = opened();
    medium.feed('say bye');
    medium.endInput();
    expect(owner.events).toEqual([
      'on_connect',
      'on_data:say bye',
      'on_disconnect:client_closed',
    ]);
    expect(connection.state).toBe('closed');
    expect(owner.registry.size).toBe(0);
  });

  it('drops what waits on a reset, and still runs on_disconnect once', () => {
    const { connection, owner, medium } = opened();
    const first = deferred();
    owner.handle = (_ctx, event) =>
      event === 'on_data' ? first.promise : false;
    medium.feed('one\ntwo\nthree\n');
    medium.close(true);
    expect(connection.state).toBe('closing');
    first.resolve(false);
    return first.promise.then(async () => {
      await Promise.resolve();
      expect(owner.events).toEqual([
        'on_connect',
        'on_data:one',
        'on_disconnect:reset',
      ]);
      expect(connection.state).toBe('closed');
    });
  });

  it('waits for a running handler before on_disconnect (close during a handler)', async () => {
    const { connection, owner, medium } = opened();
    const running = deferred();
    owner.handle = (_ctx, event) =>
      event === 'on_data' ? running.promise : false;
    medium.feed('slow\n');
    connection.disconnect('server_shutdown');
    expect(owner.events).toEqual(['on_connect', 'on_data:slow']);
    expect(medium.ends).toBe(1);
    running.resolve(false);
    await running.promise;
    await Promise.resolve();
    expect(owner.events.at(-1)).toBe('on_disconnect:server_shutdown');
    expect(connection.state).toBe('closed');
  });

  it('ends once however often it is disconnected', () => {
    const { connection, owner } = opened();
    connection.disconnect('kicked');
    connection.disconnect('idle');
    connection.close('error');
    expect(owner.events.filter((e) => e.startsWith('on_disconnect'))).toEqual([
      'on_disconnect:kicked',
    ]);
    expect(connection.disconnectReason).toBe('kicked');
  });

  it('never opens when its medium closes while it is pending (reset during the guard)', () => {
    const medium = new TestMedium();
    const { connection, owner } = testConnection({ medium });
    medium.close(true);
    expect(connection.state).toBe('pending');
    expect(owner.events).toEqual([]);
    expect(owner.settles).toBe(1);
  });

  it('hangs up on a refused connection instead of closing it', () => {
    const medium = new TestMedium();
    const { connection, owner } = testConnection({ medium });
    connection.disconnect('kicked');
    expect(medium.ends).toBe(1);
    expect(connection.state).toBe('pending');
    expect(owner.events).toEqual([]);
  });

  it('resets a slow consumer rather than flushing output that never drains', () => {
    const stalled = new Writable({ write: () => undefined });
    const medium = new TestMedium(stalled);
    const { connection, ctx, owner } = testConnection({ medium });
    connection.open();
    expect(ctx.sendRaw(Buffer.alloc(1000))).toBe(true);
    expect(ctx.sendRaw(Buffer.alloc(100))).toBe(false);
    expect(medium.aborts).toHaveLength(1);
    expect(owner.events.at(-1)).toBe('on_disconnect:slow_consumer');
  });

  it('pauses its medium while too many events wait, and resumes at half', async () => {
    const { owner, medium } = opened({ maxQueuedEvents: 2 });
    const running = deferred();
    owner.handle = (_ctx, event) =>
      event === 'on_data' ? running.promise : false;
    medium.feed('a\nb\nc\nd\n');
    expect(medium.paused).toBe(true);
    owner.handle = () => false;
    running.resolve(false);
    await running.promise;
    await Promise.resolve();
    expect(medium.paused).toBe(false);
    expect(owner.events.slice(1)).toEqual([
      'on_data:a',
      'on_data:b',
      'on_data:c',
      'on_data:d',
    ]);
  });
});

describe('Connection states, as its medium closes', () => {
  it('clears its drain deadline when the peer goes while output waits to drain', () => {
    const stalled = new Writable({ write: () => undefined, highWaterMark: 10 });
    const medium = new TestMedium(stalled);
    const { connection, ctx, owner } = testConnection({
      medium,
      settings: { maxOutputBuffer: 1 << 20 },
    });
    connection.open();
    expect(ctx.sendString('more than ten bytes')).toBe(true);
    expect(connection.drainTimer).toBeDefined();
    medium.close(true);
    expect(owner.events.at(-1)).toBe('on_disconnect:reset');
    connection.release();
    expect(connection.drainTimer).toBeUndefined();
    expect(connection.state).toBe('closed');
  });

  it('is settled again when on_disconnect ends after its medium closed', async () => {
    const { connection, owner, medium } = opened();
    const leaving = deferred();
    owner.handle = (_ctx, event) =>
      event === 'on_disconnect' ? leaving.promise : false;
    medium.close(false);
    expect(connection.state).toBe('closing');
    const settledAtClose = owner.settles;
    expect(settledAtClose).toBeGreaterThan(0);
    leaving.resolve(false);
    await leaving.promise;
    await Promise.resolve();
    expect(connection.state).toBe('closed');
    expect(owner.settles).toBeGreaterThan(settledAtClose);
    expect(connection.eventsLeft).toBe(false);
  });
});

describe('Connection inbound', () => {
  it('disconnects a line past maxLineLength, telling the client', () => {
    const { owner, medium, written } = opened({ maxLineLength: 8 });
    medium.feed('0123456789');
    expect(written()).toBe('Line too long.\r\n');
    expect(owner.events.at(-1)).toBe('on_disconnect:line_too_long');
  });

  it('answers an HTTP request on the game port and closes with protocol', () => {
    const { owner, medium, written } = opened();
    medium.feed('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
    expect(written()).toMatch(/^HTTP\/1\.0 400 Bad Request\r\n/);
    expect(owner.events).toEqual(['on_connect', 'on_disconnect:protocol']);
  });

  it('drops input over its rate, then disconnects with flood', () => {
    const { owner, medium, written } = opened({
      inputRate: {
        linesPerMs: 0.001,
        lineBurst: 2,
        bytesPerMs: 1000,
        byteBurst: 100_000,
        dropsBeforeDisconnect: 2,
      },
    });
    medium.feed('a\nb\nc\nd\ne\n');
    expect(owner.events.filter((e) => e.startsWith('on_data'))).toEqual([
      'on_data:a',
      'on_data:b',
    ]);
    expect(written()).toContain('\r\n');
    expect(owner.events.at(-1)).toBe('on_disconnect:flood');
    expect(owner.counters.inputDropped).toBeGreaterThan(0);
  });

  it('gives raw chunks as bytes without framing or encoding', () => {
    const { owner, medium } = opened({ framing: 'raw', encoding: undefined });
    owner.handle = (_ctx, _event, data) => {
      if (Buffer.isBuffer(data)) owner.events.push(`bytes:${data.length}`);
      return false;
    };
    medium.feed(Buffer.from([1, 2, 3]));
    expect(owner.events.at(-1)).toBe('bytes:3');
  });
});

describe('Connection outbound', () => {
  it('writes nothing once closed, and says so', () => {
    const { connection, ctx, medium } = opened();
    connection.disconnect('kicked');
    medium.close(false);
    expect(ctx.sendString('late')).toBe(false);
  });

  it('lets the registry keep rooms for it, and forgets them when it closes', () => {
    const owner = recordingOwner();
    const { connection, ctx } = testConnection({ owner });
    connection.open();
    expect(ctx.join('hall')).toBe(true);
    expect([...ctx.rooms]).toEqual(['hall']);
    connection.disconnect('quit');
    expect(owner.registry.members('hall')).toEqual([]);
  });
});

describe('Connection state, held lean', () => {
  it('makes its input rate and line framer with the first chunk', () => {
    const { connection, medium, owner } = opened({
      inputRate: {
        linesPerMs: 0.001,
        lineBurst: 1,
        bytesPerMs: 1000,
        byteBurst: 100_000,
        dropsBeforeDisconnect: 5,
      },
    });
    expect(connection.rateLimiter).toBeNull();
    expect(connection.framer).toBeNull();
    medium.feed('a\nb\n');
    expect(connection.rateLimiter).not.toBeNull();
    expect(connection.framer).not.toBeNull();
    // A full line bucket from the start, as if made at admission.
    expect(owner.events).toEqual(['on_connect', 'on_data:a']);
  });

  it('has a UUID for its id, made when first asked for', () => {
    const { connection, ctx } = opened();
    // Admitted and registered without one.
    expect((connection as unknown as { ident?: string }).ident).toBeUndefined();
    expect(ctx.id).toMatch(
      /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/,
    );
    expect(ctx.id).toBe(connection.id);
    connection.disconnect('quit');
    expect(ctx.id).toBe(connection.id);
    expect(testConnection().ctx.id).not.toBe(ctx.id);
  });

  it('reads its remote end from the medium, or from a PROXY header', () => {
    const medium = new TestMedium(undefined, '::ffff:198.51.100.7', 4321);
    const { connection, ctx } = testConnection({ medium });
    expect(ctx.address).toBe(medium.remote);
    expect(ctx.hostname).toBe('198.51.100.7');
    expect(ctx.port).toBe(4321);
    expect(ctx.proxy).toBeUndefined();
    expect(ctx.toString()).toBe('198.51.100.7:4321');
    connection.setProxiedRemote('2001:db8::9', 5555, 'IPv6');
    expect(ctx.address).toEqual({
      address: '2001:db8::9',
      port: 5555,
      family: 'IPv6',
    });
    expect(ctx.hostname).toBe('2001:db8::9');
    expect(ctx.port).toBe(5555);
    expect(ctx.proxy).toBe(medium.remote);
    expect(ctx.logger).toBe(ctx.logger);
    expect(ctx.toString()).toBe('[2001:db8::9]:5555');
  });

  it('keeps each yes/no of its state apart', () => {
    const { connection } = testConnection();
    const names = [
      'tlsPending',
      'held',
      'chunkSeen',
      'inputSeen',
      'inputPaused',
      'busy',
      'waitsForHandlers',
    ] as const;
    const state = () => names.map((name) => connection[name]);
    expect(state()).toEqual([false, false, false, false, false, false, true]);
    for (const name of names) {
      const before = state();
      connection[name] = !connection[name];
      expect(state()).toEqual(
        before.map((value, i) => (names[i] === name ? !value : value)),
      );
    }
  });

  it('keeps timers, an error and a decoder apart from its own fields', () => {
    const { connection } = testConnection();
    expect(connection.lingerTimer).toBeUndefined();
    expect(connection.drainTimer).toBeUndefined();
    expect(connection.lastError).toBeUndefined();
    expect(connection.decoder).toBeNull();
    connection.release();
    const timer = setTimeout(() => undefined, 1000);
    connection.lingerTimer = timer;
    connection.lastError = new Error('reset');
    expect(connection.lingerTimer).toBe(timer);
    expect(connection.drainTimer).toBeUndefined();
    expect(connection.lastError?.message).toBe('reset');
    connection.release();
    expect(connection.lingerTimer).toBeUndefined();
  });
});
