import { describe, expect, it } from '@jest/globals';
import { CLUSTER_LIMITS } from '../../lib/cluster/cluster-limits.js';
import {
  decodeBan,
  decodeHeldCounts,
  decodeMessage,
  decodeNodeId,
  decodePresence,
} from '../../lib/redis/cluster-message.js';
import { ClusterMessageError } from '../../lib/redis/index.js';

/**
 * What the Redis adapter reads from Redis is checked field by field: each
 * forged or corrupted message below is refused whole with a
 * ClusterMessageError (the adapter drops and counts it), and none of them
 * reaches an object's prototype.
 */

/** A message of this version from process `b`, with `fields`. */
function message(fields: Record<string, unknown>): string {
  return JSON.stringify({ v: 1, from: 'b', ...fields });
}

const request = (command: Record<string, unknown>) =>
  message({ kind: 'request', id: 'r1', command });
const disconnect = (reason: unknown) =>
  request({ type: 'disconnect', id: 'c1', reason });
const held = (counts: string) =>
  `{"v":1,"from":"b","kind":"held","reset":false,"counts":${counts}}`;
const entry = (fields: Record<string, unknown>) => ({
  target: '10.0.0.0/8',
  family: 'ipv4',
  createdAt: 1,
  ...fields,
});
const ban = (fields: Record<string, unknown>) =>
  message({
    kind: 'bans',
    change: { type: 'ban', ban: { kick: true, entry: entry(fields) } },
  });
const event = (data: string) =>
  `{"v":1,"from":"b","kind":"event","event":"tick","data":${data}}`;
const broadcast = (fields: Record<string, unknown>) =>
  message({ kind: 'broadcast', broadcast: fields });
const long = (n: number) => 'x'.repeat(n);
const nested = (depth: number) => '['.repeat(depth) + ']'.repeat(depth);

const REFUSED: Array<[string, string, string]> = [
  // Not a message at all.
  ['not JSON', 'garbage', 'message is not JSON'],
  ['empty text', '', 'message is not JSON'],
  ['JSON null', 'null', 'message is not an object: null'],
  ['a number', '42', 'message is not an object: 42'],
  ['a list', '[]', 'message is not an object: a list of 0'],
  [
    'longer than the limit',
    long(CLUSTER_LIMITS.messageLength + 1),
    `message is longer than ${CLUSTER_LIMITS.messageLength} characters`,
  ],
  // The envelope.
  [
    'no version',
    '{"kind":"reply","from":"b","id":"r","ok":true}',
    'message.v is missing',
  ],
  [
    'the version as a string',
    '{"v":"1","kind":"reply","from":"b","id":"r","ok":true}',
    'message.v is an unsupported message version "1"',
  ],
  ['no kind', message({}), 'message.kind is not a known message kind'],
  [
    'an unknown kind',
    message({ kind: 'gossip' }),
    'message.kind is not a known message kind: "gossip"',
  ],
  [
    'the kind constructor',
    message({ kind: 'constructor' }),
    'message.kind is not a known message kind: "constructor"',
  ],
  [
    'the kind __proto__',
    message({ kind: '__proto__' }),
    'message.kind is not a known message kind: "__proto__"',
  ],
  [
    'the kind toString',
    message({ kind: 'toString' }),
    'message.kind is not a known message kind',
  ],
  [
    'a kind that is not a string',
    message({ kind: 5 }),
    'message.kind is not a known message kind: 5',
  ],
  [
    'a sender that is not a string',
    JSON.stringify({ v: 1, from: 5, kind: 'reply', id: 'r', ok: true }),
    'message.from is not a string: 5',
  ],
  [
    'a huge sender',
    JSON.stringify({
      v: 1,
      from: long(5000),
      kind: 'reply',
      id: 'r',
      ok: true,
    }),
    'message.from is longer than 1024 characters: "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"… (5000 characters)',
  ],
  [
    'an unknown field',
    message({ kind: 'reply', id: 'r', ok: true, extra: 1 }),
    'message has an unknown field "extra"',
  ],
  [
    'a field __proto__',
    '{"v":1,"from":"b","kind":"reply","id":"r","ok":true,"__proto__":{"polluted":true}}',
    'message has an unknown field "__proto__"',
  ],
  [
    'a field constructor',
    message({ kind: 'reply', id: 'r', ok: true, constructor: 'x' }),
    'message has an unknown field "constructor"',
  ],
  // Disconnect reasons outside DisconnectReason.
  [
    'the reason constructor',
    disconnect('constructor'),
    'message.command.reason is not a disconnect reason: "constructor"',
  ],
  [
    'the reason __proto__',
    disconnect('__proto__'),
    'message.command.reason is not a disconnect reason: "__proto__"',
  ],
  [
    'the reason hasOwnProperty',
    disconnect('hasOwnProperty'),
    'message.command.reason is not a disconnect reason',
  ],
  [
    'an unknown reason',
    disconnect('banana'),
    'message.command.reason is not a disconnect reason: "banana"',
  ],
  [
    'an empty reason',
    disconnect(''),
    'message.command.reason is not a disconnect reason: ""',
  ],
  [
    'a reason that is a number',
    disconnect(5),
    'message.command.reason is not a disconnect reason: 5',
  ],
  [
    'no reason',
    request({ type: 'disconnect', id: 'c1' }),
    'message.command.reason is missing',
  ],
  [
    'the command constructor',
    request({ type: 'constructor', id: 'c1' }),
    'message.command.type is not a known command: "constructor"',
  ],
  [
    'a huge room name',
    request({ type: 'join', id: 'c1', room: long(1025) }),
    'message.command.room is longer than 1024 characters',
  ],
  [
    'a request id that is not a string',
    message({
      kind: 'request',
      id: null,
      command: { type: 'leave', id: 'c', room: 'r' },
    }),
    'message.id is not a string: null',
  ],
  [
    'a reply whose ok is a string',
    message({ kind: 'reply', id: 'r', ok: 'yes' }),
    'message.ok is not a boolean: "yes"',
  ],
  // Held counts.
  [
    'an infinite count',
    held('{"10.0.0.1":1e999}'),
    'message.counts["10.0.0.1"] is not a whole number from 0 to 9007199254740991: Infinity',
  ],
  [
    'a negative count',
    held('{"10.0.0.1":-1}'),
    'message.counts["10.0.0.1"] is not a whole number from 0 to 9007199254740991: -1',
  ],
  [
    'a fractional count',
    held('{"10.0.0.1":1.5}'),
    'is not a whole number from 0 to 9007199254740991: 1.5',
  ],
  [
    'a count past 2^53',
    held('{"10.0.0.1":9007199254740992}'),
    'is not a whole number from 0 to 9007199254740991: 9007199254740992',
  ],
  [
    'a count as a string',
    held('{"10.0.0.1":"3"}'),
    'is not a whole number from 0 to 9007199254740991: "3"',
  ],
  [
    'a count that is null',
    held('{"10.0.0.1":null}'),
    'is not a whole number from 0 to 9007199254740991: null',
  ],
  [
    'an address __proto__',
    held('{"__proto__":1}'),
    'message.counts["__proto__"] is a forbidden key',
  ],
  [
    'an address constructor',
    held('{"constructor":1}'),
    'message.counts["constructor"] is not an IP address: "constructor"',
  ],
  [
    'an address that is not one',
    held('{"not-an-address":1}'),
    'is not an IP address: "not-an-address"',
  ],
  [
    'a huge address',
    held(`{"${long(100)}":1}`),
    'is longer than 64 characters',
  ],
  [
    'counts that are a list',
    held('[1,2]'),
    'message.counts is not an object: a list of 2',
  ],
  [
    'too many counts',
    held(
      JSON.stringify(
        Object.fromEntries(
          Array.from({ length: CLUSTER_LIMITS.entries + 1 }, (_, i) => [
            `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`,
            1,
          ]),
        ),
      ),
    ),
    `message.counts has more than ${CLUSTER_LIMITS.entries} entries`,
  ],
  [
    'a reset that is a number',
    message({ kind: 'held', counts: {}, reset: 1 }),
    'message.reset is not a boolean: 1',
  ],
  // Bans.
  [
    'a target that is not an address',
    ban({ target: 'nonsense' }),
    'message.change.ban.entry.target is not an IP address or CIDR range: "nonsense"',
  ],
  [
    'a prefix past the family',
    ban({ target: '10.0.0.0/33' }),
    'is not an IP address or CIDR range: "10.0.0.0/33"',
  ],
  [
    'an address with a zone',
    ban({ target: 'fe80::1%eth0', family: 'ipv6' }),
    'is not an IP address or CIDR range',
  ],
  [
    'a target of the other family',
    ban({ target: '2001:db8::/32' }),
    'message.change.ban.entry has a target that is not ipv4: "2001:db8::/32"',
  ],
  [
    'a negative creation time',
    ban({ createdAt: -5 }),
    'message.change.ban.entry.createdAt is not a number from 0 to 8640000000000000: -5',
  ],
  [
    'an infinite expiry',
    ban({ expiresAt: 'Infinity' }),
    'message.change.ban.entry.expiresAt is not a number',
  ],
  [
    'a huge ban reason',
    ban({ reason: long(CLUSTER_LIMITS.reasonLength + 1) }),
    'message.change.ban.entry.reason is longer than 4096 characters',
  ],
  [
    'the ban change constructor',
    message({ kind: 'bans', change: { type: 'constructor' } }),
    'message.change.type is not a known ban change: "constructor"',
  ],
  // Events.
  [
    'event data with a key __proto__',
    event('{"a":{"__proto__":{"polluted":true}}}'),
    'message.data["a"]["__proto__"] is forbidden',
  ],
  [
    'event data nesting too deep',
    event(nested(CLUSTER_LIMITS.jsonDepth + 1)),
    `nests deeper than ${CLUSTER_LIMITS.jsonDepth} levels`,
  ],
  [
    'an infinite number in event data',
    event('[1e999]'),
    'message.data[0] is not a finite number: Infinity',
  ],
  [
    'an empty event name',
    message({ kind: 'event', event: '', data: null }),
    'message.event is empty',
  ],
  // Broadcasts.
  [
    'both text and bytes',
    broadcast({ text: 'a', bytes: 'YQ==' }),
    'message.broadcast has both or neither of "text" and "bytes"',
  ],
  [
    'bytes that are not base64',
    broadcast({ bytes: '!!!!' }),
    'message.broadcast.bytes is not base64: "!!!!"',
  ],
  [
    'the encoding constructor',
    broadcast({ text: 'a', encoding: 'constructor' }),
    'message.broadcast.encoding is not a Buffer encoding: "constructor"',
  ],
  [
    'a room that is null',
    broadcast({ text: 'a', room: null }),
    'message.broadcast.room is not a string: null',
  ],
  [
    'too many exceptions',
    broadcast({
      text: 'a',
      except: Array(CLUSTER_LIMITS.entries + 1).fill('x'),
    }),
    `message.broadcast.except has more than ${CLUSTER_LIMITS.entries} items`,
  ],
];

describe('Cluster message validation', () => {
  it.each(REFUSED)('refuses %s', (_, text, problem) => {
    let error: unknown;
    try {
      decodeMessage(text);
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(ClusterMessageError);
    expect((error as Error).message).toContain(problem);
    // The error message stays a line of bounded length, whatever came in.
    expect((error as Error).message.length).toBeLessThan(300);
    expect((error as Error).message).not.toContain('\n');
  });

  it('pollutes no prototype, whatever it refused', () => {
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    expect(Object.prototype).not.toHaveProperty('polluted');
  });

  it('reads held counts into an object without a prototype', () => {
    const read = decodeMessage(held('{"10.0.0.1":2,"::1":0,"":1}'));
    expect(read.kind).toBe('held');
    const counts = read.kind === 'held' ? read.counts : {};
    expect(Object.getPrototypeOf(counts)).toBeNull();
    expect({ ...counts }).toEqual({ '10.0.0.1': 2, '::1': 0, '': 1 });
  });

  it('takes every disconnect reason, and only those', () => {
    for (const reason of ['kicked', 'quit', 'server_shutdown', 'error']) {
      expect(decodeMessage(disconnect(reason))).toMatchObject({
        command: { type: 'disconnect', reason },
      });
    }
  });

  it('passes event data on as it came, names like constructor included', () => {
    const data = { constructor: 1, list: [{ toString: 'x' }], deep: null };
    expect(decodeMessage(event(JSON.stringify(data)))).toEqual({
      kind: 'event',
      from: 'b',
      event: 'tick',
      data,
    });
    expect(() =>
      decodeMessage(event(nested(CLUSTER_LIMITS.jsonDepth))),
    ).not.toThrow();
  });

  it('checks held counts read back from a Redis hash', () => {
    expect({ ...decodeHeldCounts({ '10.0.0.1': '2', '::1': '0' }) }).toEqual({
      '10.0.0.1': 2,
      '::1': 0,
    });
    for (const [counts, problem] of [
      [{ '10.0.0.1': '-1' }, 'counts["10.0.0.1"] is not a whole number: "-1"'],
      [{ '10.0.0.1': 'NaN' }, 'is not a whole number: "NaN"'],
      [{ '10.0.0.1': '1e3' }, 'is not a whole number: "1e3"'],
      [{ '10.0.0.1': '99999999999999999' }, 'is longer than 16 characters'],
      [{ '10.0.0.1': 3 }, 'is not a string: 3'],
      [{ constructor: '1' }, 'counts["constructor"] is not an IP address'],
      [
        JSON.parse('{"__proto__":"1"}'),
        'counts["__proto__"] is a forbidden key',
      ],
      [null, 'counts is not an object: null'],
    ] as const) {
      expect(() => decodeHeldCounts(counts)).toThrow(ClusterMessageError);
      expect(() => decodeHeldCounts(counts)).toThrow(problem);
    }
  });

  it('checks presence entries, stored bans and process ids', () => {
    const presence = {
      id: 'c1',
      node: 'n1',
      address: '203.0.113.9',
      port: 4000,
      connectedAt: 1,
      rooms: ['hall'],
    };
    const refusedPresence: Array<[Record<string, unknown> | string, string]> = [
      [
        { ...presence, port: -1 },
        'presence.port is not a whole number from 0 to 65535: -1',
      ],
      [{ ...presence, port: 70_000 }, 'presence.port is not a whole number'],
      [
        { ...presence, connectedAt: -1 },
        'presence.connectedAt is not a number',
      ],
      [
        { ...presence, address: 'example.com' },
        'presence.address is not an IP address',
      ],
      [{ ...presence, rooms: [1] }, 'presence.rooms[0] is not a string: 1'],
      [
        { ...presence, rooms: Array(CLUSTER_LIMITS.entries + 1).fill('r') },
        'presence.rooms has more than',
      ],
      [{ ...presence, id: long(2000) }, 'presence.id is longer than 1024'],
      [
        { ...presence, shared: [1] },
        'presence.shared is not an object: a list of 1',
      ],
      [
        JSON.stringify(presence).replace(
          '}',
          ',"shared":{"__proto__":{"x":1}}}',
        ),
        'presence.shared["__proto__"] is forbidden',
      ],
      [{ ...presence, admin: true }, 'presence has an unknown field "admin"'],
    ];
    for (const [value, problem] of refusedPresence) {
      const text = typeof value === 'string' ? value : JSON.stringify(value);
      expect(() => decodePresence(text)).toThrow(ClusterMessageError);
      expect(() => decodePresence(text)).toThrow(problem);
    }
    expect(decodePresence(JSON.stringify(presence))).toEqual(presence);

    expect(() =>
      decodeBan(JSON.stringify({ kick: 'yes', entry: entry({}) })),
    ).toThrow('ban.kick is not a boolean: "yes"');
    expect(() =>
      decodeBan(JSON.stringify({ kick: true, entry: entry({ target: 'x' }) })),
    ).toThrow('ban.entry.target is not an IP address or CIDR range: "x"');
    expect(decodeBan(JSON.stringify({ kick: true, entry: entry({}) }))).toEqual(
      { kick: true, entry: entry({}) },
    );

    expect(decodeNodeId('host/1/abc')).toBe('host/1/abc');
    expect(() => decodeNodeId('')).toThrow('node is empty');
    expect(() => decodeNodeId(long(1025))).toThrow(
      'node is longer than 1024 characters',
    );
  });
});
