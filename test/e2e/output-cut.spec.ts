import 'reflect-metadata';
import { afterEach, describe, expect, it } from '@jest/globals';
import { Controller } from '@nestjs/common';
import { Ctx, Payload } from '@nestjs/microservices';
import { readFile } from 'node:fs/promises';
import { connect, type Socket } from 'node:net';
import { once } from 'node:events';
import {
  ConnectionContext,
  EarwaxEvent,
  type EarwaxTransportOptions,
} from '../../lib/index.js';
import { bootEarwax, type Booted } from '../support/boot.js';
import { Journal } from '../support/journal.js';

const journal = new Journal();
const LINE = 'x'.repeat(64 * 1024 - 2);

@Controller()
class FloodController {
  @EarwaxEvent('on_data')
  onData(@Payload() line: Buffer, @Ctx() ctx: ConnectionContext): void {
    // 32 MiB: more than the kernel's buffers on both ends can hold, so
    // most of it is still in Node's when the connection is cut.
    const count = Number(line.toString());
    for (let i = 0; i < count; i++) ctx.sendString(LINE);
    journal.record(`sent:${ctx.socket.writableLength > 0}`);
  }

  @EarwaxEvent('on_disconnect')
  gone(@Payload() reason: string): void {
    journal.record(`disconnect:${reason}`);
  }
}

/**
 * The kernel's state of a client's loopback TCP socket, found by both its
 * ports (a socket of another test may be in TIME_WAIT on the same local
 * port), from /proc/net/tcp: '01' established, '08' close-wait (a FIN
 * arrived); `undefined` once the socket is gone (a reset closes it at once).
 */
async function tcpState(ports: Ports): Promise<string | undefined> {
  const table = await readFile('/proc/net/tcp', 'utf8');
  const local = `:${hexPort(ports.local)}`;
  const remote = `:${hexPort(ports.remote)}`;
  for (const row of table.split('\n').slice(1)) {
    const fields = row.trim().split(/\s+/);
    if (fields[1]?.endsWith(local) && fields[2]?.endsWith(remote)) {
      return fields[3];
    }
  }
  return undefined;
}

/** A connected socket's two ports, read while it is connected. */
interface Ports {
  local: number;
  remote: number;
}

function portsOf(socket: Socket): Ports {
  const { localPort, remotePort } = socket;
  if (localPort === undefined || remotePort === undefined) {
    throw new Error('The socket is not connected.');
  }
  return { local: localPort, remote: remotePort };
}

function hexPort(port: number): string {
  return port.toString(16).toUpperCase().padStart(4, '0');
}

/** Waits until the kernel has dropped the client's socket. */
async function resetSeen(ports: Ports): Promise<void> {
  // The reset arrives while the client reads nothing; no event tells it
  // (the socket is paused), so the kernel's table is read again on each
  // turn, and the test's timeout bounds the wait.
  while ((await tcpState(ports)) !== undefined) {
    await new Promise((resolve) => setImmediate(resolve));
  }
}

describe('a connection whose output is thrown away', () => {
  let booted: Booted | undefined;
  const stalled: Socket[] = [];
  afterEach(async () => {
    for (const socket of stalled.splice(0)) socket.destroy();
    await booted?.app.close();
    booted = undefined;
    journal.entries.length = 0;
  });

  /** A client that asks for `count` 64 KiB lines and never reads. */
  async function stalledReader(port: number, count: number) {
    const socket = connect(port, '127.0.0.1');
    stalled.push(socket);
    socket.on('error', () => undefined);
    await once(socket, 'connect');
    // No 'data' listener: Node reads one high-water mark, then stops.
    socket.write(`${count}\r\n`);
    await journal.waitForEntry('sent:true');
    return socket;
  }

  async function boot(options: EarwaxTransportOptions) {
    booted = await bootEarwax(
      { controllers: [FloodController] },
      {
        inputRate: false,
        writeTimeout: 600_000,
        ...options,
      },
    );
    return booted;
  }

  it('is reset, not closed with a FIN, at the shutdown deadline', async () => {
    const { app, port, logs } = await boot({
      maxOutputBuffer: 64 * 1024 * 1024,
      closeTimeout: 200,
    });
    const socket = await stalledReader(port, 512);
    const ports = portsOf(socket);
    expect(await tcpState(ports)).toBe('01');
    await app.close();
    booted = undefined;
    expect(logs.find('Still busy at shutdown deadline')).toHaveLength(1);
    await resetSeen(ports);
    expect(await tcpState(ports)).toBeUndefined();
  }, 30_000);

  it("is reset when dropped as a 'slow_consumer'", async () => {
    const { port } = await boot({ maxOutputBuffer: 4 * 1024 * 1024 });
    const socket = connect(port, '127.0.0.1');
    stalled.push(socket);
    socket.on('error', () => undefined);
    await once(socket, 'connect');
    const ports = portsOf(socket);
    socket.write('512\r\n');
    await journal.waitForEntry('disconnect:slow_consumer');
    await resetSeen(ports);
    expect(await tcpState(ports)).toBeUndefined();
  }, 30_000);

  it('is closed with a FIN when nothing was thrown away', async () => {
    const { app, port } = await boot({ closeTimeout: 10_000 });
    // Half-open: it keeps its side after the server's FIN, so the kernel
    // shows the FIN arrived (close-wait).
    const socket = connect({ port, host: '127.0.0.1', allowHalfOpen: true });
    stalled.push(socket);
    await once(socket, 'connect');
    const ports = portsOf(socket);
    const ended = once(socket, 'end');
    socket.resume();
    socket.write('2\r\n');
    await journal.waitForEntry('sent:false');
    await app.close();
    booted = undefined;
    await ended;
    expect(await tcpState(ports)).toBe('08');
  }, 30_000);
});
