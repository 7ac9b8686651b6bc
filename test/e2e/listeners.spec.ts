import 'reflect-metadata';
import {
  afterEach,
  beforeAll,
  beforeEach,
  describe,
  expect,
  it,
} from '@jest/globals';
import { Controller, Injectable } from '@nestjs/common';
import { Ctx, Payload } from '@nestjs/microservices';
import { once } from 'node:events';
import { connect as netConnect, createServer, type Socket } from 'node:net';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import {
  ConnectionContext,
  ConnectionGuard,
  EarwaxEvent,
  EarwaxModule,
  EarwaxTransport,
  type BlockReason,
  type EarwaxTransportOptions,
} from '../../lib/index.js';
import { TelnetOption } from '../../lib/telnet/index.js';
import {
  EarwaxTesting,
  type EarwaxTestServer,
} from '../../lib/testing/index.js';
import {
  makeCertificate,
  type TestCertificate,
} from '../support/certificates.js';
import { Journal } from '../support/journal.js';

/** What handlers and the guard saw, in order. */
const journal = new Journal();

@Injectable()
class RecordingGuard extends ConnectionGuard {
  override canConnect(ctx: ConnectionContext): boolean {
    journal.record(`guard:${ctx.listener}:${ctx.tls?.protocol ?? 'plain'}`);
    return true;
  }
}

@Controller()
class ListenersController {
  @EarwaxEvent('on_connect')
  connected(@Ctx() ctx: ConnectionContext) {
    journal.record(
      `connect:${ctx.listener}:${ctx.hostname}:${ctx.tls?.protocol ?? 'plain'}:${ctx.proxy?.address ?? 'direct'}`,
    );
  }

  @EarwaxEvent('on_block')
  blocked(@Payload() reason: BlockReason, @Ctx() ctx: ConnectionContext) {
    journal.record(`block:${ctx.listener}:${ctx.hostname}:${reason}`);
  }

  @EarwaxEvent('on_data')
  echo(@Payload() line: string, @Ctx() ctx: ConnectionContext) {
    return `${ctx.listener} ${line}`;
  }
}

/** A TLS client over a TCP socket of our own, so its raw bytes are seen. */
async function rawThenTls(
  port: number,
  ca: Buffer,
  { from, header }: { from?: string; header?: string } = {},
): Promise<{ raw: Socket; tls: TLSSocket }> {
  const raw = netConnect({ port, host: '127.0.0.1', localAddress: from });
  raw.on('error', () => undefined);
  await once(raw, 'connect');
  // The header and the ClientHello leave in one segment, as a proxy's
  // often do: the server must hand the bytes after the header to TLS.
  raw.cork();
  if (header !== undefined) raw.write(header);
  const tls = tlsConnect({ socket: raw, ca, servername: 'localhost' });
  tls.on('error', () => undefined);
  process.nextTick(() => raw.uncork());
  return { raw, tls };
}

function lineOf(tls: TLSSocket): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = '';
    const onData = (chunk: Buffer) => {
      text += chunk.toString('utf8');
      const end = text.indexOf('\r\n');
      if (end >= 0) {
        tls.off('data', onData);
        resolve(text.slice(0, end));
      }
    };
    tls.on('data', onData);
    tls.once('close', () =>
      reject(new Error(`closed; got ${JSON.stringify(text)}`)),
    );
  });
}

describe('several listeners in one transport', () => {
  let cert: TestCertificate;
  let server: EarwaxTestServer | undefined;
  const sockets: Socket[] = [];

  beforeAll(() => {
    cert = makeCertificate('listeners');
  });

  beforeEach(() => {
    journal.entries.length = 0;
  });

  afterEach(async () => {
    for (const socket of sockets.splice(0)) socket.destroy();
    await server?.close();
    server = undefined;
  });

  function boot(transport: EarwaxTransportOptions, blockList?: string[]) {
    return EarwaxTesting.createServer(
      {
        imports: [
          EarwaxModule.forRoot({
            guard: RecordingGuard,
            transport: blockList ? { blockList } : undefined,
          }),
        ],
        controllers: [ListenersController],
      },
      { transport },
    ).then((booted) => (server = booted));
  }

  it('serves plain telnet, TLS telnet and a raw bot port at once: one registry, the listener on each context, MSSP with PORT and SSL', async () => {
    const game = await boot({
      telnet: { mssp: { name: 'Listeners' } },
      listeners: [
        { name: 'telnet', port: 0 },
        { name: 'tls', port: 0, tls: { key: cert.key, cert: cert.cert } },
        { name: 'bots', port: 0, telnet: false },
      ],
    });
    const { transport } = game;
    expect(transport.listenerNames).toEqual(['telnet', 'tls', 'bots']);
    const ports = ['telnet', 'tls', 'bots'].map(
      (name) => transport.address(name)?.port,
    );
    expect(new Set(ports).size).toBe(3);
    expect(transport.address()?.port).toBe(ports[0]);

    const telnet = await game.connect({
      listener: 'telnet',
      telnet: { accept: [TelnetOption.MSSP] },
    });
    const secure = await game.connect({
      listener: 'tls',
      tls: { ca: cert.cert, servername: 'localhost' },
      telnet: { accept: [TelnetOption.MSSP] },
    });
    const bot = await game.connect({ listener: 'bots' });

    telnet.send('look');
    secure.send('look');
    bot.send('look');
    await telnet.expectLine('telnet look');
    await secure.expectLine('tls look');
    await bot.expectLine('bots look');
    expect(game.registry.size).toBe(3);
    expect(
      [...game.registry].map((ctx) => `${ctx.listener}:${ctx.isTelnet}`).sort(),
    ).toEqual(['bots:false', 'telnet:true', 'tls:true']);
    // The raw port got exactly its line: no telnet offers.
    expect(bot.received.toString('latin1')).toBe('bots look\r\n');

    // Both telnet listeners advertise where players can connect; the raw
    // bot port is not a place for a MUD client.
    await telnet.waitFor(
      () => telnet.telnet.mssp !== undefined,
      'MSSP on the plain listener',
    );
    await secure.waitFor(
      () => secure.telnet.mssp !== undefined,
      'MSSP on the TLS listener',
    );
    for (const mssp of [telnet.telnet.mssp, secure.telnet.mssp]) {
      expect(mssp?.NAME).toEqual(['Listeners']);
      expect(mssp?.PORT).toEqual([String(ports[0])]);
      expect(mssp?.SSL).toEqual([String(ports[1])]);
    }
    expect(
      journal.entries.filter((e) => e.startsWith('connect:')).sort(),
    ).toEqual([
      'connect:bots:127.0.0.1:plain:direct',
      'connect:telnet:127.0.0.1:plain:direct',
      'connect:tls:127.0.0.1:TLSv1.3:direct',
    ]);
  });

  it('reads a cleartext PROXY header, then the TLS handshake that follows it in the same packet', async () => {
    const game = await boot({
      listeners: [
        {
          name: 'tls',
          port: 0,
          tls: { key: cert.key, cert: cert.cert },
          proxyProtocol: { trustedProxies: ['127.0.0.1'] },
        },
      ],
    });
    const port = game.transport.address('tls')?.port ?? 0;
    const { raw, tls } = await rawThenTls(port, cert.cert, {
      header: `PROXY TCP4 203.0.113.7 127.0.0.1 51234 ${port}\r\n`,
    });
    sockets.push(raw);
    await once(tls, 'secureConnect');
    tls.write('hello\r\n');
    await expect(lineOf(tls)).resolves.toBe('tls hello');
    expect(journal.entries).toEqual([
      'guard:tls:TLSv1.3',
      'connect:tls:203.0.113.7:TLSv1.3:127.0.0.1',
    ]);
  });

  it('refuses a banned address on a TLS listener before any handshake, while others are served', async () => {
    const game = await boot(
      {
        listeners: [
          { name: 'tls', port: 0, tls: { key: cert.key, cert: cert.cert } },
        ],
      },
      ['127.0.0.2'],
    );
    const port = game.transport.address('tls')?.port ?? 0;
    const banned = await rawThenTls(port, cert.cert, { from: '127.0.0.2' });
    sockets.push(banned.raw);
    let secured = false;
    banned.tls.once('secureConnect', () => (secured = true));
    await once(banned.raw, 'close');
    await journal.waitForEntry('block:tls:127.0.0.2:blocked');
    // Not one byte came back: no ServerHello, no certificate, no alert.
    expect(banned.raw.bytesRead).toBe(0);
    expect(secured).toBe(false);
    expect(game.logs.find(/TLS handshake/)).toEqual([]);

    const good = await game.connect({
      tls: { ca: cert.cert, servername: 'localhost' },
    });
    good.send('hi');
    await good.expectLine('tls hi');
    // The guard runs after the handshake, for the admitted one only.
    expect(journal.entries).toEqual([
      'block:tls:127.0.0.2:blocked',
      'guard:tls:TLSv1.3',
      'connect:tls:127.0.0.1:TLSv1.3:direct',
    ]);
  });

  it('closes a silent client at the handshake deadline and frees its place', async () => {
    const game = await boot({
      maxConnectionsPerIp: 1,
      listeners: [
        {
          name: 'tls',
          port: 0,
          tls: { key: cert.key, cert: cert.cert, handshakeTimeout: 300 },
        },
      ],
    });
    const port = game.transport.address('tls')?.port ?? 0;
    const silent = netConnect({
      port,
      host: '127.0.0.1',
      localAddress: '127.0.0.3',
    });
    sockets.push(silent);
    silent.on('error', () => undefined);
    await once(silent, 'close');
    await game.logs.waitFor(/TLS handshake timed out; closed/);
    // Its per-address place was released: the next one from there gets in.
    const next = await game.connect({
      from: '127.0.0.3',
      tls: { ca: cert.cert, servername: 'localhost' },
    });
    next.send('ok');
    await next.expectLine('tls ok');
  });

  it('binds every listener or none', async () => {
    const taken = createServer();
    taken.listen(0, '127.0.0.1');
    await once(taken, 'listening');
    const busy = (taken.address() as { port: number }).port;
    const transport = new EarwaxTransport({
      logConnections: false,
      listeners: [
        { name: 'free', port: 0 },
        { name: 'busy', port: busy },
      ],
    });
    try {
      const error = await new Promise<unknown>((resolve) =>
        transport.listen(resolve),
      );
      expect((error as NodeJS.ErrnoException).code).toBe('EADDRINUSE');
      expect(transport.address('free')).toBeNull();
      expect(transport.address('busy')).toBeNull();
    } finally {
      await transport.close();
      taken.close();
    }
  });

  it('checks listener options, and swaps a certificate on a named TLS listener only', () => {
    const key = cert.key;
    const certificate = cert.cert;
    expect(
      () =>
        new EarwaxTransport({
          port: 4000,
          listeners: [{ name: 'a', port: 0 }],
        }),
    ).toThrow(/with "listeners", give each listener its own/);
    expect(
      () =>
        new EarwaxTransport({
          tls: { key, cert: certificate },
          listeners: [{ name: 'a', port: 0 }],
        }),
    ).toThrow(RangeError);
    expect(() => new EarwaxTransport({ listeners: [] })).toThrow(
      /at least one listener/,
    );
    expect(
      () =>
        new EarwaxTransport({
          listeners: [
            { name: 'a', port: 0 },
            { name: 'a', port: 0 },
          ],
        }),
    ).toThrow(/listeners\[1\]\.name/);
    expect(
      () => new EarwaxTransport({ listeners: [{ name: 'a', port: 70000 }] }),
    ).toThrow(/listeners\[0\]\.port/);
    expect(
      () =>
        new EarwaxTransport({
          listeners: [
            { name: 'a', port: 0, proxyProtocol: { trustedProxies: [] } },
          ],
        }),
    ).toThrow(/listeners\[0\]\.proxyProtocol\.trustedProxies/);

    const transport = new EarwaxTransport({
      listeners: [
        { name: 'plain', port: 0 },
        { name: 'tls', port: 0, tls: { key, cert: certificate } },
      ],
    });
    expect(transport.isTls).toBe(true);
    expect(() =>
      transport.setSecureContext({ key, cert: certificate }, 'plain'),
    ).toThrow(/no TLS listener named "plain"/);
    expect(() =>
      transport.setSecureContext({ key, cert: certificate }, 'tls'),
    ).not.toThrow();
  });
});
