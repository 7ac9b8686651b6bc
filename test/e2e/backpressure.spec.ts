import 'reflect-metadata';
import { afterEach, describe, expect, it } from '@jest/globals';
import { Controller, Inject } from '@nestjs/common';
import { Ctx, Payload } from '@nestjs/microservices';
import { connect, type Socket } from 'node:net';
import { setImmediate as nextTurn } from 'node:timers/promises';
import {
  ConnectionContext,
  ConnectionRegistry,
  EarwaxEvent,
  EarwaxModule,
  type EarwaxTransportOptions,
} from '../../lib/index.js';
import { bootEarwax, type Booted } from '../support/boot.js';
import { CountingClient } from '../support/counting-client.js';
import { Journal } from '../support/journal.js';
import { LineClient } from '../support/line-client.js';
import { awaitEvent } from '../support/pending-waits.js';

const WATCH = 'WATCH';
/** Bytes of every line the server sends here, `\r\n` included. */
const LINE = 1024;
/** A socket's default `writableHighWaterMark`. */
const HIGH_WATER_MARK = 16 * 1024;

/** What the handlers saw, keyed by the client's port (the server's `ctx.port`). */
class Watch {
  readonly journal = new Journal();
  readonly contexts = new Map<number, ConnectionContext>();
  readonly disconnectedAt = new Map<number, number>();
  connects = 0;
}

@Controller()
class WatchController {
  constructor(@Inject(WATCH) private readonly watch: Watch) {}

  @EarwaxEvent('on_connect')
  connected(@Ctx() ctx: ConnectionContext) {
    this.watch.contexts.set(ctx.port, ctx);
    this.watch.connects++;
    this.watch.journal.record(`connect:${ctx.port}`);
  }

  @EarwaxEvent('on_disconnect')
  disconnected(@Payload() reason: string, @Ctx() ctx: ConnectionContext) {
    this.watch.disconnectedAt.set(ctx.port, Date.now());
    this.watch.journal.record(`disconnect:${ctx.port}:${reason}`);
    this.watch.journal.record(`farewell:${ctx.port}:${ctx.sendString('bye')}`);
  }
}

/** Line number `seq`: its number, then dots up to LINE bytes with `\r\n`. */
function numbered(seq: number): string {
  const head = `seq ${String(seq).padStart(8, '0')} `;
  return head + '.'.repeat(LINE - 2 - head.length);
}

/** Whether `line` is line number `index`, whole. */
function inSequence(line: string, index: number): boolean {
  return (
    line.length === LINE - 2 &&
    line.startsWith(`seq ${String(index).padStart(8, '0')} `)
  );
}

/** A client that never reads: its kernel buffers fill, then the server's. */
function connectStalled(port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect({ port, host: '127.0.0.1' });
    socket.pause();
    socket.on('error', () => undefined);
    socket.once('connect', () => {
      socket.off('error', reject);
      resolve(socket);
    });
    socket.once('error', reject);
  });
}

/** Resolves when the socket's output has drained, or it has closed. */
function drainedOrClosed(socket: Socket): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      socket.off('drain', done);
      socket.off('close', done);
      resolve();
    };
    socket.on('drain', done);
    socket.on('close', done);
  });
}

describe('backpressure', () => {
  let booted: Booted | undefined;
  let watch: Watch;
  const sockets: Socket[] = [];
  afterEach(async () => {
    for (const socket of sockets.splice(0)) socket.destroy();
    await booted?.app.close();
    booted = undefined;
  });

  async function boot(options: EarwaxTransportOptions = {}) {
    watch = new Watch();
    booted = await bootEarwax(
      {
        imports: [EarwaxModule.forRoot()],
        controllers: [WatchController],
        providers: [{ provide: WATCH, useValue: watch }],
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

  function contextOf(socket: Socket): ConnectionContext {
    const ctx = watch.contexts.get(socket.localPort ?? 0);
    if (!ctx) throw new Error(`No connection from port ${socket.localPort}.`);
    return ctx;
  }

  const disconnectsOf = (port: number) =>
    watch.journal.entries.filter((e) => e.startsWith(`disconnect:${port}:`));

  it("drops a client that never reads with 'slow_consumer' at maxOutputBuffer while three readers get every line in order", async () => {
    const maxOutputBuffer = 256 * 1024;
    const { app } = await boot({ maxOutputBuffer });
    const port = booted!.port;
    const registry = app.get(ConnectionRegistry);
    const stalled = await connectStalled(port);
    sockets.push(stalled);
    const readers = await Promise.all(
      [0, 1, 2].map(() => CountingClient.connect(port, inSequence)),
    );
    sockets.push(...readers.map((r) => r.socket));
    await waitForConnects(4);
    const stalledCtx = contextOf(stalled);
    const readerCtxs = readers.map((r) => contextOf(r.socket));

    // Broadcast 1 KiB lines, 64 per turn of the event loop, until the
    // stalled client is dropped, then 16 batches more. The loopback kernel
    // buffers of a client that never reads take several MiB (about 4 MiB on
    // Linux) before anything waits in the server's memory, so the count
    // adapts; the cap only turns a missing drop into a failure.
    const cap = 48 * 1024;
    let seq = 0;
    let batchesAfterDrop = 0;
    let peak = 0;
    const reach: number[] = [];
    while (batchesAfterDrop < 16) {
      if (seq >= cap) {
        throw new Error(
          `The stalled client was not dropped after ${seq} lines; its output buffer holds ${stalledCtx.socket.writableLength} bytes.`,
        );
      }
      for (let i = 0; i < 64; i++) {
        const sent = registry.broadcast(numbered(seq++));
        if (reach[reach.length - 1] !== sent) reach.push(sent);
        // The bound on the server's memory for this connection: the
        // transport checks the buffered length after every write made above
        // the high-water mark (each returns false) and destroys the socket
        // as soon as it passes maxOutputBuffer; a destroyed socket takes no
        // more writes. So the length after any write is at most
        // maxOutputBuffer plus the one line that crossed it, whatever the
        // machine's speed. (Bytes in kernel buffers are the kernel's,
        // bounded by its own limits, and not in writableLength.)
        peak = Math.max(peak, stalledCtx.socket.writableLength);
      }
      if (!stalledCtx.isOpen) batchesAfterDrop++;
      // The readers read as fast as the loop turns; should one lag, wait
      // for it rather than let it hit its own limit.
      for (const ctx of readerCtxs) {
        if (ctx.socket.writableLength > maxOutputBuffer / 2) {
          await awaitEvent(
            drainedOrClosed(ctx.socket),
            'a reading client to drain',
          );
        }
      }
      await nextTurn();
    }

    await watch.journal.waitForEntry(
      `disconnect:${stalledCtx.port}:slow_consumer`,
    );
    expect(disconnectsOf(stalledCtx.port)).toEqual([
      `disconnect:${stalledCtx.port}:slow_consumer`,
    ]);
    expect(stalled.destroyed || stalledCtx.socket.destroyed).toBe(true);
    expect(peak).toBeLessThanOrEqual(maxOutputBuffer + LINE);
    // It did fill up: the limit, not something else, dropped it.
    expect(peak).toBeGreaterThan(maxOutputBuffer / 2);
    // Queued to all four, then, from the drop on, to the three readers.
    expect(reach).toEqual([4, 3]);

    await Promise.all(
      readers.map((r) => r.until(() => r.lines >= seq, `${seq} lines`)),
    );
    for (const reader of readers) {
      expect(reader.mismatch).toBeUndefined();
      expect(reader.lines).toBe(seq);
    }
    for (const ctx of readerCtxs) {
      expect(ctx.isOpen).toBe(true);
      expect(disconnectsOf(ctx.port)).toEqual([]);
    }
  }, 30_000);

  it('drops a client that stops reading once writeTimeout passes, and keeps a slow reader that drains in time', async () => {
    const writeTimeout = 300;
    await boot({ maxOutputBuffer: 64 * 1024 * 1024, writeTimeout });
    const { port, logs } = booted!;
    const stalled = await connectStalled(port);
    sockets.push(stalled);
    const slow = await CountingClient.connect(port, inSequence, {
      bursty: true,
    });
    sockets.push(slow.socket);
    await waitForConnects(2);
    const stalledCtx = contextOf(stalled);
    const slowCtx = contextOf(slow.socket);

    // Fill the stalled client's kernel buffers (several MiB on loopback)
    // until output waits in the server above the high-water mark: its
    // writeTimeout deadline is armed, and can never be met. Far below
    // maxOutputBuffer, so only the deadline can drop it.
    const filler = '-'.repeat(LINE - 2);
    const startedAt = Date.now();
    let stalledSent = 0;
    while (
      stalledCtx.isOpen &&
      stalledCtx.socket.writableLength <= 4 * HIGH_WATER_MARK
    ) {
      if (stalledSent >= 48 * 1024 * 1024) {
        throw new Error(
          `The kernel took ${stalledSent} bytes for a client that never reads.`,
        );
      }
      for (let i = 0; i < 64; i++) {
        stalledCtx.sendString(filler);
        stalledSent += LINE;
      }
      await nextTurn();
    }

    // Meanwhile, rounds to the slow reader: each writes (synchronously, so
    // the reader cannot catch up mid-round) until 256 KiB wait in the
    // server, past its kernel buffers and far past the high-water mark, so
    // each round arms the deadline; then waits for the drain. The reader
    // reads a chunk per turn of the event loop, and has writeTimeout to
    // take those 256 KiB. Rounds go on until the stalled client is dropped,
    // so the slow reader's deadline is armed again and again over more than
    // writeTimeout in all.
    let seq = 0;
    let rounds = 0;
    let armedRounds = 0;
    while (rounds < 3 || !watch.disconnectedAt.has(stalledCtx.port)) {
      if (rounds >= 400) {
        throw new Error(
          `The stalled client was not dropped after ${rounds} rounds; its output buffer holds ${stalledCtx.socket.writableLength} bytes.`,
        );
      }
      while (slowCtx.isOpen && slowCtx.socket.writableLength <= 256 * 1024) {
        for (let i = 0; i < 64; i++) slowCtx.sendString(numbered(seq++));
      }
      if (slowCtx.socket.writableLength > HIGH_WATER_MARK) armedRounds++;
      rounds++;
      await awaitEvent(
        drainedOrClosed(slowCtx.socket),
        `the slow reader to drain in round ${rounds}`,
      );
      if (!slowCtx.isOpen) break;
    }

    await watch.journal.waitForEntry(
      `disconnect:${stalledCtx.port}:slow_consumer`,
    );
    await logs.waitFor('writeTimeout', 'warn');
    expect(
      logs.find('writeTimeout', 'warn').map((entry) => entry.context),
    ).toEqual([`127.0.0.1:${stalledCtx.port}`]);
    // Its deadline was armed after startedAt; a timer may fire a
    // millisecond early, hence the slack.
    expect(
      watch.disconnectedAt.get(stalledCtx.port)! - startedAt,
    ).toBeGreaterThanOrEqual(writeTimeout - 2);

    expect(slowCtx.isOpen).toBe(true);
    expect(disconnectsOf(slowCtx.port)).toEqual([]);
    expect(armedRounds).toBe(rounds);
    expect(rounds).toBeGreaterThanOrEqual(3);
    await slow.until(() => slow.lines >= seq, `${seq} lines`);
    expect(slow.mismatch).toBeUndefined();
    expect(slow.lines).toBe(seq);
  }, 30_000);

  it('returns false from every send once the peer is gone, and never throws', async () => {
    const { app, logs } = await boot();
    const port = booted!.port;
    const registry = app.get(ConnectionRegistry);
    const victim = await LineClient.connect(port);
    const witness = await LineClient.connect(port);
    sockets.push(victim.socket, witness.socket);
    await waitForConnects(2);
    const ctx = contextOf(victim.socket);

    victim.socket.resetAndDestroy();
    // The server has not handled the reset yet: each send is queued or
    // refused (the kernel may already fail the write), never thrown.
    const early = [
      ctx.sendString('a'),
      ctx.sendBytes(Buffer.from('b')),
      ctx.sendBytes('c'),
      ctx.sendRaw(Buffer.alloc(256 * 1024, 0x2e)),
    ];
    expect(early.map((result) => typeof result)).toEqual(
      Array(4).fill('boolean'),
    );
    expect([1, 2]).toContain(registry.broadcast('early'));
    await victim.closed;
    await watch.journal.waitForEntry(`disconnect:${ctx.port}:reset`);

    expect(ctx.isOpen).toBe(false);
    expect(ctx.disconnectReason).toBe('reset');
    expect(ctx.sendString('a')).toBe(false);
    expect(ctx.sendBytes(Buffer.from('b'))).toBe(false);
    expect(ctx.sendBytes('c')).toBe(false);
    expect(ctx.sendRaw(Buffer.from('d\r\n'))).toBe(false);
    expect(registry.broadcast('late')).toBe(1);
    expect(await witness.expectLine('late')).toBe('late');
    expect(witness.lines).toEqual(['early', 'late']);
    expect(disconnectsOf(ctx.port)).toEqual([`disconnect:${ctx.port}:reset`]);
    // Its own on_disconnect handler's send was refused the same way.
    expect(watch.journal.entries).toContain(`farewell:${ctx.port}:false`);
    expect(logs.find(/EPIPE|ECONNRESET|write after end/, 'error')).toEqual([]);
    await witness.end();
  });

  it('broadcasts one line to 2,000 connections, and every client receives it', async () => {
    const { app } = await boot({
      maxConnectionsPerIp: false,
      connectionRate: false,
    });
    const port = booted!.port;
    const registry = app.get(ConnectionRegistry);
    const news = 'All hands: the ship is sinking.';
    const clients: CountingClient[] = [];
    try {
      await CountingClient.connectMany(
        port,
        2000,
        (line) => line === news,
        100,
        clients,
      );
      await waitForConnects(2000);
      expect(registry.size).toBe(2000);

      // Watch what two of the sockets are given: the very same bytes.
      const written: unknown[] = [];
      const all = [...registry];
      for (const ctx of [all[0], all[all.length - 1]]) {
        const write = ctx.socket.write.bind(ctx.socket) as (
          ...args: unknown[]
        ) => boolean;
        ctx.socket.write = ((...args: unknown[]) => {
          written.push(args[0]);
          return write(...args);
        }) as typeof ctx.socket.write;
      }

      expect(registry.broadcast(news)).toBe(2000);
      // Written at the end of the turn (one write per connection per turn).
      await nextTurn();
      expect(written).toHaveLength(2);
      expect(written[0]).toBe(written[1]);
      expect(written[0]).toEqual(Buffer.from(`${news}\r\n`));

      await Promise.all(
        clients.map((c) => c.until(() => c.lines >= 1, 'the news')),
      );
      // Exactly the line, once, and nothing else: described, not dumped.
      const wrong = clients.filter(
        (c) =>
          c.lines !== 1 ||
          c.mismatch !== undefined ||
          c.bytes !== news.length + 2,
      );
      expect(wrong.slice(0, 3).map((c) => c.describe())).toEqual([]);
    } finally {
      for (const client of clients) client.socket.destroy();
    }
  }, 30_000);
});
