import 'reflect-metadata';
import { describe, expect, it, jest } from '@jest/globals';
import { Socket } from 'node:net';
import { ConnectionContext, ConnectionRegistry } from '../../lib/index.js';
import type { ConnectionHost } from '../../lib/connection-context.js';

/** A host that records what the contexts ask of it. */
function host(): ConnectionHost & { disconnects: string[] } {
  const disconnects: string[] = [];
  return {
    disconnects,
    encoding: 'utf8',
    maxOutputBuffer: 1024,
    disconnect: (ctx, reason) => void disconnects.push(`${ctx.id}:${reason}`),
    receive: () => undefined,
    receiveLine: () => undefined,
    lineOverflow: () => undefined,
    ended: () => undefined,
    closed: () => undefined,
    failed: () => undefined,
  };
}

function context(
  remote = '::ffff:203.0.113.9',
  port = 5000,
): ConnectionContext {
  const socket = new Socket();
  Object.defineProperty(socket, 'remoteAddress', { value: remote });
  Object.defineProperty(socket, 'remotePort', { value: port });
  Object.defineProperty(socket, 'remoteFamily', {
    value: remote.includes(':') ? 'IPv6' : 'IPv4',
  });
  return new ConnectionContext(socket, host());
}

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
    ctx.socket.destroy();
    expect(ctx.sendString('x')).toBe(false);
    expect(ctx.sendBytes(Buffer.from('x'))).toBe(false);
    expect(ctx.sendRaw('x')).toBe(false);
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
