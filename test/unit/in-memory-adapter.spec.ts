import 'reflect-metadata';
import { beforeAll, describe, expect, it, jest } from '@jest/globals';
import { Logger } from '@nestjs/common';
import { hostname } from 'node:os';
import {
  BlockListService,
  ConnectionRegistry,
  type ConnectionContext,
} from '../../lib/index.js';
import { InMemoryAdapter } from '../../lib/cluster/in-memory.adapter.js';
import {
  fakeContext,
  recordingHost,
} from '../support/redis-adapter-fixtures.js';

beforeAll(() => Logger.overrideLogger(false));

/**
 * Without an adapter, or with the in-memory one, the cluster is this
 * process: the cluster-wide API answers from the registry alone.
 */
describe.each([
  ['no adapter', () => new ConnectionRegistry()],
  ['InMemoryAdapter', () => new ConnectionRegistry(new InMemoryAdapter())],
])('ConnectionRegistry with %s', (_, make) => {
  function setUp() {
    const registry = make();
    const host = recordingHost(registry);
    const live = (remote: string, port = 4000): ConnectionContext => {
      const ctx = fakeContext(host, remote, port);
      registry.add(ctx);
      return ctx;
    };
    return { registry, host, live };
  }

  it('is a cluster of this one process', async () => {
    const { registry, live } = setUp();
    expect(registry.nodeId).toBe(`${hostname()}/${process.pid}`);
    const a = live('10.0.0.1', 1);
    const b = live('10.0.0.2', 2);
    a.join('hall');
    registry.share(b, { name: 'bob' });
    expect(await registry.fetchConnections()).toEqual([
      {
        id: a.id,
        node: registry.nodeId,
        address: '10.0.0.1',
        port: 1,
        connectedAt: a.connectedAt,
        rooms: ['hall'],
      },
      {
        id: b.id,
        node: registry.nodeId,
        address: '10.0.0.2',
        port: 2,
        connectedAt: b.connectedAt,
        rooms: [],
        shared: { name: 'bob' },
      },
    ]);
    expect(
      (await registry.fetchConnections({ room: 'hall' })).map((p) => p.id),
    ).toEqual([a.id]);
    expect(await registry.fetchConnections({ room: 'yard' })).toEqual([]);
    expect(await registry.countConnections()).toBe(2);
    expect(await registry.countConnections({ room: 'hall' })).toBe(1);
    registry.delete(a);
    expect(await registry.countConnections()).toBe(1);
  });

  it('runs commands by id on its own connections, and finds nobody else', async () => {
    const { registry, host, live } = setUp();
    const a = live('10.0.0.1');
    expect(await registry.joinById(a.id, 'hall')).toBe(true);
    expect(registry.members('hall')).toEqual([a]);
    expect(await registry.leaveById(a.id, 'hall')).toBe(true);
    expect(await registry.joinById('elsewhere', 'hall')).toBe(false);
    expect(await registry.leaveById('elsewhere', 'hall')).toBe(false);
    expect(await registry.disconnectById('elsewhere')).toBe(false);
    expect(await registry.disconnectById(a.id)).toBe(true);
    expect(host.disconnects).toEqual([`${a.id}:kicked`]);
  });

  it('leaves out connections by id as well as by context', () => {
    const { registry, live } = setUp();
    const [a, b, c] = ['10.0.0.1', '10.0.0.2', '10.0.0.3'].map((ip) =>
      live(ip),
    );
    const sends = [a, b, c].map((ctx) =>
      jest.spyOn(ctx, 'sendRaw').mockImplementation(() => true),
    );
    expect(registry.broadcast('x', { except: b.id })).toBe(2);
    expect(registry.broadcast('y', { except: [a, c.id] })).toBe(1);
    expect(registry.broadcast('z', { except: new Set([a.id, 'gone']) })).toBe(
      2,
    );
    expect(sends.map((send) => send.mock.calls.length)).toEqual([1, 2, 2]);
  });

  it('has no other process to send server-side events to', () => {
    const { registry } = setUp();
    const seen: unknown[] = [];
    registry.serverEvents$.subscribe((event) => seen.push(event));
    expect(registry.serverSideEmit('tick', { n: 1 })).toBe(true);
    expect(seen).toEqual([]);
  });

  it('keeps its block list to itself', () => {
    const { registry } = setUp();
    const blockList = new BlockListService(registry, new InMemoryAdapter());
    blockList.ban('192.0.2.1');
    expect(blockList.isBlocked('192.0.2.1')).toBe(true);
    blockList.clear();
    expect(blockList.size).toBe(0);
  });
});

describe('InMemoryAdapter', () => {
  it('is always available, and its remote half is empty', async () => {
    const adapter = new InMemoryAdapter();
    expect(adapter.available).toBe(true);
    await adapter.init();
    expect(await adapter.fetchRemote()).toEqual([]);
    expect(await adapter.countRemote()).toBe(0);
    expect(await adapter.commandRemote()).toBe(false);
    await adapter.close();
  });
});
