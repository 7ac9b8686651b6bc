import 'reflect-metadata';
import {
  afterEach,
  beforeAll,
  describe,
  expect,
  it,
  jest,
} from '@jest/globals';
import { Logger } from '@nestjs/common';
import { PassThrough, Writable } from 'node:stream';
import { setImmediate } from 'node:timers/promises';
import { ConnectionContext, ConnectionRegistry } from '../../lib/index.js';
import { closedOutput } from '../support/redis-adapter-fixtures.js';
import {
  releaseTestConnections,
  testConnection,
  TestMedium,
} from '../support/test-connection.js';

/** A context on a closed test medium that claims a remote address. */
function context(
  remote = '::ffff:203.0.113.9',
  port = 5000,
): ConnectionContext {
  return testConnection({
    medium: new TestMedium(closedOutput(), remote, port),
  }).ctx;
}

/** A context over `output`, recording its disconnects and drain deadlines. */
function over(
  output: Writable,
  settings: { encoding?: BufferEncoding; maxOutputBuffer?: number } = {},
) {
  const { connection, ctx, owner } = testConnection({
    medium: new TestMedium(output),
    settings,
  });
  const h = { disconnects: owner.disconnects, drains: 0 };
  // Counts the drain deadlines the connection arms.
  let timer: NodeJS.Timeout | undefined;
  Object.defineProperty(connection, 'drainTimer', {
    get: () => timer,
    set: (value: NodeJS.Timeout | undefined) => {
      if (value !== undefined) h.drains++;
      timer = value;
    },
  });
  return { ctx, h };
}

afterEach(releaseTestConnections);
beforeAll(() => Logger.overrideLogger(false));

describe('ConnectionContext', () => {
  it('unmaps IPv4-mapped addresses and brackets IPv6 names', () => {
    const mapped = context('::ffff:203.0.113.9', 5000);
    expect(mapped.hostname).toBe('203.0.113.9');
    expect(mapped.address).toEqual({
      address: '::ffff:203.0.113.9',
      port: 5000,
      family: 'IPv6',
    });
    expect(mapped.toString()).toBe('203.0.113.9:5000');
    expect(context('2001:db8::1', 7).toString()).toBe('[2001:db8::1]:7');
    expect(context('2001:db8::1', 7).logger).toBeDefined();
  });

  it('has a unique id and compares by identity', () => {
    const a = context();
    const b = context();
    expect(a.id).not.toBe(b.id);
    expect(a).not.toBe(b);
    expect(new Set([a, b, a]).size).toBe(2);
  });

  it('returns false instead of throwing when the socket cannot be written', () => {
    const ctx = context();
    expect(ctx.sendString('x')).toBe(false);
    expect(ctx.sendBytes(Buffer.from('x'))).toBe(false);
    expect(ctx.sendRaw('x')).toBe(false);
  });
});

describe('ConnectionContext sends', () => {
  /** A context over an in-memory stream, with everything written collected. */
  function wired(encoding: BufferEncoding = 'utf8') {
    const stream = new PassThrough();
    const { ctx, h } = over(stream, { encoding, maxOutputBuffer: 1 << 20 });
    // Output leaves at the end of the turn (one write per turn).
    const written = async () => {
      await setImmediate();
      return (stream.read() as Buffer | null) ?? Buffer.alloc(0);
    };
    return { ctx, written, host: h };
  }

  it('ends lines with the two bytes CR LF whatever the encoding and size', async () => {
    const { ctx, written } = wired();
    expect(ctx.sendString('héllo')).toBe(true);
    expect(await written()).toEqual(Buffer.from('héllo\r\n'));
    ctx.sendBytes(Buffer.from('abc'));
    expect(await written()).toEqual(Buffer.from('abc\r\n'));
    const big = Buffer.alloc(20_000, 0x62);
    ctx.sendBytes(big);
    expect(await written()).toEqual(Buffer.concat([big, Buffer.from('\r\n')]));
    ctx.sendBytes('hi', 'utf16le');
    expect(await written()).toEqual(
      Buffer.concat([Buffer.from('hi', 'utf16le'), Buffer.from('\r\n')]),
    );
    ctx.sendRaw(Buffer.from([1, 2, 3]));
    expect(await written()).toEqual(Buffer.from([1, 2, 3]));
  });

  it("encodes text with the transport's encoding", async () => {
    const { ctx, written } = wired('latin1');
    ctx.sendString('é');
    expect(await written()).toEqual(Buffer.from([0xe9, 0x0d, 0x0a]));
    ctx.sendRaw('é');
    expect(await written()).toEqual(Buffer.from([0xe9]));
  });

  it('asks the transport to drop a client whose unsent output passes the cap', () => {
    // A peer that never reads: the first write never completes.
    const stalled = new Writable({ write: () => undefined });
    const { ctx, h } = over(stalled);
    expect(ctx.sendRaw(Buffer.alloc(1000))).toBe(true);
    expect(h.disconnects).toEqual([]);
    expect(ctx.sendRaw(Buffer.alloc(100))).toBe(false);
    expect(h.disconnects).toEqual([`${ctx.id}:slow_consumer`]);
  });

  it('starts the drain deadline once output passes the high-water mark', () => {
    const stalled = new Writable({
      write: () => undefined,
      highWaterMark: 1000,
    });
    const { ctx, h } = over(stalled, { maxOutputBuffer: 10_000 });
    expect(ctx.sendRaw(Buffer.alloc(500))).toBe(true);
    expect(h.drains).toBe(0);
    expect(ctx.sendRaw(Buffer.alloc(600))).toBe(true);
    expect(h.drains).toBe(1);
    // While the deadline is armed, no second one.
    expect(ctx.sendRaw(Buffer.alloc(600))).toBe(true);
    expect(h.drains).toBe(1);
    expect(ctx.sendRaw(Buffer.alloc(9000))).toBe(false);
    expect(h.disconnects).toEqual([`${ctx.id}:slow_consumer`]);
  });

  it('keeps typed per-connection data', () => {
    const ctx = context() as unknown as ConnectionContext<{ name?: string }>;
    expect(ctx.data).toEqual({});
    ctx.data.name = 'Ada';
    expect(ctx.data.name).toBe('Ada');
    ctx.data = { name: 'Bob' };
    expect(ctx.data).toEqual({ name: 'Bob' });
  });
});

describe('ConnectionRegistry rooms', () => {
  function live(...contexts: ConnectionContext[]) {
    const registry = new ConnectionRegistry();
    for (const ctx of contexts) registry.add(ctx);
    return registry;
  }

  it('joins and leaves rooms, which exist while they have members', () => {
    const [a, b] = [context('10.0.0.1'), context('10.0.0.2')];
    const registry = live(a, b);
    expect(registry.join(a, 'tavern')).toBe(true);
    expect(registry.join(a, 'tavern')).toBe(false);
    expect(registry.join(b, 'tavern')).toBe(true);
    expect(registry.join(b, 'forge')).toBe(true);
    expect(registry.rooms()).toEqual(['tavern', 'forge']);
    expect(registry.members('tavern')).toEqual([a, b]);
    expect(registry.roomSize('tavern')).toBe(2);
    expect([...b.rooms]).toEqual(['tavern', 'forge']);
    expect(registry.leave(a, 'tavern')).toBe(true);
    expect(registry.leave(a, 'tavern')).toBe(false);
    expect(registry.leave(b, 'forge')).toBe(true);
    expect(registry.rooms()).toEqual(['tavern']);
    expect(registry.members('forge')).toEqual([]);
    expect(registry.roomSize('forge')).toBe(0);
    expect([...a.rooms]).toEqual([]);
  });

  it('refuses to seat a connection that is not live', () => {
    const registry = live();
    const stranger = context();
    expect(registry.join(stranger, 'tavern')).toBe(false);
    expect(registry.rooms()).toEqual([]);
  });

  it('takes a removed connection out of every room, leaving ctx.rooms readable', () => {
    const [a, b] = [context('10.0.0.1'), context('10.0.0.2')];
    const registry = live(a, b);
    registry.join(a, 'tavern');
    registry.join(a, 'forge');
    registry.join(b, 'tavern');
    registry.delete(a);
    expect(registry.rooms()).toEqual(['tavern']);
    expect(registry.members('tavern')).toEqual([b]);
    expect([...a.rooms]).toEqual(['tavern', 'forge']);
    expect(registry.join(a, 'tavern')).toBe(false);
  });

  it('broadcasts to a room only, with several exceptions, and bytes as given', () => {
    const [a, b, c, d] = ['10.0.0.1', '10.0.0.2', '10.0.0.3', '10.0.0.4'].map(
      (ip) => context(ip),
    );
    const registry = live(a, b, c, d);
    for (const ctx of [a, b, c]) registry.join(ctx, 'tavern');
    const sends = [a, b, c, d].map((ctx) =>
      jest.spyOn(ctx, 'sendRaw').mockImplementation(() => true),
    );
    expect(
      registry.broadcast(Uint8Array.of(0xff, 0x41), {
        room: 'tavern',
        except: [a, b],
      }),
    ).toBe(1);
    expect(sends.map((send) => send.mock.calls.length)).toEqual([0, 0, 1, 0]);
    expect(sends[2].mock.calls[0][0]).toEqual(
      Buffer.from([0xff, 0x41, 0x0d, 0x0a]),
    );
    expect(registry.broadcast('x', { room: 'nowhere' })).toBe(0);
    expect(registry.broadcast('x', { except: new Set([d]) })).toBe(3);
  });
});

describe('ConnectionRegistry', () => {
  it('holds contexts by id, in insertion order, and filters them', () => {
    const registry = new ConnectionRegistry();
    const [a, b, c] = [
      context('10.0.0.1'),
      context('10.0.0.2'),
      context('10.0.0.3'),
    ];
    registry.add(a);
    registry.add(b);
    registry.add(c);
    expect(registry.size).toBe(3);
    expect(registry.get(b.id)).toBe(b);
    expect(registry.has('nope')).toBe(false);
    expect([...registry]).toEqual([a, b, c]);
    expect([...registry.values()]).toEqual([a, b, c]);
    expect(registry.filter((ctx) => ctx.hostname !== '10.0.0.2')).toEqual([
      a,
      c,
    ]);
    registry.delete(b);
    expect([...registry]).toEqual([a, c]);
  });

  it('broadcasts one encoded buffer to all but the excluded, counting successful sends', () => {
    const registry = new ConnectionRegistry();
    const [a, b, c] = [
      context('10.0.0.1'),
      context('10.0.0.2'),
      context('10.0.0.3'),
    ];
    for (const ctx of [a, b, c]) registry.add(ctx);
    const sends = [a, b, c].map((ctx) =>
      jest.spyOn(ctx, 'sendRaw').mockImplementation(() => ctx !== c),
    );
    expect(registry.broadcast('héllo', { except: a, encoding: 'latin1' })).toBe(
      1,
    );
    expect(sends[0]).not.toHaveBeenCalled();
    const [[buffer]] = sends[1].mock.calls as [[Buffer]];
    expect(buffer).toEqual(Buffer.from('héllo\r\n', 'latin1'));
    // The same buffer object for everyone: encoded once.
    expect(sends[2].mock.calls[0][0]).toBe(buffer);
  });
});

describe('ConnectionRegistry lookups by id', () => {
  it('finds connections added before and after the first lookup, and forgets removed ones', () => {
    const registry = new ConnectionRegistry();
    const [a, b, c] = [context(), context(), context()];
    registry.add(a);
    registry.add(b);
    expect(registry.get(a.id)).toBe(a);
    registry.add(c);
    expect(registry.has(c.id)).toBe(true);
    registry.delete(b);
    expect(registry.get(b.id)).toBeUndefined();
    expect(registry.size).toBe(2);
    expect([...registry]).toEqual([a, c]);
  });

  it('joins rooms and shares state without looking connections up by id', () => {
    const registry = new ConnectionRegistry();
    const ctx = context();
    registry.add(ctx);
    expect(registry.join(ctx, 'hall')).toBe(true);
    expect(registry.share(ctx, { name: 'Ann' })).toBe(true);
    expect(registry.join(context(), 'hall')).toBe(false);
    expect(registry.members('hall')).toEqual([ctx]);
  });
});
