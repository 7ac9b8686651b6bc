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
import { Test } from '@nestjs/testing';
import { filter, firstValueFrom, timeout, toArray } from 'rxjs';
import {
  BlockListError,
  BlockListService,
  type BlockListChange,
} from '../../lib/block-list/block-list.service.js';
import type { ConnectionContext } from '../../lib/connection/connection-context.js';
import { ConnectionRegistry } from '../../lib/registry/connection.registry.js';
import { closedOutput } from '../support/redis-adapter-fixtures.js';
import {
  recordingOwner,
  testConnection,
  TestMedium,
  type RecordingOwner,
} from '../support/test-connection.js';

/** An owner whose contexts record the disconnects asked of them. */
function host(): { host: RecordingOwner; disconnects: string[] } {
  return { host: recordingOwner(), disconnects: [] };
}

/** A context on a closed test medium that claims the remote address. */
function context(
  remote: string,
  h: { host: RecordingOwner; disconnects: string[] },
): ConnectionContext {
  const { connection, ctx } = testConnection({
    owner: h.host,
    medium: new TestMedium(closedOutput(), remote, 5000),
  });
  const disconnect = connection.disconnect;
  connection.disconnect = (reason) => {
    h.disconnects.push(`${ctx.hostname}:${reason}`);
    disconnect(reason);
  };
  return ctx;
}

/** The next change of a type; fails (rather than hangs) if none comes. */
function next(service: BlockListService, type: BlockListChange['type']) {
  return firstValueFrom(
    service.changes$.pipe(
      filter((change) => change.type === type),
      timeout(2000),
    ),
  );
}

const services: BlockListService[] = [];
/** A service torn down after the test, so no timer outlives it. */
function service(registry?: ConnectionRegistry): BlockListService {
  const made = new BlockListService(registry);
  services.push(made);
  return made;
}

beforeAll(() => Logger.overrideLogger(false));

afterEach(() => {
  for (const made of services.splice(0)) made.onModuleDestroy();
  jest.useRealTimers();
});

describe('BlockListService checks', () => {
  it('blocks a single IPv4 address and nothing else', () => {
    const list = service();
    expect(list.isBlocked('203.0.113.9')).toBe(false);
    const entry = list.ban('203.0.113.9');
    expect(entry.target).toBe('203.0.113.9');
    expect(entry.family).toBe('ipv4');
    expect(list.isBlocked('203.0.113.9')).toBe(true);
    expect(list.isBlocked('203.0.113.10')).toBe(false);
    expect(list.isBlocked('::1')).toBe(false);
    expect(list.match('203.0.113.9')).toBe(entry);
    expect(list.match('203.0.113.10')).toBeUndefined();
  });

  it('blocks an IPv4 CIDR range, normalising its host bits away', () => {
    const list = service();
    const entry = list.ban('10.1.2.3/8');
    expect(entry).toMatchObject({ target: '10.0.0.0/8', family: 'ipv4' });
    expect(list.isBlocked('10.0.0.0')).toBe(true);
    expect(list.isBlocked('10.255.255.255')).toBe(true);
    expect(list.isBlocked('11.0.0.0')).toBe(false);
    expect(list.isBlocked('9.255.255.255')).toBe(false);
    // A full-length prefix is the single address.
    expect(list.ban('192.0.2.1/32').target).toBe('192.0.2.1');
    expect(list.ban('0.0.0.0/0').target).toBe('0.0.0.0/0');
  });

  it('blocks a single IPv6 address', () => {
    const list = service();
    const entry = list.ban('0:0:0:0:0:0:0:1');
    expect(entry).toMatchObject({ target: '::1', family: 'ipv6' });
    expect(list.isBlocked('::1')).toBe(true);
    expect(list.isBlocked('::2')).toBe(false);
    expect(list.isBlocked('127.0.0.1')).toBe(false);
    expect(list.ban('::1/128').target).toBe('::1');
    expect(list.size).toBe(1);
  });

  it('blocks an IPv6 CIDR range, in its short lower-case form', () => {
    const list = service();
    const entry = list.ban('2001:DB8:0:0:ffff::1/32');
    expect(entry).toMatchObject({ target: '2001:db8::/32', family: 'ipv6' });
    expect(list.isBlocked('2001:db8::1')).toBe(true);
    expect(list.isBlocked('2001:db8:ffff:ffff:ffff:ffff:ffff:ffff')).toBe(true);
    expect(list.isBlocked('2001:db9::1')).toBe(false);
    expect(list.ban('fe80:0:0:1::/64').target).toBe('fe80:0:0:1::/64');
    expect(list.isBlocked('fe80:0:0:1:ffff::1')).toBe(true);
    expect(list.isBlocked('fe80:0:0:2::1')).toBe(false);
  });

  it('matches IPv4-mapped IPv6 addresses as IPv4, both ways', () => {
    const list = service();
    list.ban('203.0.113.9');
    expect(list.isBlocked('::ffff:203.0.113.9')).toBe(true);
    expect(list.isBlocked('::FFFF:203.0.113.9')).toBe(true);
    expect(list.isBlocked('::ffff:203.0.113.10')).toBe(false);
    expect(list.match('::ffff:203.0.113.9')?.target).toBe('203.0.113.9');

    const single = list.ban('::ffff:198.51.100.7');
    expect(single).toMatchObject({ target: '198.51.100.7', family: 'ipv4' });
    expect(list.isBlocked('198.51.100.7')).toBe(true);

    const range = list.ban('::ffff:10.0.0.0/104');
    expect(range).toMatchObject({ target: '10.0.0.0/8', family: 'ipv4' });
    expect(list.isBlocked('10.20.30.40')).toBe(true);
    expect(list.isBlocked('::ffff:10.20.30.40')).toBe(true);
    expect(list.isBlocked('11.0.0.1')).toBe(false);
    // Other spellings of a mapped address normalise the same way.
    expect(list.ban('0:0:0:0:0:ffff:c633:6407').target).toBe('198.51.100.7');
    expect(list.ban('::ffff:0:0/96').target).toBe('0.0.0.0/0');
  });

  it('answers false, never throws, for what is not an IP address', () => {
    const list = service();
    list.ban('0.0.0.0/0');
    list.ban('::/0');
    for (const address of [
      '',
      'localhost',
      '10.0.0.0/8',
      '1.2.3',
      '256.1.1.1',
      ' 1.2.3.4',
      ':::1',
      null,
      undefined,
      42,
      {},
    ]) {
      expect(list.isBlocked(address as string)).toBe(false);
      expect(list.match(address as string)).toBeUndefined();
    }
    expect(list.isBlocked('1.2.3.4')).toBe(true);
    // A zone is ignored: the remote host is still that address.
    expect(list.isBlocked('fe80::1%eth0')).toBe(true);
  });

  it('gives the most specific matching ban', () => {
    const list = service();
    const all = list.ban('::/0');
    const wide = list.ban('10.0.0.0/8');
    const narrow = list.ban('10.1.0.0/16');
    list.ban('10.2.0.0/16');
    expect(list.match('10.1.2.3')).toBe(narrow);
    expect(list.match('10.3.2.1')).toBe(wide);
    expect(list.match('192.0.2.1')).toBe(all);
    expect(list.match('2001:db8::1')).toBe(all);
    const again = list.ban('10.1.0.0/16');
    expect(list.match('10.1.2.3')).toBe(again);
  });
});

describe('BlockListService changes', () => {
  it('unbans a target written in any form, and says whether it was banned', () => {
    const list = service();
    const changes: BlockListChange[] = [];
    list.changes$.subscribe((change) => changes.push(change));
    const entry = list.ban('10.0.0.0/8');
    const other = list.ban('192.0.2.1');
    expect(list.unban('::ffff:10.9.9.9/104')).toBe(true);
    expect(list.isBlocked('10.1.1.1')).toBe(false);
    expect(list.isBlocked('192.0.2.1')).toBe(true);
    expect(list.unban('10.0.0.0/8')).toBe(false);
    expect(list.unban('203.0.113.9')).toBe(false);
    expect(list.list()).toEqual([other]);
    expect(changes).toEqual([
      { type: 'ban', entry },
      { type: 'ban', entry: other },
      { type: 'unban', entry },
    ]);
  });

  it('keeps a wider ban in force when a narrower one is lifted', () => {
    const list = service();
    list.ban('10.0.0.0/8');
    list.ban('10.1.2.3');
    expect(list.unban('10.1.2.3')).toBe(true);
    expect(list.isBlocked('10.1.2.3')).toBe(true);
  });

  it('replaces the ban of a target banned again', () => {
    jest.useFakeTimers({ now: 1_000_000 });
    const list = service();
    const first = list.ban('203.0.113.9', { reason: 'spam', duration: 1000 });
    list.ban('192.0.2.1');
    jest.setSystemTime(1_000_500);
    const second = list.ban('::ffff:203.0.113.9', { reason: 'flood' });
    expect(first).toEqual({
      target: '203.0.113.9',
      family: 'ipv4',
      reason: 'spam',
      createdAt: 1_000_000,
      expiresAt: 1_001_000,
    });
    expect(second).toEqual({
      target: '203.0.113.9',
      family: 'ipv4',
      reason: 'flood',
      createdAt: 1_000_500,
    });
    expect(list.size).toBe(2);
    expect(list.list().map((entry) => entry.target)).toEqual([
      '192.0.2.1',
      '203.0.113.9',
    ]);
    // The replaced ban was temporary; the new one is not, and no timer is left.
    expect(jest.getTimerCount()).toBe(0);
    jest.setSystemTime(1_002_000);
    expect(list.match('203.0.113.9')).toBe(second);
  });

  it('lists the bans in force, oldest first, with what they were given', () => {
    jest.useFakeTimers({ now: 5_000 });
    const list = service();
    expect(list.list()).toEqual([]);
    list.ban('2001:db8::/32', { reason: 'abuse' });
    jest.setSystemTime(6_000);
    list.ban('198.51.100.0/24', { duration: 60_000 });
    expect(list.list()).toEqual([
      {
        target: '2001:db8::/32',
        family: 'ipv6',
        reason: 'abuse',
        createdAt: 5_000,
      },
      {
        target: '198.51.100.0/24',
        family: 'ipv4',
        createdAt: 6_000,
        expiresAt: 66_000,
      },
    ]);
    expect(list.size).toBe(2);
    // A copy: changing it changes nothing.
    list.list().length = 0;
    expect(list.size).toBe(2);
    expect(Object.isFrozen(list.list()[0])).toBe(true);
  });

  it('clears every ban, emitting an unban for each', async () => {
    const list = service();
    const a = list.ban('10.0.0.0/8');
    const b = list.ban('::1', { duration: 60_000 });
    const unbans = firstValueFrom(
      list.changes$.pipe(
        filter((change) => change.type === 'unban'),
        toArray(),
      ),
    );
    list.clear();
    expect(list.size).toBe(0);
    expect(list.isBlocked('10.0.0.1')).toBe(false);
    expect(list.isBlocked('::1')).toBe(false);
    list.onModuleDestroy();
    expect(await unbans).toEqual([
      { type: 'unban', entry: a },
      { type: 'unban', entry: b },
    ]);
  });
});

describe('BlockListService validation', () => {
  it.each([
    ['an empty string', ''],
    ['a name', 'example.com'],
    ['a short IPv4 address', '10.0.0'],
    ['an IPv4 prefix over 32', '10.0.0.0/33'],
    ['an IPv6 prefix over 128', '2001:db8::/129'],
    ['a fractional prefix', '10.0.0.0/8.5'],
    ['a negative prefix', '10.0.0.0/-1'],
    ['an empty prefix', '10.0.0.0/'],
    ['a prefix in hex', '10.0.0.0/0x8'],
    ['two prefixes', '10.0.0.0/8/8'],
    ['a prefix alone', '/8'],
    ['an IPv6 zone', 'fe80::1%eth0'],
    ['padding', ' 10.0.0.1'],
    ['a number', 167772161],
    ['null', null],
    ['undefined', undefined],
    ['an object', { target: '10.0.0.1' }],
  ])('refuses %s as a target', (_, target) => {
    const list = service();
    const thrown = (() => {
      try {
        list.ban(target as string);
      } catch (err) {
        return err;
      }
      return undefined;
    })();
    expect(thrown).toBeInstanceOf(BlockListError);
    const error = thrown as BlockListError;
    expect(error).toBeInstanceOf(Error);
    expect(error.name).toBe('BlockListError');
    expect(error.target).toBe(target);
    expect(error.message).toMatch(/IPv4 or IPv6 address or CIDR range/);
    if (typeof target === 'string') {
      expect(error.message).toContain(JSON.stringify(target));
    }
    expect(() => list.unban(target as string)).toThrow(BlockListError);
    expect(list.size).toBe(0);
  });

  it.each([0, -1, NaN, Infinity, '50'])(
    'refuses %p as a duration',
    (duration) => {
      const list = service();
      expect(() =>
        list.ban('10.0.0.1', { duration: duration as number }),
      ).toThrow(RangeError);
      expect(list.size).toBe(0);
    },
  );
});

describe('BlockListService expiry', () => {
  it('lifts a temporary ban when it expires, emitting expire', async () => {
    const list = service();
    const permanent = list.ban('192.0.2.0/24');
    const temporary = list.ban('203.0.113.9', { duration: 50 });
    expect(list.isBlocked('203.0.113.9')).toBe(true);
    const expired = await next(list, 'expire');
    expect(expired).toEqual({ type: 'expire', entry: temporary });
    // The list has changed by the time the change is seen.
    expect(list.isBlocked('203.0.113.9')).toBe(false);
    expect(list.isBlocked('192.0.2.7')).toBe(true);
    expect(list.list()).toEqual([permanent]);
  });

  it('expires bans in order with one timer, re-armed as bans change', () => {
    jest.useFakeTimers({ now: 0 });
    const list = service();
    const changes: string[] = [];
    list.changes$.subscribe(({ type, entry }) =>
      changes.push(`${type} ${entry.target}`),
    );
    list.ban('10.0.0.1', { duration: 300 });
    list.ban('10.0.0.2', { duration: 100 });
    list.ban('10.0.0.3', { duration: 200 });
    list.ban('10.0.0.4', { duration: 200 });
    expect(jest.getTimerCount()).toBe(1);
    jest.advanceTimersByTime(100);
    expect(changes.slice(4)).toEqual(['expire 10.0.0.2']);
    expect(jest.getTimerCount()).toBe(1);
    jest.advanceTimersByTime(100);
    expect(changes.slice(5)).toEqual(['expire 10.0.0.3', 'expire 10.0.0.4']);
    // Lifting the last temporary ban leaves no timer behind.
    list.unban('10.0.0.1');
    expect(jest.getTimerCount()).toBe(0);
    expect(list.size).toBe(0);
  });

  it('never reports an expired ban, even when the timer is late', () => {
    jest.useFakeTimers({ now: 0 });
    const list = service();
    const changes: BlockListChange[] = [];
    list.changes$.subscribe((change) => changes.push(change));
    const entry = list.ban('10.0.0.0/8', { duration: 1000 });
    // The clock moves on but the timer has not run.
    jest.setSystemTime(1000);
    expect(list.isBlocked('10.0.0.1')).toBe(false);
    expect(list.match('10.0.0.1')).toBeUndefined();
    expect(list.list()).toEqual([]);
    expect(list.size).toBe(0);
    expect(changes).toEqual([
      { type: 'ban', entry },
      { type: 'expire', entry },
    ]);
    expect(jest.getTimerCount()).toBe(0);
  });

  it('waits past the longest timer delay for a long ban', () => {
    jest.useFakeTimers({ now: 0 });
    const list = service();
    const days = 40 * 24 * 60 * 60_000;
    const arm = jest.spyOn(globalThis, 'setTimeout');
    list.ban('10.0.0.1', { duration: days });
    // A longer delay would fire at once (checked before advancing the clock,
    // which would then spin through timers).
    expect(arm.mock.calls.map(([, delay]) => delay)).toEqual([2 ** 31 - 1]);
    jest.advanceTimersByTime(2 ** 31 - 1);
    expect(arm.mock.calls.map(([, delay]) => delay)).toEqual([
      2 ** 31 - 1,
      days - (2 ** 31 - 1),
    ]);
    arm.mockRestore();
    jest.advanceTimersByTime(days - 2 ** 31);
    expect(list.isBlocked('10.0.0.1')).toBe(true);
    expect(jest.getTimerCount()).toBe(1);
    jest.advanceTimersByTime(1);
    expect(list.size).toBe(0);
    expect(jest.getTimerCount()).toBe(0);
  });

  it('does not keep the process alive with its timer', () => {
    const list = service();
    const spy = jest.spyOn(globalThis, 'setTimeout');
    try {
      list.ban('10.0.0.1', { duration: 60_000 });
      expect(spy).toHaveBeenCalledTimes(1);
      const timer = spy.mock.results[0].value as NodeJS.Timeout;
      expect(timer.hasRef()).toBe(false);
    } finally {
      spy.mockRestore();
    }
  });

  it('stops its timer and completes changes$ on module destroy', () => {
    jest.useFakeTimers({ now: 0 });
    const list = service();
    let completed = false;
    list.changes$.subscribe({ complete: () => (completed = true) });
    list.ban('10.0.0.1', { duration: 100 });
    expect(jest.getTimerCount()).toBe(1);
    list.onModuleDestroy();
    expect(jest.getTimerCount()).toBe(0);
    expect(completed).toBe(true);
    // Bans still work, without a timer; an expired one is still not reported.
    list.ban('10.0.0.2', { duration: 100 });
    expect(jest.getTimerCount()).toBe(0);
    jest.setSystemTime(100);
    expect(list.isBlocked('10.0.0.1')).toBe(false);
  });
});

describe('BlockListService kicks', () => {
  function live() {
    const h = host();
    const { disconnects } = h;
    const registry = new ConnectionRegistry();
    for (const remote of [
      '::ffff:10.0.0.1',
      '10.0.0.2',
      '10.1.0.3',
      '192.0.2.5',
      '2001:db8::1',
      '2001:db9::1',
    ]) {
      registry.add(context(remote, h));
    }
    return { registry, disconnects };
  }

  it('disconnects the live connections a new ban matches, and only those', () => {
    const { registry, disconnects } = live();
    const list = service(registry);
    list.ban('10.0.0.0/16');
    expect(disconnects).toEqual(['10.0.0.1:kicked', '10.0.0.2:kicked']);
    list.ban('2001:db8::/32', { reason: 'abuse' });
    expect(disconnects.slice(2)).toEqual(['2001:db8::1:kicked']);
    list.ban('198.51.100.0/24');
    expect(disconnects).toHaveLength(3);
  });

  it('kicks nobody with kick: false, yet bans', () => {
    const { registry, disconnects } = live();
    const list = service(registry);
    list.ban('0.0.0.0/0', { kick: false });
    list.ban('::/0', { kick: false });
    expect(disconnects).toEqual([]);
    expect(list.isBlocked('10.0.0.1')).toBe(true);
  });

  it('keeps kicking when one disconnect throws', () => {
    const { registry, disconnects } = live();
    const [first] = registry;
    jest.spyOn(first, 'disconnect').mockImplementation(() => {
      throw new Error('boom');
    });
    const list = service(registry);
    expect(() => list.ban('10.0.0.0/8')).not.toThrow();
    expect(disconnects).toEqual(['10.0.0.2:kicked', '10.1.0.3:kicked']);
    expect(list.isBlocked('10.0.0.1')).toBe(true);
  });

  it('is injectable with or without a ConnectionRegistry', async () => {
    const bare = await Test.createTestingModule({
      providers: [BlockListService],
    }).compile();
    expect(bare.get(BlockListService).ban('10.0.0.1').target).toBe('10.0.0.1');
    await bare.close();

    const { registry, disconnects } = live();
    const wired = await Test.createTestingModule({
      providers: [
        BlockListService,
        { provide: ConnectionRegistry, useValue: registry },
      ],
    }).compile();
    wired.get(BlockListService).ban('192.0.2.5');
    expect(disconnects).toEqual(['192.0.2.5:kicked']);
    await wired.close();
  });
});
