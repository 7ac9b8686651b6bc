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
import { ClusterLifecycle } from '../../lib/cluster/cluster.lifecycle.js';
import {
  BlockListService,
  ClusterUnavailableError,
  ConnectionRegistry,
  EarwaxAdapter,
  EarwaxMetrics,
  type ConnectionContext,
  type ConnectionPresence,
  type JsonValue,
  type PresenceFilter,
  type ServerSideEvent,
} from '../../lib/index.js';
import {
  type ClusterBroadcast,
  type EarwaxAdapterHost,
  type RemoteCommand,
  type SharedBanChange,
} from '../../lib/cluster/index.js';
import {
  fakeContext,
  recordingHost,
  type RecordingHost,
} from '../support/redis-adapter-fixtures.js';

/**
 * The contract between the registry, the block list and an adapter that
 * spans processes, checked with an adapter that records what it is asked
 * and answers what the test says.
 */
class RecordingAdapter extends EarwaxAdapter {
  readonly nodeId = 'node-a';
  available = true;
  host: EarwaxAdapterHost | undefined;
  readonly calls: Array<[string, unknown]> = [];
  remote: ConnectionPresence[] = [];
  remoteAnswer: boolean | Error = false;
  closed = false;

  async init(host: EarwaxAdapterHost): Promise<void> {
    this.host = host;
  }
  async close(): Promise<void> {
    this.closed = true;
  }
  presenceChanged(presence: ConnectionPresence): void {
    this.calls.push(['presenceChanged', presence]);
  }
  presenceRemoved(id: string): void {
    this.calls.push(['presenceRemoved', id]);
  }
  banChanged(change: SharedBanChange): void {
    this.calls.push(['banChanged', change]);
  }
  broadcast(broadcast: ClusterBroadcast): void {
    this.calls.push(['broadcast', broadcast]);
  }
  async fetchRemote(filter: PresenceFilter): Promise<ConnectionPresence[]> {
    if (this.remoteAnswer instanceof Error) throw this.remoteAnswer;
    return this.remote.filter(
      (p) => filter.room === undefined || p.rooms.includes(filter.room),
    );
  }
  async countRemote(filter: PresenceFilter): Promise<number> {
    return (await this.fetchRemote(filter)).length;
  }
  async commandRemote(command: RemoteCommand): Promise<boolean> {
    this.calls.push(['commandRemote', command]);
    if (this.remoteAnswer instanceof Error) throw this.remoteAnswer;
    return this.remoteAnswer;
  }
  serverSideEmit(event: string, data: JsonValue): boolean {
    this.calls.push(['serverSideEmit', { event, data }]);
    return this.available;
  }

  /** The calls of one kind, in order. */
  of(kind: string): unknown[] {
    return this.calls.filter(([k]) => k === kind).map(([, arg]) => arg);
  }
}

beforeAll(() => Logger.overrideLogger(false));
afterEach(() => {
  jest.useRealTimers();
});

function cluster() {
  const adapter = new RecordingAdapter();
  const registry = new ConnectionRegistry(adapter);
  const blockList = new BlockListService(registry, adapter);
  const host: RecordingHost = recordingHost(registry);
  const live = (remote = '203.0.113.9', port = 5000): ConnectionContext => {
    const ctx = fakeContext(host, remote, port);
    registry.add(ctx);
    return ctx;
  };
  return { adapter, registry, blockList, host, live };
}

describe('ConnectionRegistry with a cluster adapter', () => {
  it('mirrors every local presence change, and nothing that changes nothing', () => {
    const { adapter, registry, live } = cluster();
    const a = live('198.51.100.7', 4242);
    expect(adapter.of('presenceChanged')).toEqual([
      {
        id: a.id,
        node: 'node-a',
        address: '198.51.100.7',
        port: 4242,
        connectedAt: a.connectedAt,
        rooms: [],
      },
    ]);
    a.join('hall');
    a.join('hall');
    registry.share(a, { name: 'alice', level: 3 });
    a.leave('hall');
    a.leave('hall');
    registry.delete(a);
    registry.delete(a);
    expect(
      adapter.calls.map(([kind, arg]) =>
        kind === 'presenceChanged'
          ? [
              (arg as ConnectionPresence).rooms,
              (arg as ConnectionPresence).shared,
            ]
          : [kind, arg],
      ),
    ).toEqual([
      [[], undefined],
      [['hall'], undefined],
      [['hall'], { name: 'alice', level: 3 }],
      [[], { name: 'alice', level: 3 }],
      ['presenceRemoved', a.id],
    ]);
  });

  it('delivers a broadcast here and hands it on with the exceptions as ids', () => {
    const { adapter, registry, live } = cluster();
    const [a, b] = [live('10.0.0.1'), live('10.0.0.2')];
    const sends = [a, b].map((ctx) =>
      jest.spyOn(ctx, 'sendRaw').mockImplementation(() => true),
    );
    expect(registry.broadcast('hi', { except: a })).toBe(1);
    expect(
      registry.broadcast('yo', { except: ['remote-1', b], room: 'x' }),
    ).toBe(0);
    expect(registry.broadcast(Uint8Array.of(1), { encoding: 'latin1' })).toBe(
      2,
    );
    expect(registry.broadcast('here only', { local: true })).toBe(2);
    expect(adapter.of('broadcast')).toEqual([
      { data: 'hi', except: [a.id] },
      { data: 'yo', room: 'x', except: ['remote-1', b.id] },
      { data: Uint8Array.of(1), encoding: 'latin1' },
    ]);
    expect(sends.map((send) => send.mock.calls.length)).toEqual([2, 3]);
  });

  it('delivers a broadcast from another process once encoded, skipping excepted ids', () => {
    const { adapter, registry, live } = cluster();
    const [a, b, c] = [live('10.0.0.1'), live('10.0.0.2'), live('10.0.0.3')];
    a.join('hall');
    b.join('hall');
    const sends = [a, b, c].map((ctx) =>
      jest.spyOn(ctx, 'sendRaw').mockImplementation(() => true),
    );
    expect(registry.deliver({ data: 'x', except: [b.id, 'elsewhere'] })).toBe(
      2,
    );
    expect(registry.deliver({ data: 'y', room: 'hall', except: [a.id] })).toBe(
      1,
    );
    expect(registry.deliver({ data: 'z', room: 'nowhere' })).toBe(0);
    expect(sends.map((send) => send.mock.calls.length)).toEqual([1, 1, 1]);
    const [[line]] = sends[0].mock.calls as [[Buffer]];
    expect(line).toBe(sends[2].mock.calls[0][0]);
    expect(line).toEqual(Buffer.from('x\r\n'));
    // Delivering is not broadcasting again.
    expect(adapter.of('broadcast')).toEqual([]);
  });

  it('runs a command by id here when the connection is here, else asks the adapter', async () => {
    const { adapter, registry, host, live } = cluster();
    const a = live();
    expect(await registry.joinById(a.id, 'hall')).toBe(true);
    expect(await registry.joinById(a.id, 'hall')).toBe(false);
    expect([...a.rooms]).toEqual(['hall']);
    expect(await registry.leaveById(a.id, 'hall')).toBe(true);
    expect(await registry.disconnectById(a.id, 'quit')).toBe(true);
    expect(host.disconnects).toEqual([`${a.id}:quit`]);
    expect(adapter.of('commandRemote')).toEqual([]);

    adapter.remoteAnswer = true;
    expect(await registry.disconnectById('far-away')).toBe(true);
    expect(await registry.joinById('far-away', 'yard')).toBe(true);
    adapter.remoteAnswer = false;
    expect(await registry.leaveById('far-away', 'yard')).toBe(false);
    expect(adapter.of('commandRemote')).toEqual([
      { type: 'disconnect', id: 'far-away', reason: 'kicked' },
      { type: 'join', id: 'far-away', room: 'yard' },
      { type: 'leave', id: 'far-away', room: 'yard' },
    ]);
    await expect(
      registry.joinById('far-away', 42 as unknown as string),
    ).rejects.toThrow('A room name must be a string');

    const down = new ClusterUnavailableError('disconnectById');
    adapter.remoteAnswer = down;
    await expect(registry.disconnectById('far-away')).rejects.toBe(down);
  });

  it('runs the commands of other processes on its own connections only', () => {
    const { registry, host, live } = cluster();
    const a = live();
    expect(registry.execute({ type: 'join', id: a.id, room: 'hall' })).toBe(
      true,
    );
    expect(registry.members('hall')).toEqual([a]);
    expect(
      registry.execute({ type: 'disconnect', id: 'nobody', reason: 'kicked' }),
    ).toBe(false);
    expect(
      registry.execute({ type: 'disconnect', id: a.id, reason: 'kicked' }),
    ).toBe(true);
    expect(host.disconnects).toEqual([`${a.id}:kicked`]);
  });

  it('lists and counts this process with the others, and fails when they cannot be reached', async () => {
    const { adapter, registry, live } = cluster();
    const a = live('10.0.0.1', 1);
    a.join('hall');
    live('10.0.0.2', 2);
    const far: ConnectionPresence = {
      id: 'far',
      node: 'node-b',
      address: '10.9.9.9',
      port: 9,
      connectedAt: 1,
      rooms: ['hall'],
      shared: { name: 'bob' },
    };
    adapter.remote = [far];
    const all = await registry.fetchConnections();
    expect(all.map((p) => `${p.node}:${p.address}`)).toEqual([
      'node-a:10.0.0.1',
      'node-a:10.0.0.2',
      'node-b:10.9.9.9',
    ]);
    expect(await registry.fetchConnections({ room: 'hall' })).toEqual([
      expect.objectContaining({ id: a.id, rooms: ['hall'] }),
      far,
    ]);
    expect(await registry.countConnections()).toBe(3);
    expect(await registry.countConnections({ room: 'hall' })).toBe(2);
    expect(await registry.countConnections({ room: 'yard' })).toBe(0);

    adapter.remoteAnswer = new ClusterUnavailableError('fetchConnections');
    await expect(registry.fetchConnections()).rejects.toBeInstanceOf(
      ClusterUnavailableError,
    );
    await expect(registry.countConnections()).rejects.toThrow(
      'the other processes cannot be reached',
    );
  });

  it('shares only plain JSON state, of its own live connections', () => {
    const { registry, live, host } = cluster();
    const a = live();
    expect(registry.share(fakeContext(host), { name: 'x' })).toBe(false);
    const state = { name: 'alice', tags: ['a', 1, true, null], nested: {} };
    expect(registry.share(a, state)).toBe(true);
    state.name = 'changed later';
    expect(registry.sharedState(a)).toEqual({
      name: 'alice',
      tags: ['a', 1, true, null],
      nested: {},
    });
    const circular: Record<string, unknown> = {};
    circular.self = circular;
    for (const [bad, message] of [
      [null, 'plain object'],
      [['a'], 'plain object'],
      [{ when: new Date(0) }, 'when is a Date'],
      [{ n: Number.NaN }, 'n is NaN'],
      [{ big: 1n }, 'big is a bigint'],
      [{ f: () => 1 }, 'f is a function'],
      [{ u: undefined }, 'u is undefined'],
      [circular, 'self is circular'],
    ] as const) {
      expect(() => registry.share(a, bad as never)).toThrow(message);
    }
    expect(registry.sharedState(a)?.name).toBe('alice');
    expect(registry.share(a, undefined)).toBe(true);
    expect(registry.sharedState(a)).toBeUndefined();
  });

  it('sends server-side events through the adapter and emits those of others until detached', () => {
    const { adapter, registry } = cluster();
    const seen: ServerSideEvent[] = [];
    let completed = false;
    registry.serverEvents$.subscribe({
      next: (event) => seen.push(event),
      complete: () => (completed = true),
    });
    expect(registry.serverSideEmit('tick', { n: 1 })).toBe(true);
    adapter.available = false;
    expect(registry.serverSideEmit('tock')).toBe(false);
    expect(adapter.of('serverSideEmit')).toEqual([
      { event: 'tick', data: { n: 1 } },
      { event: 'tock', data: null },
    ]);
    expect(() => registry.serverSideEmit('')).toThrow('non-empty string');
    expect(() =>
      registry.serverSideEmit('x', { f: Symbol('s') } as never),
    ).toThrow('serverSideEmit() data must be JSON: f is a symbol');
    // What the other processes would refuse is refused here, with a reason.
    expect(() =>
      registry.serverSideEmit('x', JSON.parse('{"a":{"__proto__":{"b":1}}}')),
    ).toThrow(
      'serverSideEmit() data must be JSON: a.__proto__ is a forbidden key',
    );
    let deep: JsonValue = 1;
    for (let i = 0; i < 65; i++) deep = [deep];
    expect(() => registry.serverSideEmit('x', deep)).toThrow(
      'nests deeper than 64 levels',
    );
    expect(() =>
      registry.serverSideEmit('x', (deep as JsonValue[])[0]),
    ).not.toThrow();
    expect(adapter.of('serverSideEmit')).toHaveLength(3);

    registry.receive({ event: 'world', data: [1], node: 'node-b' });
    registry.detach();
    expect(seen).toEqual([{ event: 'world', data: [1], node: 'node-b' }]);
    expect(completed).toBe(true);
  });
});

describe('BlockListService with a cluster adapter', () => {
  it('hands on its own changes: bans, unbans, clears and expiries', () => {
    jest.useFakeTimers({ now: 1_000_000 });
    const { adapter, blockList } = cluster();
    const entry = blockList.ban('10.0.0.0/8', { reason: 'spam', kick: false });
    blockList.ban('192.0.2.1', { duration: 1000 });
    expect(blockList.unban('10.0.0.0/8')).toBe(true);
    expect(blockList.unban('10.0.0.0/8')).toBe(false);
    jest.advanceTimersByTime(1000);
    blockList.clear();
    expect(adapter.of('banChanged')).toEqual([
      { type: 'ban', ban: { entry, kick: false } },
      {
        type: 'ban',
        ban: {
          entry: expect.objectContaining({
            target: '192.0.2.1',
            expiresAt: 1_001_000,
          }),
          kick: true,
        },
      },
      { type: 'unban', entry },
      {
        type: 'expire',
        entry: expect.objectContaining({ target: '192.0.2.1' }),
      },
      // Sent even from an empty list: another process's may not be.
      { type: 'clear' },
    ]);
  });

  it('applies the changes of other processes without sending them back, kicking as they say', () => {
    jest.useFakeTimers({ now: 5_000_000 });
    const { adapter, blockList, host, live } = cluster();
    const victim = live('198.51.100.20');
    const changes: string[] = [];
    blockList.changes$.subscribe(({ type, entry }) =>
      changes.push(`${type}:${entry.target}`),
    );
    const entry = {
      target: '198.51.100.0/24',
      family: 'ipv4' as const,
      reason: 'raid',
      createdAt: 4_999_000,
      expiresAt: 5_010_000,
    };
    blockList.applyBanChange({ type: 'ban', ban: { entry, kick: true } });
    expect(blockList.list()).toEqual([entry]);
    expect(blockList.isBlocked('198.51.100.99')).toBe(true);
    expect(host.disconnects).toEqual([`${victim.id}:kicked`]);

    // An expiry of an older ban of the same target does not end this one.
    blockList.applyBanChange({
      type: 'expire',
      entry: { ...entry, createdAt: 1 },
    });
    expect(blockList.size).toBe(1);
    blockList.applyBanChange({ type: 'expire', entry });
    blockList.applyBanChange({ type: 'unban', entry });
    // Already over when it arrives: ignored.
    blockList.applyBanChange({
      type: 'ban',
      ban: { entry: { ...entry, expiresAt: 4_999_999 }, kick: true },
    });
    blockList.applyBanChange({
      type: 'ban',
      ban: { entry: { ...entry, expiresAt: undefined }, kick: false },
    });
    blockList.applyBanChange({ type: 'clear' });
    expect(() =>
      blockList.applyBanChange({
        type: 'ban',
        ban: { entry: { ...entry, target: 'not an ip' }, kick: true },
      }),
    ).toThrow('Invalid block list target');
    expect(changes).toEqual([
      'ban:198.51.100.0/24',
      'expire:198.51.100.0/24',
      'ban:198.51.100.0/24',
      'unban:198.51.100.0/24',
    ]);
    expect(adapter.of('banChanged')).toEqual([]);
  });

  it('takes the cluster’s list as a whole after an outage', () => {
    jest.useFakeTimers({ now: 7_000_000 });
    const { adapter, blockList } = cluster();
    const kept = blockList.ban('192.0.2.1');
    blockList.ban('192.0.2.2');
    const changed = blockList.ban('192.0.2.3', { reason: 'old' });
    adapter.calls.length = 0;
    const changes: string[] = [];
    blockList.changes$.subscribe(({ type, entry }) =>
      changes.push(`${type}:${entry.target}`),
    );
    blockList.replaceBans([
      { entry: kept, kick: true },
      { entry: { ...changed, reason: 'new' }, kick: true },
      {
        entry: { target: '2001:db8::/32', family: 'ipv6', createdAt: 1 },
        kick: false,
      },
      {
        entry: {
          target: '192.0.2.9',
          family: 'ipv4',
          createdAt: 1,
          expiresAt: 2,
        },
        kick: true,
      },
      { entry: { target: 'junk', family: 'ipv4', createdAt: 1 }, kick: true },
    ]);
    expect(blockList.list().map((e) => `${e.target}:${e.reason}`)).toEqual([
      '192.0.2.1:undefined',
      '192.0.2.3:new',
      '2001:db8::/32:undefined',
    ]);
    expect(changes).toEqual([
      'ban:192.0.2.3',
      'ban:2001:db8::/32',
      'unban:192.0.2.2',
    ]);
    expect(adapter.of('banChanged')).toEqual([]);
    expect(blockList.bans()).toEqual([
      { entry: kept, kick: true },
      { entry: expect.objectContaining({ reason: 'new' }), kick: true },
      {
        entry: expect.objectContaining({ target: '2001:db8::/32' }),
        kick: false,
      },
    ]);
  });
});

describe('ClusterLifecycle', () => {
  it('starts the adapter with a host over the registry, block list and metrics, and stops it', async () => {
    const { adapter, registry, blockList, live } = cluster();
    const metrics = new EarwaxMetrics();
    const lifecycle = new ClusterLifecycle(
      registry,
      blockList,
      adapter,
      metrics,
    );
    await lifecycle.onModuleInit();
    const host = adapter.host as EarwaxAdapterHost;
    const a = live('10.1.1.1');
    expect(host.presence().map((p) => p.id)).toEqual([a.id]);
    host.applyBanChange({
      type: 'ban',
      ban: {
        entry: { target: '10.2.0.0/16', family: 'ipv4', createdAt: Date.now() },
        kick: false,
      },
    });
    expect(host.bans().map((b) => b.entry.target)).toEqual(['10.2.0.0/16']);
    host.replaceBans([]);
    expect(blockList.size).toBe(0);
    host.messageRejected();
    host.messageRejected();
    expect(metrics.snapshot().clusterMessagesRejected).toBe(2);
    let completed = false;
    registry.serverEvents$.subscribe({ complete: () => (completed = true) });
    await lifecycle.onApplicationShutdown();
    expect(adapter.closed).toBe(true);
    expect(completed).toBe(true);
  });
});
