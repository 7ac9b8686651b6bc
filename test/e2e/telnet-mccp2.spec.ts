import 'reflect-metadata';
import { afterEach, describe, expect, it } from '@jest/globals';
import { Controller } from '@nestjs/common';
import { Ctx, Payload } from '@nestjs/microservices';
import { connect, type Socket } from 'node:net';
import { createInflate } from 'node:zlib';
import {
  ConnectionContext,
  EarwaxEvent,
  EarwaxModule,
  type EarwaxTransportOptions,
} from '../../lib/index.js';
import { bootEarwax, type Booted } from '../support/boot.js';
import { Waiters } from '../support/waiters.js';

const IAC = 255;
const WILL = 251;
const DO = 253;
const DONT = 254;
const SB = 250;
const SE = 240;
const MCCP2 = 86;
const START = Buffer.from([IAC, SB, MCCP2, IAC, SE]);

@Controller()
class EchoController {
  @EarwaxEvent('on_data')
  echo(@Payload() line: string, @Ctx() ctx: ConnectionContext) {
    ctx.sendString(`echo ${line} ${'x'.repeat(200)}`);
  }
}

/**
 * A client that agrees to MCCP2 and inflates what follows the start
 * marker: everything before it is plain, everything after is zlib.
 */
class CompressingClient {
  plain = Buffer.alloc(0);
  text = '';
  compressedBytes = 0;
  started = false;
  ended = false;
  private readonly inflate = createInflate();
  private readonly waits = new Waiters(
    () =>
      `plain ${JSON.stringify([...this.plain])}, text ${JSON.stringify(this.text)}`,
  );

  constructor(readonly socket: Socket) {
    socket.on('data', (chunk: Buffer) => {
      if (this.started) {
        this.compressedBytes += chunk.length;
        this.inflate.write(chunk);
        return;
      }
      this.plain = Buffer.concat([this.plain, chunk]);
      const at = this.plain.indexOf(START);
      if (at === -1) return this.wake();
      this.started = true;
      const rest = this.plain.subarray(at + START.length);
      this.plain = this.plain.subarray(0, at + START.length);
      this.compressedBytes += rest.length;
      if (rest.length > 0) this.inflate.write(rest);
      this.wake();
    });
    socket.on('end', () => this.inflate.end());
    socket.on('error', () => undefined);
    this.inflate.on('data', (data: Buffer) => {
      this.text += data.toString('utf8');
      this.wake();
    });
    this.inflate.on('end', () => {
      this.ended = true;
      this.wake();
    });
  }

  until(condition: () => boolean, what: string): Promise<void> {
    return this.waits.until(condition, what);
  }

  private wake(): void {
    this.waits.wake();
  }
}

describe('telnet MCCP2', () => {
  const running: Booted[] = [];
  const sockets: Socket[] = [];
  afterEach(async () => {
    for (const socket of sockets.splice(0)) socket.destroy();
    await Promise.all(running.splice(0).map((b) => b.app.close()));
  });

  async function boot(options: EarwaxTransportOptions = {}) {
    const booted = await bootEarwax(
      { imports: [EarwaxModule.forRoot()], controllers: [EchoController] },
      { encoding: 'utf8', ...options },
    );
    running.push(booted);
    return booted;
  }

  async function open(port: number): Promise<CompressingClient> {
    const socket = connect({ port, host: '127.0.0.1' });
    sockets.push(socket);
    await new Promise<void>((resolve) => socket.once('connect', resolve));
    return new CompressingClient(socket);
  }

  it('compresses everything after the start marker once the client agrees', async () => {
    const { port } = await boot({
      telnet: { mccp2: true },
      messages: { shutdown: 'Bye for now.' },
    });
    const client = await open(port);
    await client.until(
      () => client.plain.includes(Buffer.from([IAC, WILL, MCCP2])),
      'the MCCP2 offer',
    );
    client.socket.write(Buffer.from([IAC, DO, MCCP2]));
    await client.until(() => client.started, 'the compression start');
    client.socket.write('hello\r\nagain\r\n');
    await client.until(
      () => client.text.includes('echo again'),
      'both echoes, inflated',
    );
    const lines = client.text.split('\r\n');
    expect(lines[0]).toBe(`echo hello ${'x'.repeat(200)}`);
    expect(lines[1]).toBe(`echo again ${'x'.repeat(200)}`);
    // Repeated text compresses: the dictionary is kept between writes.
    expect(client.compressedBytes).toBeLessThan(client.text.length / 2);
    // Shutdown: the goodbye, compressed, then a complete zlib stream.
    await running[0].app.close();
    running.splice(0);
    await client.until(() => client.ended, 'the end of the zlib stream');
    expect(client.text.endsWith('Bye for now.\r\n')).toBe(true);
  });

  it('stays uncompressed for a client that refuses, and is off by default', async () => {
    const offered = await boot({ telnet: { mccp2: true } });
    const refusing = await open(offered.port);
    await refusing.until(
      () => refusing.plain.includes(Buffer.from([IAC, WILL, MCCP2])),
      'the MCCP2 offer',
    );
    refusing.socket.write(Buffer.from([IAC, DONT, MCCP2]));
    refusing.socket.write('plain\r\n');
    await refusing.until(
      () => refusing.plain.includes(Buffer.from('echo plain')),
      'a plain echo',
    );
    expect(refusing.started).toBe(false);

    const quiet = await boot({ telnet: true });
    const client = await open(quiet.port);
    client.socket.write('hi\r\n');
    await client.until(
      () => client.plain.includes(Buffer.from('echo hi')),
      'a plain echo',
    );
    expect(client.plain.includes(Buffer.from([IAC, WILL, MCCP2]))).toBe(false);
  });
});
