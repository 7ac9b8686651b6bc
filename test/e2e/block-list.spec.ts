import 'reflect-metadata';
import { afterEach, describe, expect, it } from '@jest/globals';
import { Controller, Inject, Injectable } from '@nestjs/common';
import { Ctx, Payload } from '@nestjs/microservices';
import { type AddressInfo, connect, createServer, type Socket } from 'node:net';
import { filter, firstValueFrom } from 'rxjs';
import {
  type BlockListChange,
  BlockListService,
  ConnectionContext,
  ConnectionGuard,
  ConnectionRegistry,
  EarwaxEvent,
  EarwaxModule,
  type EarwaxTransportOptions,
} from '../../lib/index.js';
import { bootEarwax, type Booted } from '../support/boot.js';
import { Journal } from '../support/journal.js';
import { LineClient } from '../support/line-client.js';
import { pendingWait } from '../support/pending-waits.js';

const JOURNAL = 'JOURNAL';

@Controller()
class DoorController {
  constructor(@Inject(JOURNAL) private readonly journal: Journal) {}

  @EarwaxEvent('on_block')
  blocked(@Payload() reason: string, @Ctx() ctx: ConnectionContext) {
    this.journal.record(`block:${ctx.hostname}:${reason}`);
  }

  @EarwaxEvent('on_connect')
  connected(@Ctx() ctx: ConnectionContext) {
    this.journal.record(`connect:${ctx.hostname}`);
    ctx.sendString('welcome');
  }

  @EarwaxEvent('on_data')
  data(@Payload() line: string, @Ctx() ctx: ConnectionContext) {
    if (line === 'whoami') {
      ctx.sendString(
        `${ctx.address.address} ${ctx.hostname} ${ctx.address.family}`,
      );
    } else {
      ctx.sendString(`echo ${line}`);
    }
  }

  @EarwaxEvent('on_disconnect')
  disconnected(@Payload() reason: string, @Ctx() ctx: ConnectionContext) {
    this.journal.record(`disconnect:${ctx.hostname}:${reason}`);
  }
}

/** A guard that counts its calls and refuses 127.0.0.6 on its own. */
@Injectable()
class CountingGuard extends ConnectionGuard {
  readonly calls: string[] = [];
  override canConnect(ctx: ConnectionContext): boolean {
    this.calls.push(ctx.hostname);
    return ctx.hostname !== '127.0.0.6';
  }
}

/** A guard that holds every connection until the test opens it. */
@Injectable()
class SlowGuard extends ConnectionGuard {
  readonly asked = new Journal();
  private release!: () => void;
  private readonly gate = new Promise<void>((r) => (this.release = r));
  override async canConnect(ctx: ConnectionContext): Promise<boolean> {
    this.asked.record(ctx.hostname);
    await this.gate;
    return true;
  }
  open(): void {
    this.release();
  }
}

/**
 * Whether this machine can listen dual-stack on `'::'` and take an IPv4
 * connection there: tried, not assumed.
 */
async function dualStackWorks(): Promise<boolean> {
  const server = createServer((socket) => socket.destroy());
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen({ host: '::', port: 0, ipv6Only: false }, resolve);
    });
    const { port } = server.address() as AddressInfo;
    await new Promise<void>((resolve, reject) => {
      const socket = connect({ host: '127.0.0.1', port });
      socket.once('connect', () => {
        socket.destroy();
        resolve();
      });
      socket.once('error', reject);
    });
    return true;
  } catch {
    return false;
  } finally {
    server.close();
  }
}

/** The next change of a type (Jest's timeout of the test bounds it). */
function nextChange(
  blocks: BlockListService,
  type: BlockListChange['type'],
): Promise<BlockListChange> {
  const change = pendingWait(
    firstValueFrom(blocks.changes$.pipe(filter((c) => c.type === type))),
    () => `the next '${type}' change`,
  );
  // Not awaited if the test fails first: never an unhandled rejection.
  change.catch(() => undefined);
  return change;
}

describe('block list', () => {
  let booted: Booted | undefined;
  let journal: Journal;
  const sockets: Socket[] = [];

  afterEach(async () => {
    for (const socket of sockets.splice(0)) socket.destroy();
    await booted?.app.close();
    booted = undefined;
  });

  async function boot(
    options: EarwaxTransportOptions = {},
    module: Parameters<typeof EarwaxModule.forRoot>[0] | false = {},
  ): Promise<Booted> {
    journal = new Journal();
    booted = await bootEarwax(
      {
        imports: module === false ? [] : [EarwaxModule.forRoot(module)],
        controllers: [DoorController],
        providers: [
          { provide: JOURNAL, useValue: journal },
          ...(module === false ? [ConnectionRegistry] : []),
        ],
      },
      { encoding: 'utf8', ...options },
    );
    return booted;
  }

  /** A client from `from`, admitted (it got its welcome). */
  async function enter(port: number, from?: string): Promise<LineClient> {
    const client = await LineClient.connect(port, from);
    sockets.push(client.socket);
    expect(await client.line(0)).toBe('welcome');
    return client;
  }

  /** A client from `from` that the server refuses and closes. */
  async function refused(port: number, from?: string): Promise<LineClient> {
    const client = await LineClient.connect(port, from);
    sockets.push(client.socket);
    await client.expectClosedByServer();
    await client.until(() => client.socket.destroyed, 'the socket to close');
    return client;
  }

  async function dial(port: number, host: string): Promise<LineClient> {
    const client = await LineClient.connectTo(host, port);
    sockets.push(client.socket);
    return client;
  }

  const connects = () =>
    journal.entries.filter((e) => e.startsWith('connect:'));

  it('refuses addresses banned in the transport options, silently by default', async () => {
    const { port, app, transport } = await boot({ blockList: ['127.0.0.2'] });
    expect(app.get(BlockListService).isBlocked('127.0.0.2')).toBe(true);
    expect(transport.blockList).toBe(app.get(BlockListService));

    const banned = await refused(port, '127.0.0.2');
    await journal.waitForEntry('block:127.0.0.2:blocked');
    expect(banned.ended).toBe(true);
    expect(banned.received).toHaveLength(0);

    const welcome = await enter(port, '127.0.0.1');
    await welcome.end();
    await journal.waitForEntry('disconnect:127.0.0.1:client_closed');
    // The banned client never got on_connect nor on_disconnect.
    expect(journal.entries).toEqual([
      'block:127.0.0.2:blocked',
      'connect:127.0.0.1',
      'disconnect:127.0.0.1:client_closed',
    ]);
  });

  it('sends messages.blocked when it is set', async () => {
    const { port } = await boot({
      blockList: ['127.0.0.2'],
      messages: { blocked: 'You are banned.' },
    });
    const banned = await refused(port, '127.0.0.2');
    expect(banned.lines).toEqual(['You are banned.']);
    expect(journal.entries).toEqual(['block:127.0.0.2:blocked']);
  });

  it('applies configured bans given as EarwaxModule transport defaults', async () => {
    const { port, app } = await boot(
      {},
      { transport: { blockList: ['127.0.0.7/32'] } },
    );
    expect(
      app
        .get(BlockListService)
        .list()
        .map((e) => e.target),
    ).toEqual(['127.0.0.7']);
    await refused(port, '127.0.0.7');
    await journal.waitForEntry('block:127.0.0.7:blocked');
    await enter(port, '127.0.0.1');
  });

  it("applies configured bans to a transport's own list without EarwaxModule", async () => {
    const { port, transport } = await boot({ blockList: ['127.0.0.2'] }, false);
    expect(transport.blockList.list().map((e) => e.target)).toEqual([
      '127.0.0.2',
    ]);
    await refused(port, '127.0.0.2');
    await journal.waitForEntry('block:127.0.0.2:blocked');
    await enter(port, '127.0.0.1');
    // Run-time bans through the transport's list kick too.
    transport.blockList.ban('127.0.0.1');
    await journal.waitForEntry('disconnect:127.0.0.1:kicked');
  });

  it('kicks live matching connections on a run-time ban, refuses them afterwards, and lets them in after unban', async () => {
    const { port, app } = await boot();
    const blocks = app.get(BlockListService);
    const registry = app.get(ConnectionRegistry);
    const victim = await enter(port, '127.0.0.3');
    const bystander = await enter(port, '127.0.1.5');

    const entry = blocks.ban('127.0.0.0/24', { reason: 'griefing' });
    expect(entry).toEqual({
      target: '127.0.0.0/24',
      family: 'ipv4',
      reason: 'griefing',
      createdAt: expect.any(Number),
    });
    await journal.waitForEntry('disconnect:127.0.0.3:kicked');
    // Closed by the server (we never ended our side).
    await victim.expectClosedByServer();
    expect(victim.ended).toBe(true);
    expect(registry.filter((c) => c.hostname === '127.0.0.3')).toEqual([]);

    // Outside the range: untouched.
    bystander.send('still here');
    await bystander.expectLine('echo still here');

    const again = await refused(port, '127.0.0.3');
    await journal.waitForEntry('block:127.0.0.3:blocked');
    expect(again.lines).toEqual([]);

    // kick: false bans new connections only.
    blocks.ban('127.0.1.0/24', { kick: false });
    bystander.send('after my ban');
    await bystander.expectLine('echo after my ban');
    expect(registry.filter((c) => c.hostname === '127.0.1.5')).toHaveLength(1);
    await refused(port, '127.0.1.6');
    await journal.waitForEntry('block:127.0.1.6:blocked');
    expect(
      journal.entries.filter((e) => e.startsWith('disconnect:127.0.1.5')),
    ).toEqual([]);

    // Unban: admitted again.
    expect(blocks.unban('127.0.0.0/24')).toBe(true);
    expect(blocks.unban('127.0.0.0/24')).toBe(false);
    await enter(port, '127.0.0.3');
    expect(connects()).toEqual([
      'connect:127.0.0.3',
      'connect:127.0.1.5',
      'connect:127.0.0.3',
    ]);
  });

  it('refuses an address under a temporary ban until the ban expires', async () => {
    const { port, app } = await boot();
    const blocks = app.get(BlockListService);
    const expired = nextChange(blocks, 'expire');

    // Long enough that the refusal below surely happens while it lasts.
    const entry = blocks.ban('127.0.0.4', { duration: 1000 });
    expect(entry.expiresAt).toBe(entry.createdAt + 1000);
    const early = await refused(port, '127.0.0.4');
    await journal.waitForEntry('block:127.0.0.4:blocked');
    expect(early.lines).toEqual([]);

    const change = await expired;
    expect(change).toEqual({ type: 'expire', entry });
    expect(blocks.list()).toEqual([]);
    expect(blocks.isBlocked('127.0.0.4')).toBe(false);
    await enter(port, '127.0.0.4');
    expect(connects()).toEqual(['connect:127.0.0.4']);
  }, 10_000);

  it('bans IPv6 addresses and ranges on a server listening on ::1', async () => {
    const { port, app, transport } = await boot({ host: '::1' });
    expect(transport.address()?.address).toBe('::1');
    const blocks = app.get(BlockListService);

    const first = await dial(port, '::1');
    await first.expectLine('welcome');
    first.send('whoami');
    await first.expectLine('::1 ::1 IPv6');

    // A single address: kicks the live one, refuses the next.
    expect(blocks.ban('::1').target).toBe('::1');
    await journal.waitForEntry('disconnect:::1:kicked');
    await first.expectClosedByServer();
    const second = await dial(port, '::1');
    await second.expectClosedByServer();
    expect(second.lines).toEqual([]);
    expect(journal.count((e) => e === 'block:::1:blocked')).toBe(1);
    expect(blocks.unban('::1')).toBe(true);

    // A full-length CIDR is the address itself.
    expect(blocks.ban('::1/128').target).toBe('::1');
    const third = await dial(port, '::1');
    await third.expectClosedByServer();
    expect(journal.count((e) => e === 'block:::1:blocked')).toBe(2);
    expect(blocks.unban('::1')).toBe(true);

    // The whole IPv6 space.
    expect(blocks.ban('::/0')).toMatchObject({
      target: '::/0',
      family: 'ipv6',
    });
    const fourth = await dial(port, '::1');
    await fourth.expectClosedByServer();
    expect(journal.count((e) => e === 'block:::1:blocked')).toBe(3);
    expect(blocks.unban('::/0')).toBe(true);

    const fifth = await dial(port, '::1');
    await fifth.expectLine('welcome');
    expect(connects()).toEqual(['connect:::1', 'connect:::1']);
  });

  it('sees an IPv4 client of a dual-stack server as IPv4-mapped and applies IPv4 rules to it', async () => {
    if (!(await dualStackWorks())) {
      // No dual-stack listening here: check the same rule on the address
      // such a server would report.
      const blocks = new BlockListService();
      try {
        blocks.ban('127.0.0.0/8');
        expect(blocks.isBlocked('::ffff:127.0.0.1')).toBe(true);
        expect(blocks.match('::ffff:127.0.0.1')?.target).toBe('127.0.0.0/8');
        expect(blocks.isBlocked('::1')).toBe(false);
      } finally {
        blocks.onModuleDestroy();
      }
      return;
    }
    const { port, app } = await boot({ host: '::' });
    const blocks = app.get(BlockListService);
    const v4 = await enter(port, '127.0.0.1');
    v4.send('whoami');
    expect(await v4.line(1)).toBe('::ffff:127.0.0.1 127.0.0.1 IPv6');

    blocks.ban('127.0.0.0/8');
    await journal.waitForEntry('disconnect:127.0.0.1:kicked');
    await v4.expectClosedByServer();
    const again = await refused(port, '127.0.0.1');
    await journal.waitForEntry('block:127.0.0.1:blocked');
    expect(again.lines).toEqual([]);

    // The IPv4 rule does not cover a real IPv6 client.
    const v6 = await dial(port, '::1');
    await v6.expectLine('welcome');
    expect(connects()).toEqual(['connect:127.0.0.1', 'connect:::1']);
  });

  it('checks the block list before the ConnectionGuard, which is never called for a banned address', async () => {
    const { port, app } = await boot(
      { blockList: ['127.0.0.2'] },
      { guard: CountingGuard },
    );
    const guard = app.get(ConnectionGuard, { strict: false }) as CountingGuard;
    expect(guard).toBeInstanceOf(CountingGuard);

    await refused(port, '127.0.0.2');
    await journal.waitForEntry('block:127.0.0.2:blocked');
    expect(guard.calls).toEqual([]);

    app.get(BlockListService).ban('127.0.0.5');
    // Also refused by the guard's own rule, but the ban decides first.
    app.get(BlockListService).ban('127.0.0.6');
    await refused(port, '127.0.0.5');
    await refused(port, '127.0.0.6');
    await journal.waitForEntry('block:127.0.0.6:blocked');
    expect(guard.calls).toEqual([]);

    await enter(port, '127.0.0.1');
    expect(guard.calls).toEqual(['127.0.0.1']);
    app.get(BlockListService).unban('127.0.0.6');
    await refused(port, '127.0.0.6');
    await journal.waitForEntry('block:127.0.0.6:refused');
    expect(guard.calls).toEqual(['127.0.0.1', '127.0.0.6']);
    expect(journal.entries.filter((e) => e.startsWith('block:'))).toEqual([
      'block:127.0.0.2:blocked',
      'block:127.0.0.5:blocked',
      'block:127.0.0.6:blocked',
      'block:127.0.0.6:refused',
    ]);
  });

  it('does not admit a connection banned while the ConnectionGuard was deciding', async () => {
    const { port, app } = await boot({}, { guard: SlowGuard });
    const guard = app.get(ConnectionGuard, { strict: false }) as SlowGuard;
    const client = await LineClient.connect(port, '127.0.0.8');
    sockets.push(client.socket);
    await guard.asked.waitForEntry('127.0.0.8');

    // Banned after the block-list check, before the guard has answered.
    app.get(BlockListService).ban('127.0.0.8');
    guard.open();

    await client.expectClosedByServer();
    expect(client.lines).toEqual([]);
    expect(connects()).toEqual([]);
    expect(app.get(ConnectionRegistry).size).toBe(0);
  });

  it('lists configured and run-time bans', async () => {
    const { app, transport } = await boot({
      blockList: ['127.0.0.2', '10.1.2.3/8'],
    });
    const blocks = app.get(BlockListService);
    expect(blocks.list()).toEqual([
      {
        target: '127.0.0.2',
        family: 'ipv4',
        reason: 'configured',
        createdAt: expect.any(Number),
      },
      {
        target: '10.0.0.0/8',
        family: 'ipv4',
        reason: 'configured',
        createdAt: expect.any(Number),
      },
    ]);

    blocks.ban('2001:DB8::/32', { reason: 'spam' });
    const temporary = blocks.ban('127.0.0.9', { duration: 60_000 });
    expect(blocks.list()).toEqual([
      expect.objectContaining({ target: '127.0.0.2', reason: 'configured' }),
      expect.objectContaining({ target: '10.0.0.0/8', reason: 'configured' }),
      {
        target: '2001:db8::/32',
        family: 'ipv6',
        reason: 'spam',
        createdAt: expect.any(Number),
      },
      {
        target: '127.0.0.9',
        family: 'ipv4',
        createdAt: temporary.createdAt,
        expiresAt: temporary.createdAt + 60_000,
      },
    ]);
    expect(blocks.size).toBe(4);
    // The transport checks the same list.
    expect(transport.blockList.list()).toEqual(blocks.list());

    expect(blocks.unban('10.0.0.0/8')).toBe(true);
    expect(blocks.list().map((e) => e.target)).toEqual([
      '127.0.0.2',
      '2001:db8::/32',
      '127.0.0.9',
    ]);
  });
});
