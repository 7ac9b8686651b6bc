import 'reflect-metadata';
import { afterEach, describe, expect, it } from '@jest/globals';
import { Controller, Inject, Injectable } from '@nestjs/common';
import { Ctx, Payload } from '@nestjs/microservices';
import {
  ConnectionContext,
  ConnectionGuard,
  EarwaxEvent,
  EarwaxModule,
  type EarwaxTransportOptions,
} from '../../lib/index.js';
import {
  EarwaxTesting,
  type EarwaxTestServer,
} from '../../lib/testing/index.js';
import type { Socket } from 'node:net';
import { Journal } from '../support/journal.js';

const JOURNAL = 'JOURNAL';

/** Promises that never settle unless the test settles them. */
@Injectable()
class Hangs {
  private readonly resolvers: Array<() => void> = [];
  /** Whether on_disconnect and on_block hang too. */
  everywhere = false;

  hang(): Promise<void> {
    return new Promise<void>((resolve) => this.resolvers.push(resolve));
  }

  /** Settles every hung handler (late: nobody may be waiting any more). */
  settleAll(): void {
    for (const resolve of this.resolvers.splice(0)) resolve();
  }
}

@Controller()
class HangingController {
  constructor(
    @Inject(JOURNAL) private readonly journal: Journal,
    private readonly hangs: Hangs,
  ) {}

  @EarwaxEvent('on_data')
  onData(@Payload() line: string, @Ctx() ctx: ConnectionContext): unknown {
    this.journal.record(`${ctx.id} data:${line}`);
    // Async, as a handler awaiting a database that never answers.
    return line === 'hang' ? this.hangs.hang() : Promise.resolve(`ok ${line}`);
  }

  @EarwaxEvent('on_disconnect')
  onDisconnect(
    @Payload() reason: string,
    @Ctx() ctx: ConnectionContext,
  ): Promise<void> | undefined {
    this.journal.record(`${ctx.id} disconnect:${reason}`);
    return this.hangs.everywhere ? this.hangs.hang() : undefined;
  }

  @EarwaxEvent('on_block')
  onBlock(@Payload() reason: string): Promise<void> | undefined {
    this.journal.record(`block:${reason}`);
    return this.hangs.everywhere ? this.hangs.hang() : undefined;
  }
}

/** Refuses the addresses the test names. */
@Injectable()
class RefusingGuard extends ConnectionGuard {
  readonly refused = new Set<string>();
  override canConnect(ctx: ConnectionContext): boolean {
    return !this.refused.has(ctx.hostname);
  }
}

describe('a handler that never settles', () => {
  let server: EarwaxTestServer | undefined;
  let journal: Journal;
  let hangs: Hangs;
  /** Resolves, for each accepted socket in order, when it has closed. */
  let socketsClosed: Array<Promise<void>>;
  afterEach(async () => {
    hangs?.settleAll();
    await server?.close();
    server = undefined;
  });

  async function boot(options: EarwaxTransportOptions = {}) {
    journal = new Journal();
    server = await EarwaxTesting.createServer(
      {
        imports: [EarwaxModule.forRoot()],
        controllers: [HangingController],
        providers: [
          Hangs,
          RefusingGuard,
          { provide: ConnectionGuard, useExisting: RefusingGuard },
          { provide: JOURNAL, useValue: journal },
        ],
      },
      { transport: { encoding: 'utf8', ...options }, printLogs: [] },
    );
    hangs = server.app.get(Hangs);
    socketsClosed = [];
    // Registered after the transport's own listeners: when it runs, the
    // transport has seen the close.
    server.transport.on('connection', (socket: Socket) => {
      socketsClosed.push(
        new Promise((resolve) => socket.once('close', () => resolve())),
      );
    });
    return server;
  }

  /** Waits until `id` has had `on_disconnect`; returns how many it had. */
  async function disconnectsOf(id: string): Promise<string[]> {
    await journal.waitFor(
      (entries) => entries.some((e) => e.startsWith(`${id} disconnect:`)),
      `on_disconnect of ${id}`,
    );
    return journal.entries.filter((e) => e.startsWith(`${id} disconnect:`));
  }

  /** Connects a player, makes its handler hang, and returns its id. */
  async function hungPlayer(booted: EarwaxTestServer) {
    const player = await booted.connect();
    player.send('hang');
    await journal.waitFor(
      (entries) => entries.some((e) => e.endsWith(' data:hang')),
      'the hung handler to start',
    );
    const id = journal.entries
      .filter((e) => e.endsWith(' data:hang'))
      .at(-1)
      ?.split(' ')[0] as string;
    return { player, id };
  }

  it('releases the connection at once when its client closes, and on_disconnect comes once', async () => {
    // One place per address: a leaked place would refuse the next player.
    const booted = await boot({ maxConnectionsPerIp: 1 });
    for (let round = 0; round < 5; round++) {
      const { player, id } = await hungPlayer(booted);
      await player.close();
      // Its place is free by the time on_disconnect has run: the next
      // round connects at once.
      expect(await disconnectsOf(id)).toEqual([
        `${id} disconnect:client_closed`,
      ]);
    }
    expect(booted.registry.size).toBe(0);
    const snapshot = booted.transport.metrics.snapshot();
    expect(snapshot.heldSockets).toBe(0);
    expect(snapshot.openConnections).toBe(0);
    expect(snapshot.connectionsRefused.too_many_connections).toBe(0);
    // A late settle changes nothing: no second on_disconnect, no event.
    hangs.settleAll();
    const next = await booted.connect();
    next.send('after');
    await next.expectLine('ok after');
    expect(journal.count((e) => e.includes(' disconnect:'))).toBe(5);
  });

  it('still delivers the lines read before the close, in order, then on_disconnect', async () => {
    const booted = await boot();
    const { player, id } = await hungPlayer(booted);
    player.send('one');
    player.send('two');
    await player.close();
    await disconnectsOf(id);
    expect(journal.entries.filter((e) => e.startsWith(id))).toEqual([
      `${id} data:hang`,
      `${id} data:one`,
      `${id} data:two`,
      `${id} disconnect:client_closed`,
    ]);
  });

  it('gives one grace in all, not one per hung line, before on_disconnect', async () => {
    const booted = await boot();
    const { player, id } = await hungPlayer(booted);
    // Forty more hung lines: waited for one by one, they would hold
    // on_disconnect for forty graces.
    for (let i = 0; i < 40; i++) player.send('hang');
    player.send('last');
    await player.close();
    await disconnectsOf(id);
    const mine = journal.entries.filter((e) => e.startsWith(id));
    expect(mine).toHaveLength(43);
    expect(mine.slice(-2)).toEqual([
      `${id} data:last`,
      `${id} disconnect:client_closed`,
    ]);
  });

  it('releases a connection reset by its client the same way', async () => {
    const booted = await boot({ maxConnectionsPerIp: 1 });
    const { player, id } = await hungPlayer(booted);
    await player.reset();
    await socketsClosed[0];
    // Released with the socket, before on_disconnect has had its turn.
    expect(booted.transport.metrics.snapshot().heldSockets).toBe(0);
    expect(booted.registry.size).toBe(0);
    expect(await disconnectsOf(id)).toEqual([`${id} disconnect:reset`]);
    const next = await booted.connect();
    next.send('again');
    await next.expectLine('ok again');
  });

  it('is reported at handlerTimeout, and the open connection keeps waiting for it', async () => {
    const booted = await boot({ handlerTimeout: 50 });
    const { player } = await hungPlayer(booted);
    player.send('queued');
    const warning = await booted.logs.waitFor(
      /on_data handler \(HangingController\.onData\) still running after 50 ms; the connection waits for it/,
      { timeout: 15_000 },
    );
    expect(warning.level).toBe('warn');
    expect(booted.transport.metrics.snapshot().handlerTimeouts).toBe(1);
    expect(booted.transport.metrics.toPrometheus()).toMatch(
      /^earwax_handler_timeouts_total 1$/m,
    );
    expect(player.isOpen).toBe(true);
    expect(journal.count((e) => e.endsWith('data:queued'))).toBe(0);
    // Once it finishes, the queued line runs.
    hangs.settleAll();
    await player.expectLine('ok queued');
  });

  it("disconnects with reason 'error' under handlerTimeoutPolicy 'disconnect'", async () => {
    const booted = await boot({
      handlerTimeout: 50,
      handlerTimeoutPolicy: 'disconnect',
    });
    const { player, id } = await hungPlayer(booted);
    await player.expectClose({ timeout: 15_000 });
    expect(await disconnectsOf(id)).toEqual([`${id} disconnect:error`]);
    expect(
      booted.logs.find(/still running after 50 ms; disconnecting/),
    ).toHaveLength(1);
  });

  it('gives up on an on_disconnect handler that never settles, so close() finishes', async () => {
    const booted = await boot({ handlerTimeout: 50, closeTimeout: 600_000 });
    hangs.everywhere = true;
    const { player, id } = await hungPlayer(booted);
    await player.close();
    await disconnectsOf(id);
    await booted.logs.waitFor(/on_disconnect handler .* no longer waited for/, {
      timeout: 15_000,
    });
    // Nothing is left to wait for: close() does not sit out closeTimeout.
    await booted.close();
    expect(booted.logs.find(/Still busy at shutdown deadline/)).toHaveLength(0);
  });

  it('ends a refused connection whose on_block handler never settles', async () => {
    const booted = await boot({ handlerTimeout: 50 });
    booted.app.get(RefusingGuard).refused.add('127.0.0.1');
    hangs.everywhere = true;
    const player = await booted.connect();
    await journal.waitForEntry('block:refused');
    await player.expectClose({ timeout: 15_000 });
    await socketsClosed[0];
    expect(booted.transport.metrics.snapshot().heldSockets).toBe(0);
  });

  it('lets a graceful close() finish while a handler hangs', async () => {
    const booted = await boot({ closeTimeout: 600_000 });
    const { id } = await hungPlayer(booted);
    await booted.app.close();
    expect(await disconnectsOf(id)).toEqual([
      `${id} disconnect:server_shutdown`,
    ]);
    expect(booted.logs.find(/Still busy at shutdown deadline/)).toHaveLength(0);
  });
});
