import 'reflect-metadata';
import { afterEach, describe, expect, it } from '@jest/globals';
import { Controller, Inject } from '@nestjs/common';
import { Ctx, Payload } from '@nestjs/microservices';
import { once } from 'node:events';
import type { Socket } from 'node:net';
import { join } from 'node:path';
import { setImmediate as nextTurn } from 'node:timers/promises';
import {
  ConnectionContext,
  ConnectionGuard,
  ConnectionRegistry,
  EarwaxEvent,
  EarwaxModule,
  EarwaxStatus,
  type EarwaxTransportOptions,
} from '../../lib/index.js';
import { bootEarwax, type Booted } from '../support/boot.js';
import {
  spawnTypeScript,
  type WatchedChild,
} from '../support/child-process.js';
import { CountingClient } from '../support/counting-client.js';
import { Gate } from '../support/gate.js';
import { Journal } from '../support/journal.js';
import { LineClient } from '../support/line-client.js';
import { awaitEvent } from '../support/pending-waits.js';

const WATCH = 'WATCH';
const GOODBYE = 'Server going down.';
/**
 * A closeTimeout for the tests where close() must end by their connections'
 * events, not by the deadline: longer than any test may run, so however
 * slow the machine, the deadline never decides one.
 */
const BEYOND_THE_TEST = 120_000;

/** What the handlers saw. */
class Watch {
  readonly journal = new Journal();
  readonly contexts: ConnectionContext[] = [];
  connects = 0;
}

@Controller()
class ShutdownController {
  constructor(
    @Inject(WATCH) private readonly watch: Watch,
    private readonly gate: Gate,
  ) {}

  @EarwaxEvent('on_connect')
  connected(@Ctx() ctx: ConnectionContext) {
    this.watch.contexts.push(ctx);
    this.watch.connects++;
    this.watch.journal.record('connect');
  }

  @EarwaxEvent('on_data')
  async data(@Payload() line: string) {
    if (line !== 'hold') {
      this.watch.journal.record(`data:${line}`);
      return;
    }
    this.watch.journal.record('hold:start');
    await this.gate.open;
    this.watch.journal.record('hold:end');
  }

  @EarwaxEvent('on_disconnect')
  disconnected(@Payload() reason: string) {
    this.watch.journal.record(`disconnect:${reason}`);
  }
}

/** A guard that decides only when its gate is released, and then admits. */
class HeldGuard extends ConnectionGuard {
  readonly asked = new Journal();
  readonly gate = new Gate();
  override async canConnect(): Promise<boolean> {
    this.asked.record('asked');
    await this.gate.open;
    return true;
  }
}

/** Line `index` of the output queued before close(): 100 bytes with `\r\n`. */
function queuedLine(index: number): string {
  const head = `line ${String(index).padStart(3, '0')} `;
  return head + '~'.repeat(98 - head.length);
}

describe('graceful shutdown', () => {
  let booted: Booted | undefined;
  let watch: Watch;
  const sockets: Socket[] = [];
  afterEach(async () => {
    for (const socket of sockets.splice(0)) socket.destroy();
    booted?.app.get(Gate).release();
    await booted?.app.close();
    booted = undefined;
  });

  async function boot(options: EarwaxTransportOptions = {}) {
    watch = new Watch();
    booted = await bootEarwax(
      {
        imports: [EarwaxModule.forRoot()],
        controllers: [ShutdownController],
        providers: [{ provide: WATCH, useValue: watch }, Gate],
      },
      { encoding: 'utf8', ...options },
    );
    return booted;
  }

  function waitForConnects(count: number): Promise<void> {
    return watch.journal.waitFor(
      () => watch.connects >= count,
      `${count} on_connect events`,
    );
  }

  /** Records close() resolving, and the transport's CLOSED status, in order. */
  function closeRecorded(b: Booted): Promise<void> {
    b.transport.status.subscribe((status) => {
      if (status === EarwaxStatus.CLOSED) watch.journal.record('status:closed');
    });
    return b.app.close().then(() => watch.journal.record('close:resolved'));
  }

  it('flushes the queued output of 1,000 readers, then the goodbye line, then FIN, and resolves close()', async () => {
    const b = await boot({
      maxConnectionsPerIp: false,
      connectionRate: false,
      messages: { shutdown: GOODBYE },
      // Only a bound, never reached: the flush ends close().
      closeTimeout: BEYOND_THE_TEST,
    });
    const lines = 200;
    const clients: CountingClient[] = [];
    try {
      await CountingClient.connectMany(
        b.port,
        1000,
        (line, index) =>
          index < lines ? line === queuedLine(index) : line === GOODBYE,
        100,
        clients,
      );
      await waitForConnects(1000);
      const registry = b.app.get(ConnectionRegistry);
      expect(registry.size).toBe(1000);

      let queued = 0;
      for (const ctx of registry) {
        for (let i = 0; i < lines; i++) {
          if (ctx.sendString(queuedLine(i))) queued++;
        }
      }
      expect(queued).toBe(1000 * lines);
      const closing = closeRecorded(b);
      await awaitEvent(closing, 'close() to resolve');

      await Promise.all(
        clients.map((c) =>
          c.until(() => c.ended && c.socket.destroyed, 'EOF and close'),
        ),
      );
      // Every line in order, the goodbye, EOF, and nothing in between or
      // after: described, not dumped, when wrong.
      const wrong = clients.filter(
        (c) =>
          c.lines !== lines + 1 ||
          c.mismatch !== undefined ||
          c.lastLine !== GOODBYE ||
          c.partial !== '',
      );
      expect(wrong.slice(0, 3).map((c) => c.describe())).toEqual([]);
      const disconnects = watch.journal.entries.filter((e) =>
        e.startsWith('disconnect:'),
      );
      expect(disconnects).toHaveLength(1000);
      expect(new Set(disconnects)).toEqual(
        new Set(['disconnect:server_shutdown']),
      );
      expect(b.logs.find('Still busy at shutdown deadline')).toEqual([]);
      expect(watch.journal.entries.slice(-2)).toEqual([
        'status:closed',
        'close:resolved',
      ]);
    } finally {
      for (const client of clients) client.socket.destroy();
    }
  }, 40_000);

  it('awaits a handler still running at close(), then runs on_disconnect, then resolves', async () => {
    const b = await boot({
      messages: { shutdown: GOODBYE },
      closeTimeout: BEYOND_THE_TEST,
    });
    const client = await LineClient.connect(b.port);
    sockets.push(client.socket);
    await waitForConnects(1);
    const [ctx] = watch.contexts;
    client.send('hold');
    await watch.journal.waitForEntry('hold:start');

    const closing = closeRecorded(b);
    // The client is told and closed at once; the connection is done but
    // for its running handler, so close() must still wait.
    expect(await client.expectLine(GOODBYE)).toBe(GOODBYE);
    await client.expectClosedByServer();
    await client.closed;
    if (!ctx.socket.destroyed) await once(ctx.socket, 'close');
    // Had close() not waited for the handler, it would resolve within these
    // turns of the event loop (the server's close follows its last socket's).
    for (let i = 0; i < 5; i++) await nextTurn();
    expect(watch.journal.entries).toEqual(['connect', 'hold:start']);

    b.app.get(Gate).release();
    await awaitEvent(closing, 'close() to resolve after the release');
    expect(watch.journal.entries).toEqual([
      'connect',
      'hold:start',
      'hold:end',
      'disconnect:server_shutdown',
      'status:closed',
      'close:resolved',
    ]);
    expect(b.logs.find('Still busy at shutdown deadline')).toEqual([]);
  });

  it('resolves close() at closeTimeout when a handler never finishes, and says so', async () => {
    const closeTimeout = 300;
    const b = await boot({ closeTimeout });
    const client = await LineClient.connect(b.port);
    sockets.push(client.socket);
    await waitForConnects(1);
    client.send('hold');
    await watch.journal.waitForEntry('hold:start');

    const startedAt = Date.now();
    const closing = closeRecorded(b);
    await awaitEvent(closing, 'close() to resolve at its deadline');
    // The deadline timer may fire a millisecond early.
    expect(Date.now() - startedAt).toBeGreaterThanOrEqual(closeTimeout - 2);
    expect(b.logs.find('Still busy at shutdown deadline', 'warn')).toHaveLength(
      1,
    );
    await client.closed;
    expect(watch.journal.entries).toEqual([
      'connect',
      'hold:start',
      'status:closed',
      'close:resolved',
    ]);
  });

  it('accepts no connection once close() has started', async () => {
    const b = await boot({ closeTimeout: BEYOND_THE_TEST });
    const client = await LineClient.connect(b.port);
    sockets.push(client.socket);
    await waitForConnects(1);
    client.send('hold');
    await watch.journal.waitForEntry('hold:start');
    const statuses: EarwaxStatus[] = [];
    b.transport.status.subscribe((s) => statuses.push(s));

    const closing = closeRecorded(b);
    // close() is under way, held by the running handler.
    expect(statuses[statuses.length - 1]).toBe(EarwaxStatus.CLOSING);
    const late = await LineClient.connect(b.port).then(
      async (c) => {
        sockets.push(c.socket);
        await awaitEvent(c.closed, 'the late connection to be closed');
        return { received: c.received.length };
      },
      (err: NodeJS.ErrnoException) => ({ error: err.code }),
    );
    // Refused, or (had the kernel queued it) closed without a byte.
    expect([{ error: 'ECONNREFUSED' }, { received: 0 }]).toContainEqual(late);
    expect(watch.connects).toBe(1);

    b.app.get(Gate).release();
    await awaitEvent(closing, 'close() to resolve');
    expect(watch.connects).toBe(1);
    expect(watch.journal.count((e) => e.startsWith('disconnect:'))).toBe(1);
  });

  it('closes a connection still waiting for the guard at close() without admitting it', async () => {
    const guard = new HeldGuard();
    const b = await boot({ guard, closeTimeout: BEYOND_THE_TEST });
    const client = await LineClient.connect(b.port);
    sockets.push(client.socket);
    await guard.asked.waitForEntry('asked');

    const closing = closeRecorded(b);
    await client.expectClosedByServer();
    await client.closed;
    expect(client.received.length).toBe(0);
    // The guard says yes too late: the connection is gone.
    guard.gate.release();
    await awaitEvent(closing, 'close() to resolve');
    // Turns for the guard's late answer to be acted on.
    for (let i = 0; i < 5; i++) await nextTurn();
    expect(watch.journal.entries).toEqual(['status:closed', 'close:resolved']);
  });
});

describe('SIGTERM', () => {
  let child: WatchedChild | undefined;
  const clients: LineClient[] = [];
  afterEach(async () => {
    for (const client of clients.splice(0)) client.socket.destroy();
    await child?.stop('SIGKILL');
    child = undefined;
  });

  it('closes gracefully through enableShutdownHooks() in a real process', async () => {
    // The child runs the TypeScript sources through loader hooks that
    // transpile them on load: Nest's shutdown hooks end the process, so they
    // cannot run inside Jest's.
    const server = spawnTypeScript(
      'the child',
      join(process.cwd(), 'test', 'support', 'shutdown-child.ts'),
      {},
    );
    child = server;
    // However long loading and transpiling take; at once if it exits.
    const port = Number(
      (await server.waitForLine(/^port:\d+$/)).slice('port:'.length),
    );
    clients.push(
      await LineClient.connect(port),
      await LineClient.connect(port),
    );
    for (const client of clients) {
      expect(await client.line(0)).toBe('Welcome.');
    }
    clients[0].send('still here');
    expect(await clients[0].line(1)).toBe('still here');

    // Ends once the child has exited and all it wrote has been read: the
    // lines it writes last can arrive after its exit.
    const end = await server.stop('SIGTERM');
    for (const client of clients) {
      await client.expectClosedByServer();
      expect(client.lines[client.lines.length - 1]).toBe(GOODBYE);
    }
    expect(clients.map((c) => c.lines)).toEqual([
      ['Welcome.', 'still here', GOODBYE],
      ['Welcome.', GOODBYE],
    ]);
    // Nest re-raises the signal once its hooks have run.
    expect(end).toEqual({ code: null, signal: 'SIGTERM' });
    expect(server.lines.entries).toEqual([
      expect.stringMatching(/^port:\d+$/),
      'connect',
      'connect',
      'disconnect:server_shutdown',
      'disconnect:server_shutdown',
      'shutdown:SIGTERM',
    ]);
    expect(server.stderr).toBe('');
  }, 30_000);
});
