import 'reflect-metadata';
import { afterEach, describe, expect, it } from '@jest/globals';
import { Controller } from '@nestjs/common';
import { Ctx, Payload } from '@nestjs/microservices';
import type { Socket } from 'node:net';
import {
  ConnectionContext,
  EarwaxEvent,
  type EarwaxTransportOptions,
  type WebSocketListenerOptions,
} from '../../lib/index.js';
import { bootEarwax, type Booted } from '../support/boot.js';
import { Journal } from '../support/journal.js';
import { WsClient } from '../support/websocket-client.js';

const journal = new Journal();
const TERMINAL = 'terminal.mudstandards.org';

@Controller()
class HostileController {
  @EarwaxEvent('on_connect')
  connected() {
    return 'welcome';
  }

  @EarwaxEvent('on_data')
  data(@Payload() line: string, @Ctx() ctx: ConnectionContext) {
    if (line === 'flood') {
      // Far more than maxOutputBuffer, one turn after another.
      const text = 'x'.repeat(1000);
      const more = () => {
        for (let i = 0; i < 64 && ctx.isOpen; i++) ctx.sendString(text);
        if (ctx.isOpen) setImmediate(more);
      };
      more();
      return;
    }
    return `echo ${line}`;
  }

  @EarwaxEvent('on_disconnect')
  gone(@Payload() reason: string) {
    journal.record(`disconnect:${reason}`);
  }
}

let booted: Booted | undefined;

afterEach(async () => {
  await booted?.app.close();
  booted = undefined;
  journal.entries.length = 0;
});

async function boot(
  websocket: WebSocketListenerOptions = {},
  options: EarwaxTransportOptions = {},
): Promise<string> {
  booted = await bootEarwax(
    { controllers: [HostileController] },
    {
      idleTimeout: false,
      firstInputTimeout: false,
      encoding: 'utf8',
      ...options,
      listeners: [{ name: 'web', port: 0, websocket }],
    },
  );
  return `ws://127.0.0.1:${String(booted.port)}/`;
}

/** A client that is served, to show the server still serves others. */
async function stillServed(url: string): Promise<void> {
  const c = await WsClient.connect(url, TERMINAL);
  await c.expectLine('welcome');
  c.send('ping');
  await c.expectLine('echo ping');
  await c.close();
}

describe('WebSocket listener under hostile clients', () => {
  it("drops a client that never reads with 'slow_consumer'", async () => {
    const url = await boot({}, { maxOutputBuffer: 64 * 1024 });
    const c = await WsClient.connect(url, TERMINAL);
    await c.expectLine('welcome');
    // Stops reading: the server's frames pile up in its buffers.
    (c.ws as unknown as { _socket: Socket })._socket.pause();
    c.send('flood');
    await journal.waitForEntry('disconnect:slow_consumer');
    await stillServed(url);
    // Paused, the client never reads the server's close: destroy its side,
    // or its socket outlives the test.
    c.ws.terminate();
    await c.closed();
  });

  it('closes a flood of tiny fragments past maxPayload with 1009, serving others', async () => {
    const url = await boot({ maxPayload: 4096 });
    const c = await WsClient.connect(url, TERMINAL);
    await c.expectLine('welcome');
    // One message in 1-byte fragments, never finished: ws counts the
    // fragments' total against maxPayload.
    for (let i = 0; i < 5000; i++) {
      c.ws.send(Buffer.from('a'), { binary: true, fin: false });
    }
    expect(await c.closed()).toBe(1009);
    await journal.waitForEntry('disconnect:reset');
    await stillServed(url);
  });

  it('frames lines over many tiny frames (maxLineLength applies across frames)', async () => {
    const url = await boot({}, { maxLineLength: 64 });
    const c = await WsClient.connect(url, TERMINAL);
    await c.expectLine('welcome');
    for (const ch of 'split into frames\r\n') c.write(ch);
    await c.expectLine('echo split into frames');
    // A line longer than maxLineLength, in many frames, is refused as on
    // TCP (the default policy disconnects), never delivered whole.
    for (let i = 0; i < 10; i++) c.write('y'.repeat(20));
    await c.expectLine('Line too long (at most 64 bytes).');
    expect(await c.closed()).toBe(1000);
    expect(c.lines.some((l) => l.includes('y'.repeat(64)))).toBe(false);
    await journal.waitForEntry('disconnect:line_too_long');
  });

  it('closes a compression bomb with 1009 without inflating it (permessage-deflate on)', async () => {
    const url = await boot({ perMessageDeflate: true, maxPayload: 64 * 1024 });
    const c = await WsClient.connect(url, TERMINAL, {
      perMessageDeflate: { threshold: 0 },
    });
    expect(c.ws.extensions).toMatch(/permessage-deflate/);
    await c.expectLine('welcome');
    // 32 MiB of zeros deflate to a few tens of KiB on the wire.
    const bomb = Buffer.alloc(32 * 1024 * 1024);
    const before = process.memoryUsage().arrayBuffers;
    c.ws.send(bomb, { binary: true, compress: true });
    expect(await c.closed()).toBe(1009);
    // ws stops inflating at maxPayload: the server never held the 32 MiB
    // (the bomb itself was allocated before the first reading).
    const grown = process.memoryUsage().arrayBuffers - before;
    expect(grown).toBeLessThan(16 * 1024 * 1024);
    await stillServed(url);
  });

  it('drops an idle WebSocket player with the idle message and a close frame', async () => {
    const url = await boot({}, { idleTimeout: 200 });
    const c = await WsClient.connect(url, TERMINAL);
    await c.expectLine('welcome');
    c.send('one line, then silence');
    await c.expectLine('echo one line, then silence');
    await c.expectLine('Disconnected for inactivity.');
    expect(await c.closed()).toBe(1000);
    await journal.waitForEntry('disconnect:idle');
  });

  it('drops a WebSocket that sends nothing within firstInputTimeout', async () => {
    const url = await boot({}, { firstInputTimeout: 200 });
    const c = await WsClient.connect(url, TERMINAL);
    expect(await c.closed()).toBe(1000);
    await journal.waitForEntry('disconnect:idle');
  });

  it('drops a peer that does not answer pings, keeping one that does', async () => {
    const url = await boot({ pingInterval: 50 });
    const alive = await WsClient.connect(url, TERMINAL);
    const dead = await WsClient.connect(url, TERMINAL, { autoPong: false });
    await dead.expectLine('welcome');
    expect(await dead.closed()).toBe(1006);
    await journal.waitForEntry('disconnect:reset');
    // The answering one was pinged as often, and is still served.
    alive.send('still');
    await alive.expectLine('echo still');
    await alive.close();
  });

  it('takes a first frame that reads like HTTP as input, not as a client on the wrong port', async () => {
    const url = await boot();
    const c = await WsClient.connect(url, TERMINAL);
    await c.expectLine('welcome');
    c.send('GET / HTTP/1.1');
    await c.expectLine('echo GET / HTTP/1.1');
    await c.close();
  });
});
