import { describe, expect, it } from '@jest/globals';
import {
  type ClusterMessage,
  decodeBan,
  decodeMessage,
  decodePresence,
  encodeBan,
  encodeMessage,
  encodePresence,
} from '../../lib/redis/cluster-message.js';
import { ClusterMessageError, RedisAdapter } from '../../lib/redis/index.js';
import { RedisKeys } from '../../lib/redis/redis-keys.js';

/** What the Redis adapter writes and reads: every kind survives the trip. */
describe('Redis adapter messages', () => {
  const entry = {
    target: '2001:db8::/32',
    family: 'ipv6' as const,
    reason: 'spam',
    createdAt: 1700000000000,
    expiresAt: 1700000060000,
  };
  const messages: ClusterMessage[] = [
    {
      kind: 'broadcast',
      from: 'a',
      broadcast: {
        data: 'héllo',
        room: 'hall',
        except: ['x', 'y'],
        encoding: 'latin1',
      },
    },
    { kind: 'event', from: 'a', event: 'tick', data: { n: [1, null] } },
    { kind: 'event', from: 'a', event: 'tock', data: null },
    {
      kind: 'bans',
      from: 'a',
      change: { type: 'ban', ban: { entry, kick: true } },
    },
    { kind: 'bans', from: 'a', change: { type: 'unban', entry } },
    { kind: 'bans', from: 'a', change: { type: 'clear' } },
    {
      kind: 'request',
      from: 'a',
      id: 'r1',
      command: { type: 'disconnect', id: 'c1', reason: 'kicked' },
    },
    {
      kind: 'request',
      from: 'a',
      id: 'r2',
      command: { type: 'join', id: 'c1', room: 'hall' },
    },
    { kind: 'reply', from: 'b', id: 'r1', ok: true },
  ];

  it.each(messages.map((m): [string, ClusterMessage] => [m.kind, m]))(
    'round-trips a %s message',
    (_, message) => {
      expect(decodeMessage(encodeMessage(message))).toEqual(message);
    },
  );

  it('carries bytes as bytes', () => {
    const bytes = Uint8Array.of(0xff, 0x00, 0x41);
    const decoded = decodeMessage(
      encodeMessage({
        kind: 'broadcast',
        from: 'a',
        broadcast: { data: bytes },
      }),
    );
    expect(decoded).toEqual({
      kind: 'broadcast',
      from: 'a',
      broadcast: { data: Buffer.from(bytes) },
    });
  });

  it.each([
    ['not json', 'message is not JSON'],
    ['[]', 'message is not an object: a list of 0'],
    [
      '{"v":2,"kind":"event","from":"a"}',
      'message.v is an unsupported message version 2 (this process speaks 1)',
    ],
    ['{"v":1,"kind":"event","from":""}', 'message.from is empty'],
    [
      '{"v":1,"kind":"gossip","from":"a"}',
      'message.kind is not a known message kind: "gossip"',
    ],
    [
      '{"v":1,"kind":"event","from":"a","event":"x"}',
      'message.data is missing',
    ],
    [
      '{"v":1,"kind":"broadcast","from":"a","broadcast":{}}',
      'message.broadcast has both or neither of "text" and "bytes"',
    ],
    [
      '{"v":1,"kind":"broadcast","from":"a","broadcast":{"text":"x","encoding":"klingon"}}',
      'message.broadcast.encoding is not a Buffer encoding: "klingon"',
    ],
    [
      '{"v":1,"kind":"broadcast","from":"a","broadcast":{"text":"x","except":[1]}}',
      'message.broadcast.except[0] is not a string: 1',
    ],
    [
      '{"v":1,"kind":"request","from":"a","id":"r","command":{"type":"explode","id":"c"}}',
      'message.command.type is not a known command: "explode"',
    ],
    ['{"v":1,"kind":"reply","from":"a","id":"r"}', 'message.ok is missing'],
    [
      '{"v":1,"kind":"bans","from":"a","change":{"type":"ban","ban":{"kick":true,"entry":{"target":"10.0.0.1","family":"ipx","createdAt":1}}}}',
      'message.change.ban.entry.family is not ipv4 or ipv6: "ipx"',
    ],
  ])('refuses %s with a clear error', (text, message) => {
    expect(() => decodeMessage(text)).toThrow(ClusterMessageError);
    expect(() => decodeMessage(text)).toThrow(message);
  });

  it('round-trips presence entries and stored bans, and refuses bad ones', () => {
    const presence = {
      id: 'c1',
      node: 'host/1/abc',
      address: '::1',
      port: 4000,
      connectedAt: 1,
      rooms: ['hall'],
      shared: { name: 'alice' },
    };
    expect(decodePresence(encodePresence(presence))).toEqual(presence);
    const { shared: _shared, ...bare } = presence;
    void _shared;
    expect(decodePresence(encodePresence(bare))).toEqual(bare);
    expect(() =>
      decodePresence(JSON.stringify({ ...presence, rooms: 'hall' })),
    ).toThrow('presence.rooms is not a list: "hall"');
    expect(() =>
      decodePresence(JSON.stringify({ ...presence, port: 'x' })),
    ).toThrow('presence.port is not a whole number from 0 to 65535: "x"');
    const ban = { entry, kick: false };
    expect(decodeBan(encodeBan(ban))).toEqual(ban);
    expect(() => decodeBan('{"entry":{}}')).toThrow(
      'ban.entry.target is missing',
    );
  });
});

describe('RedisAdapter options', () => {
  it.each([
    [{ prefix: '' }, '"prefix" must be a non-empty string'],
    [{ prefix: 'a{b}' }, 'may not contain'],
    [{ prefix: 'game*' }, 'may not contain'],
    [{ heartbeatInterval: 0 }, '"heartbeatInterval" must be a positive number'],
    [
      { requestTimeout: Number.NaN },
      '"requestTimeout" must be a positive number',
    ],
    [
      { heartbeatInterval: 1000, presenceTtl: 1500 },
      '"presenceTtl" (1500 ms) must be at least twice "heartbeatInterval" (1000 ms)',
    ],
  ])('refuses %j', (options, message) => {
    expect(() => new RedisAdapter(options)).toThrow(message);
  });

  it('names every key under the prefix as a Redis Cluster hash tag', () => {
    const keys = new RedisKeys('mud');
    expect([
      keys.nodes,
      keys.all,
      keys.banPattern,
      keys.presence('n1'),
      keys.ban('10.0.0.0/8'),
      keys.node('n1'),
    ]).toEqual([
      '{mud}:nodes',
      '{mud}:all',
      '{mud}:ban:*',
      '{mud}:presence:n1',
      '{mud}:ban:10.0.0.0/8',
      '{mud}:node:n1',
    ]);
    const adapter = new RedisAdapter({ prefix: 'mud' });
    expect(adapter.nodeId).toMatch(/^.+\/\d+\/[0-9a-f]{6}$/);
    expect(adapter.available).toBe(false);
  });
});
