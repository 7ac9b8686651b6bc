import { afterEach, describe, expect, it } from '@jest/globals';
import { once } from 'node:events';
import {
  connect,
  createServer,
  type AddressInfo,
  type Server,
  type Socket,
} from 'node:net';
import type { MediumSink } from '../../lib/connection/medium.js';
import { TcpMedium, targetOf } from '../../lib/connection/tcp.medium.js';

/** What a sink heard, in order. */
interface Heard {
  events: string[];
  chunks: Buffer[];
}

const SINK: MediumSink<Heard> = {
  receive: (heard, chunk) => void heard.chunks.push(chunk),
  ended: (heard) => void heard.events.push('ended'),
  closed: (heard, hadError) => void heard.events.push(`closed:${hadError}`),
  failed: (heard, err) => void heard.events.push(`failed:${err.message}`),
};

let server: Server | undefined;
const clients: Socket[] = [];
const media: TcpMedium[] = [];

afterEach(async () => {
  for (const client of clients.splice(0)) client.destroy();
  for (const medium of media.splice(0)) medium.destroy();
  if (server !== undefined) {
    const closing = once(server, 'close');
    server.close();
    await closing;
    server = undefined;
  }
});

/** A TCP medium over an accepted loopback socket, and its client. */
async function pair(): Promise<{
  medium: TcpMedium;
  client: Socket;
  heard: Heard;
}> {
  server = createServer({ allowHalfOpen: true, pauseOnConnect: true });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  const accepted = once(server, 'connection');
  const client = connect(port, '127.0.0.1');
  clients.push(client);
  const [socket] = (await accepted) as [Socket];
  const medium = new TcpMedium(socket);
  media.push(medium);
  const heard: Heard = { events: [], chunks: [] };
  medium.attach(SINK, heard);
  return { medium, client, heard };
}

/** Resolves once `check` holds, re-checked on every `event` of `socket`. */
async function until(check: () => boolean, socket: Socket, event: string) {
  while (!check()) await once(socket, event);
}

describe('TcpMedium', () => {
  it('names the remote end and hands its target to the sink', async () => {
    const { medium, client } = await pair();
    expect(medium.remote).toEqual({
      address: '127.0.0.1',
      port: client.localPort,
      family: 'IPv4',
    });
    expect(medium.secure).toBe(false);
    expect(medium.tls()).toBeUndefined();
    expect(targetOf(medium.tcp)).toBeDefined();
  });

  it('makes its remote end on first use, the same after the socket closed', async () => {
    const { medium, client } = await pair();
    expect(medium.remoteAddress).toBe('127.0.0.1');
    expect(medium.remotePort).toBe(client.localPort);
    medium.destroy();
    await once(medium.tcp, 'close');
    const remote = medium.remote;
    expect(remote).toEqual({
      address: '127.0.0.1',
      port: client.localPort,
      family: 'IPv4',
    });
    expect(medium.remote).toBe(remote);
  });

  it('delivers chunks only after read(), then the end, then the close', async () => {
    const { medium, client, heard } = await pair();
    client.write('before read\n');
    medium.read();
    await until(() => heard.chunks.length > 0, medium.tcp, 'data');
    expect(Buffer.concat(heard.chunks).toString()).toBe('before read\n');
    client.end();
    await until(() => heard.events.includes('ended'), medium.tcp, 'end');
    expect(medium.peerEnded).toBe(true);
    medium.end();
    await until(
      () => heard.events.includes('closed:false'),
      medium.tcp,
      'close',
    );
    expect(medium.closed).toBe(true);
  });

  it('writes through its output and counts bytes on the wire', async () => {
    const { medium, client } = await pair();
    medium.read();
    const received = once(client, 'data');
    expect(medium.output.write('hello\r\n')).toBe(true);
    const [chunk] = (await received) as [Buffer];
    expect(chunk.toString()).toBe('hello\r\n');
    expect(medium.outputBytes).toBe(7);
    expect(medium.bytesWritten).toBe(7);
  });

  it('resets the connection when it aborts with output the peer never got', async () => {
    const { medium, client } = await pair();
    medium.read();
    client.pause();
    // More than the kernel's buffers take while the client does not read.
    const big = Buffer.alloc(64 * 1024 * 1024);
    medium.output.write(big);
    expect(medium.pendingBytes).toBeGreaterThan(0);
    const failed = once(client, 'error');
    medium.abort();
    client.resume();
    const [err] = (await failed) as [NodeJS.ErrnoException];
    expect(err.code).toBe('ECONNRESET');
  });

  it('closes with a FIN, not a reset, when it aborts with nothing pending', async () => {
    const { medium, client } = await pair();
    medium.read();
    const ended = once(client, 'end');
    medium.abort();
    await ended;
    expect(client.destroyed || client.readableEnded).toBe(true);
  });
});
