import 'reflect-metadata';
import { afterEach, beforeAll, describe, expect, it } from '@jest/globals';
import { Controller, Inject } from '@nestjs/common';
import { Ctx, Payload } from '@nestjs/microservices';
import { once } from 'node:events';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import {
  ConnectionContext,
  EarwaxEvent,
  EarwaxModule,
  EarwaxTransport,
} from '../../lib/index.js';
import { bootEarwax, type Booted } from '../support/boot.js';
import { makeCertificate } from '../support/certificates.js';
import { WatchedChild } from '../support/child-process.js';
import { Journal } from '../support/journal.js';
import { LineClient } from '../support/line-client.js';
import { Waiters } from '../support/waiters.js';

const JOURNAL = 'JOURNAL';

@Controller()
class TlsController {
  constructor(@Inject(JOURNAL) private readonly journal: Journal) {}

  @EarwaxEvent('on_connect')
  connected(@Ctx() ctx: ConnectionContext) {
    const tls = ctx.tls;
    this.journal.record(
      `connect:${tls?.protocol}:${tls?.cipher ? 'cipher' : 'none'}`,
    );
  }

  @EarwaxEvent('on_data')
  echo(@Payload() line: string) {
    return `echo ${line}`;
  }
}

/** A TLS line client that records every line it gets. */
class TlsLineClient {
  readonly lines: string[] = [];
  private partial = '';
  private readonly waits = new Waiters(
    () => `lines ${JSON.stringify(this.lines)}`,
  );

  private constructor(readonly socket: TLSSocket) {
    socket.setEncoding('utf8');
    socket.on('data', (text: string) => {
      const parts = (this.partial + text).split('\r\n');
      this.partial = parts.pop() ?? '';
      this.lines.push(...parts);
      this.waits.wake();
    });
    socket.on('error', () => undefined);
    socket.once('close', () => this.waits.end('the connection closed'));
  }

  static async connect(port: number, ca: Buffer): Promise<TlsLineClient> {
    const socket = tlsConnect({
      port,
      host: '127.0.0.1',
      ca,
      servername: 'localhost',
    });
    await once(socket, 'secureConnect');
    return new TlsLineClient(socket);
  }

  expectLine(line: string): Promise<void> {
    return this.waits.until(() => this.lines.includes(line), `"${line}"`);
  }
}

describe('TLS listener', () => {
  let first: { key: Buffer; cert: Buffer };
  let second: { key: Buffer; cert: Buffer };
  const running: Booted[] = [];
  const sockets: Array<{ destroy(): void }> = [];
  let journal: Journal;

  beforeAll(() => {
    first = makeCertificate('first');
    second = makeCertificate('second');
  });
  afterEach(async () => {
    for (const socket of sockets.splice(0)) socket.destroy();
    await Promise.all(running.splice(0).map((b) => b.app.close()));
  });

  async function boot() {
    journal = new Journal();
    const booted = await bootEarwax(
      {
        imports: [EarwaxModule.forRoot()],
        controllers: [TlsController],
        providers: [{ provide: JOURNAL, useValue: journal }],
      },
      { encoding: 'utf8', tls: { key: first.key, cert: first.cert } },
    );
    running.push(booted);
    return booted;
  }

  it('serves lines over TLS, with the TLS details on the context', async () => {
    const { port, transport } = await boot();
    expect(transport.isTls).toBe(true);
    const client = await TlsLineClient.connect(port, first.cert);
    sockets.push(client.socket);
    client.socket.write('hello\r\n');
    await client.expectLine('echo hello');
    expect(journal.entries).toEqual(['connect:TLSv1.3:cipher']);
  });

  it('logs plaintext sent to the TLS port for that connection only', async () => {
    const { port, logs } = await boot();
    const good = await TlsLineClient.connect(port, first.cert);
    sockets.push(good.socket);
    const plain = await LineClient.connect(port);
    sockets.push(plain.socket);
    plain.send('hello in the clear');
    await logs.waitFor(/TLS handshake failed: .*wrong version number/i, 'warn');
    await plain.expectClosedByServer();
    good.socket.write('still here\r\n');
    await good.expectLine('echo still here');
    expect(journal.entries).toEqual(['connect:TLSv1.3:cipher']);
  });

  it('swaps the certificate for new connections without dropping open ones', async () => {
    const { port, transport } = await boot();
    const old = await TlsLineClient.connect(port, first.cert);
    sockets.push(old.socket);
    transport.setSecureContext({ key: second.key, cert: second.cert });
    const renewed = await TlsLineClient.connect(port, second.cert);
    sockets.push(renewed.socket);
    expect(renewed.socket.getPeerCertificate().subject.O).toBe('second');
    expect(old.socket.getPeerCertificate().subject.O).toBe('first');
    old.socket.write('old\r\n');
    renewed.socket.write('new\r\n');
    await old.expectLine('echo old');
    await renewed.expectLine('echo new');
  });

  it('talks to a real client: openssl s_client', async () => {
    const { port } = await boot();
    const child = WatchedChild.spawn(
      'openssl s_client',
      'openssl',
      ['s_client', '-connect', `127.0.0.1:${port}`, '-quiet', '-verify_quiet'],
      { stdio: ['pipe', 'pipe', 'pipe'] },
    );
    sockets.push({ destroy: () => child.signal('SIGKILL') });
    const stdin = child.child.stdin;
    // A write after s_client has gone is reported by the wait below.
    stdin?.on('error', () => undefined);
    stdin?.write('from s_client\n');
    // At once, with what it wrote, if s_client ends first.
    await child.until(
      () => child.stdout().includes('echo from s_client'),
      'the echo',
    );
    stdin?.end();
  });

  it('swaps certificates only on a TLS listener', () => {
    expect(() => new EarwaxTransport().setSecureContext({})).toThrow(
      /no TLS listener/,
    );
  });
});
