import 'reflect-metadata';
import { afterEach, describe, expect, it } from '@jest/globals';
import { Controller, Injectable } from '@nestjs/common';
import { Ctx, Payload } from '@nestjs/microservices';
import {
  ConnectionContext,
  ConnectionGuard,
  ConnectionRegistry,
  EarwaxEvent,
  EarwaxModule,
  type BlockReason,
  type EarwaxTransportOptions,
  type GmcpMessage,
  type WebSocketListenerOptions,
  type WindowSize,
} from '../../lib/index.js';
import type { ClientOptions } from 'ws';
import { InMemoryAdapter } from '../../lib/cluster/in-memory.adapter.js';
import { TelnetCommand, TelnetOption } from '../../lib/telnet/index.js';
import {
  makeCertificate,
  type TestCertificate,
} from '../support/certificates.js';
import { bootEarwax, type Booted } from '../support/boot.js';
import { Journal } from '../support/journal.js';
import { LineClient } from '../support/line-client.js';
import { bytes } from '../support/telnet-client.js';
import { WsClient } from '../support/websocket-client.js';

const { IAC, SB, SE, WILL, DO } = TelnetCommand;
const { NAWS, GMCP, TTYPE } = TelnetOption;

const journal = new Journal();

@Injectable()
class RefusingGuard extends ConnectionGuard {
  override canConnect(ctx: ConnectionContext): boolean {
    journal.record(`guard:${ctx.medium}:${String(ctx.subprotocol)}`);
    return ctx.hostname !== '127.0.0.3';
  }
}

@Controller()
class WsController {
  constructor(private readonly registry: ConnectionRegistry) {}

  @EarwaxEvent('on_connect')
  connected(@Ctx() ctx: ConnectionContext) {
    journal.record(
      `connect:${ctx.listener}:${ctx.medium}:${String(ctx.subprotocol)}`,
    );
    journal.record(`tls:${ctx.tls?.protocol ?? 'plain'}`);
    ctx.join('hall');
    return `welcome ${ctx.medium} ${String(ctx.subprotocol)}`;
  }

  @EarwaxEvent('on_data')
  data(@Payload() line: string, @Ctx() ctx: ConnectionContext) {
    if (line === 'two') {
      ctx.sendString('one of two');
      ctx.sendString('two of two');
      return;
    }
    if (line === 'gmcp') {
      ctx.sendString('before');
      ctx.sendGmcp('Room.Info', { name: 'Hall' });
      return;
    }
    if (line.startsWith('say ')) {
      this.registry.broadcast(`${ctx.medium} says ${line.slice(4)}`, {
        room: 'hall',
      });
      return;
    }
    return `echo ${line}`;
  }

  @EarwaxEvent('on_gmcp')
  gmcp(@Payload() message: GmcpMessage, @Ctx() ctx: ConnectionContext) {
    journal.record(`gmcp:${message.package}:${JSON.stringify(message.data)}`);
    ctx.sendGmcp('Core.Echo', message.data);
  }

  @EarwaxEvent('on_resize')
  resized(@Payload() size: WindowSize) {
    journal.record(`resize:${size.width}x${size.height}`);
  }

  @EarwaxEvent('on_block')
  blocked(@Payload() reason: BlockReason) {
    journal.record(`block:${reason}`);
  }

  @EarwaxEvent('on_disconnect')
  gone(@Payload() reason: string, @Ctx() ctx: ConnectionContext) {
    journal.record(`disconnect:${ctx.medium}:${reason}`);
  }
}

let booted: Booted | undefined;

afterEach(async () => {
  await booted?.app.close();
  booted = undefined;
  journal.entries.length = 0;
});

/** Boots a transport with a telnet listener and a WebSocket one. */
async function boot(
  websocket: WebSocketListenerOptions = {},
  options: EarwaxTransportOptions = {},
  tls?: TestCertificate,
  adapter?: InMemoryAdapter,
): Promise<{ url: string; telnetPort: number; booted: Booted }> {
  booted = await bootEarwax(
    {
      imports: [EarwaxModule.forRoot({ adapter })],
      controllers: [WsController],
      providers: [RefusingGuard],
    },
    {
      idleTimeout: false,
      firstInputTimeout: false,
      encoding: 'utf8',
      ...options,
      listeners: [
        { name: 'telnet', port: 0 },
        {
          name: 'web',
          port: 0,
          websocket,
          tls: tls && { key: tls.key, cert: tls.cert },
        },
      ],
    },
  );
  const port = booted.transport.address('web')?.port;
  return {
    url: `${tls ? 'wss' : 'ws'}://127.0.0.1:${String(port)}/`,
    telnetPort: booted.port,
    booted,
  };
}

describe('WebSocket listener', () => {
  it('serves the terminal subprotocol: lines in binary frames, several lines or part of one per frame, a turn in one frame', async () => {
    const { url } = await boot();
    const c = await WsClient.connect(url, 'terminal.mudstandards.org');
    expect(c.ws.protocol).toBe('terminal.mudstandards.org');
    await c.expectLine('welcome websocket terminal.mudstandards.org');
    expect(journal.entries).toContain(
      'connect:web:websocket:terminal.mudstandards.org',
    );
    // Part of a line, the rest with a second line, in three frames.
    c.write('he');
    c.write('llo\r\nwor');
    c.write('ld\r\n');
    await c.expectLine('echo hello');
    await c.expectLine('echo world');
    // Two lines sent in one turn arrive in one frame.
    const before = c.frames.length;
    c.send('two');
    await c.expectLine('two of two');
    expect(c.frames.slice(before).map((f) => f.toString())).toEqual([
      'one of two\r\ntwo of two\r\n',
    ]);
    await c.close();
    await journal.waitForEntry('disconnect:websocket:client_closed');
  });

  it('serves the gmcp subprotocol: GMCP in text frames reaches on_gmcp, sendGmcp answers in a text frame, in order with the text', async () => {
    const { url } = await boot();
    const c = await WsClient.connect(url, 'gmcp.mudstandards.org');
    await c.expectLine(/^welcome/);
    c.sendText('Core.Hello {"client":"test","version":"1"}');
    await journal.waitForEntry(
      'gmcp:Core.Hello:{"client":"test","version":"1"}',
    );
    await c.expectText('Core.Echo {"client":"test","version":"1"}');
    c.send('gmcp');
    await c.expectText('Room.Info {"name":"Hall"}');
    await c.expectLine('before');
    await c.close();
  });

  it('serves the telnet subprotocol: negotiation, NAWS and GMCP over binary frames, no MCCP2', async () => {
    const { url } = await boot();
    const c = await WsClient.connect(url, 'telnet.mudstandards.org');
    await c.until(
      () => Buffer.concat(c.frames).includes(bytes(IAC, DO, NAWS)),
      'DO NAWS',
    );
    const sent = Buffer.concat(c.frames);
    expect(sent.includes(bytes(IAC, DO, TTYPE))).toBe(true);
    expect(sent.includes(bytes(IAC, WILL, GMCP))).toBe(true);
    // MCCP2 (option 86) is never offered over a WebSocket.
    expect(sent.includes(bytes(IAC, WILL, 86))).toBe(false);
    c.write(bytes(IAC, WILL, NAWS, IAC, SB, NAWS, 0, 100, 0, 40, IAC, SE));
    await journal.waitForEntry('resize:100x40');
    c.write(bytes(IAC, DO, GMCP, IAC, SB, GMCP, 'Core.Hello {"a":1}', IAC, SE));
    await journal.waitForEntry('gmcp:Core.Hello:{"a":1}');
    await c.until(
      () =>
        Buffer.concat(c.frames).includes(
          bytes(IAC, SB, GMCP, 'Core.Echo {"a":1}', IAC, SE),
        ),
      'the GMCP answer as a subnegotiation',
    );
    c.send('hi');
    await c.expectLine(/echo hi$/);
    await c.close();
  });

  it('puts a telnet player and a WebSocket player in one room, each seeing the other', async () => {
    const { url, telnetPort } = await boot();
    const web = await WsClient.connect(url, 'terminal.mudstandards.org');
    await web.expectLine(/^welcome/);
    const tcp = await LineClient.connect(telnetPort);
    await tcp.expectLine('welcome tcp undefined');
    web.send('say hello from the web');
    await tcp.expectLine('websocket says hello from the web');
    tcp.send('say hello from telnet');
    await web.expectLine('tcp says hello from telnet');
    await web.close();
    await tcp.end();
  });

  it('refuses a handshake offering no enabled subprotocol with 400 before any WebSocket, unless a default is named', async () => {
    const { url } = await boot({
      subprotocols: ['terminal.mudstandards.org'],
    });
    const none = await WsClient.refused(url);
    expect(none.status).toBe(400);
    expect(none.body).toMatch(/No supported subprotocol/);
    const other = await WsClient.refused(url, ['telnet.mudstandards.org']);
    expect(other.status).toBe(400);
    await booted?.app.close();
    booted = undefined;
    const fallback = await boot({
      subprotocols: ['terminal.mudstandards.org'],
      defaultSubprotocol: 'terminal.mudstandards.org',
    });
    const c = await WsClient.connect(fallback.url);
    await c.expectLine('welcome websocket terminal.mudstandards.org');
    await c.close();
  });

  it('refuses a cross-site upgrade (origins) with 403', async () => {
    const { url } = await boot({ origins: ['https://mud.example'] });
    const refused = await WsClient.refused(url, ['terminal.mudstandards.org'], {
      origin: 'https://evil.example',
    });
    expect(refused.status).toBe(403);
    const allowed = await WsClient.connect(url, 'terminal.mudstandards.org', {
      origin: 'https://mud.example',
    });
    await allowed.expectLine(/^welcome/);
    await allowed.close();
    expect(journal.entries.filter((e) => e.startsWith('connect:'))).toEqual([
      'connect:web:websocket:terminal.mudstandards.org',
    ]);
  });

  it('runs admission (block list, guard) before the 101 answer: a refused client never gets a WebSocket', async () => {
    const { url, booted: b } = await boot(
      {},
      { blockList: ['127.0.0.2'], guard: new RefusingGuard() },
    );
    void b;
    const blocked = await WsClient.refused(url, ['terminal.mudstandards.org'], {
      localAddress: '127.0.0.2',
    });
    expect(blocked.status).toBe(403);
    expect(blocked.headers['x-earwax-refusal']).toBe('blocked');
    const guarded = await WsClient.refused(url, ['terminal.mudstandards.org'], {
      localAddress: '127.0.0.3',
    });
    expect(guarded.status).toBe(403);
    expect(guarded.headers['x-earwax-refusal']).toBe('refused');
    expect(journal.entries).toContain(
      'guard:websocket:terminal.mudstandards.org',
    );
    expect(journal.entries).toContain('block:blocked');
    expect(journal.entries).toContain('block:refused');
    expect(journal.entries.some((e) => e.startsWith('connect:'))).toBe(false);
  });

  it('answers server_full with 503 and the refusal message as the body', async () => {
    const { url } = await boot({}, { maxConnections: 1 });
    const first = await WsClient.connect(url, 'terminal.mudstandards.org');
    await first.expectLine(/^welcome/);
    const full = await WsClient.refused(url, ['terminal.mudstandards.org']);
    expect(full.status).toBe(503);
    expect(full.headers['x-earwax-refusal']).toBe('server_full');
    expect(full.body.length).toBeGreaterThan(0);
    await first.close();
  });

  it('closes with 1003 on a text frame where the subprotocol has none', async () => {
    const { url } = await boot();
    const c = await WsClient.connect(url, 'terminal.mudstandards.org');
    await c.expectLine(/^welcome/);
    c.sendText('hello');
    expect(await c.closed()).toBe(1003);
  });

  it('closes with 1007 on invalid UTF-8 in a text frame', async () => {
    const { url } = await boot();
    const c = await WsClient.connect(url, 'gmcp.mudstandards.org');
    await c.expectLine(/^welcome/);
    // A text frame whose payload is not UTF-8 (the client does not check).
    c.ws.send(Buffer.from([0xc3, 0x28]), { binary: false });
    expect(await c.closed()).toBe(1007);
  });

  it('closes with 1009 on a message over maxPayload', async () => {
    const { url } = await boot({ maxPayload: 1024 });
    const c = await WsClient.connect(url, 'terminal.mudstandards.org');
    await c.expectLine(/^welcome/);
    c.write(Buffer.alloc(4096, 0x61));
    expect(await c.closed()).toBe(1009);
  });

  it('sends the goodbye and a 1001 close frame at shutdown', async () => {
    const { url } = await boot(
      {},
      { messages: { shutdown: 'The server is going down.' } },
    );
    const c = await WsClient.connect(url, 'terminal.mudstandards.org');
    await c.expectLine(/^welcome/);
    const closing = booted?.app.close();
    booted = undefined;
    expect(await c.closed()).toBe(1001);
    expect(c.lines).toContain('The server is going down.');
    await closing;
    expect(journal.entries).toContain('disconnect:websocket:server_shutdown');
  });

  it("serves wss through the listener's TLS options", async () => {
    const certificate = makeCertificate('localhost');
    const { url } = await boot({}, {}, certificate);
    expect(url.startsWith('wss:')).toBe(true);
    // ws passes TLS options through to tls.connect(): the certificate is
    // for localhost, the address 127.0.0.1.
    const tlsOptions: ClientOptions & { servername: string } = {
      ca: certificate.cert,
      servername: 'localhost',
    };
    const c = await WsClient.connect(
      url,
      'terminal.mudstandards.org',
      tlsOptions,
    );
    await c.expectLine('welcome websocket terminal.mudstandards.org');
    expect(journal.entries).toContainEqual(expect.stringMatching(/^tls:TLSv1/));
    c.send('over tls');
    await c.expectLine('echo over tls');
    await c.close();
  });

  it("reaches WebSocket players with the adapter's broadcasts, and counts them in the metrics", async () => {
    const { url, telnetPort } = await boot(
      {},
      { blockList: ['127.0.0.2'] },
      undefined,
      new InMemoryAdapter(),
    );
    const web = await WsClient.connect(url, 'terminal.mudstandards.org');
    await web.expectLine(/^welcome/);
    const tcp = await LineClient.connect(telnetPort);
    await tcp.expectLine(/^welcome/);
    tcp.send('say through the adapter');
    await web.expectLine('tcp says through the adapter');
    await WsClient.refused(url, ['terminal.mudstandards.org'], {
      localAddress: '127.0.0.2',
    });
    const metrics = booted?.transport.metrics.snapshot();
    expect(metrics?.connectionsAdmitted).toBe(2);
    expect(metrics?.connectionsRefused.blocked).toBe(1);
    expect(metrics?.openConnections).toBe(2);
    expect(metrics?.bytesReceived).toBeGreaterThan(0);
    await web.close();
    await tcp.end();
  });

  it('answers 404 off its path and 426 to a plain HTTP request', async () => {
    const { url } = await boot({ path: '/ws' });
    const elsewhere = await WsClient.refused(url, [
      'terminal.mudstandards.org',
    ]);
    expect(elsewhere.status).toBe(404);
    const plain = await fetch(url.replace('ws:', 'http:') + 'ws');
    expect(plain.status).toBe(426);
    const c = await WsClient.connect(`${url}ws`, 'terminal.mudstandards.org');
    await c.expectLine(/^welcome/);
    await c.close();
  });
});
