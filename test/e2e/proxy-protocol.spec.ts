import 'reflect-metadata';
import { afterEach, describe, expect, it } from '@jest/globals';
import { Controller, Inject } from '@nestjs/common';
import { Ctx, Payload } from '@nestjs/microservices';
import {
  ConnectionContext,
  EarwaxEvent,
  EarwaxModule,
  EarwaxTransport,
  type EarwaxTransportOptions,
} from '../../lib/index.js';
import { bootEarwax, type Booted } from '../support/boot.js';
import { Journal } from '../support/journal.js';
import { LineClient } from '../support/line-client.js';

const JOURNAL = 'JOURNAL';

/** Records who connected and what they said, by the address Earwax saw. */
@Controller()
class WhoController {
  constructor(@Inject(JOURNAL) private readonly journal: Journal) {}

  @EarwaxEvent('on_connect')
  connected(@Ctx() ctx: ConnectionContext) {
    this.journal.record(
      `connect:${ctx.hostname}:${ctx.port} via ${ctx.proxy?.address ?? 'none'}`,
    );
  }

  @EarwaxEvent('on_block')
  blocked(@Payload() reason: string, @Ctx() ctx: ConnectionContext) {
    this.journal.record(`block:${reason}:${ctx.hostname}`);
  }

  @EarwaxEvent('on_data')
  data(@Payload() line: string, @Ctx() ctx: ConnectionContext) {
    this.journal.record(`data:${line}`);
    ctx.sendString(`you are ${ctx.toString()}`);
  }
}

/** A PROXY v2 header for TCP over IPv4. */
function v2(source: string, sourcePort: number, local = false): Buffer {
  const signature = Buffer.from([
    0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a,
  ]);
  const block = Buffer.alloc(12);
  source.split('.').forEach((part, i) => (block[i] = Number(part)));
  [127, 0, 0, 1].forEach((part, i) => (block[4 + i] = part));
  block.writeUInt16BE(sourcePort, 8);
  block.writeUInt16BE(4000, 10);
  const head = Buffer.from([local ? 0x20 : 0x21, 0x11, 0, 12]);
  return Buffer.concat([signature, head, block]);
}

describe('PROXY protocol', () => {
  const running: Booted[] = [];
  const clients: LineClient[] = [];
  let journal: Journal;
  afterEach(async () => {
    for (const client of clients.splice(0)) client.socket.destroy();
    await Promise.all(running.splice(0).map((b) => b.app.close()));
  });

  async function boot(options: EarwaxTransportOptions = {}) {
    journal = new Journal();
    const booted = await bootEarwax(
      {
        imports: [EarwaxModule.forRoot()],
        controllers: [WhoController],
        providers: [{ provide: JOURNAL, useValue: journal }],
      },
      {
        encoding: 'utf8',
        proxyProtocol: { trustedProxies: ['127.0.0.1'], headerTimeout: 300 },
        ...options,
      },
    );
    running.push(booted);
    return booted;
  }

  async function connect(port: number, from?: string): Promise<LineClient> {
    const client = await LineClient.connect(port, from);
    clients.push(client);
    return client;
  }

  it('takes the client address from a v1 header, data in the same packet included', async () => {
    const { port } = await boot();
    const client = await connect(port);
    client.write('PROXY TCP4 203.0.113.9 127.0.0.1 51234 4000\r\nhello\r\n');
    await journal.waitForEntry('data:hello');
    expect(journal.entries).toEqual([
      'connect:203.0.113.9:51234 via 127.0.0.1',
      'data:hello',
    ]);
    await client.expectLine('you are 203.0.113.9:51234');
  });

  it('takes it from a v2 header split across packets, and IPv6 from v1', async () => {
    const { port } = await boot();
    const client = await connect(port);
    const header = v2('198.51.100.7', 40000);
    client.write(header.subarray(0, 5));
    client.write(header.subarray(5, 17));
    client.write(Buffer.concat([header.subarray(17), Buffer.from('hi\r\n')]));
    await client.expectLine('you are 198.51.100.7:40000');
    const six = await connect(port);
    six.write('PROXY TCP6 2001:db8::1 ::1 5000 4000\r\nx\r\n');
    await six.expectLine('you are [2001:db8::1]:5000');
  });

  it('keeps the socket address for LOCAL and UNKNOWN headers', async () => {
    const { port } = await boot();
    const local = await connect(port);
    local.write(Buffer.concat([v2('10.0.0.1', 1, true), Buffer.from('a\r\n')]));
    await local.expectLine(/^you are 127\.0\.0\.1:\d+$/);
    const unknown = await connect(port);
    unknown.write('PROXY UNKNOWN\r\nb\r\n');
    await unknown.expectLine(/^you are 127\.0\.0\.1:\d+$/);
  });

  it('applies the block list and per-address limits to the real client', async () => {
    const { port } = await boot({
      blockList: ['203.0.113.0/24'],
      maxConnectionsPerIp: 1,
    });
    const banned = await connect(port);
    banned.write('PROXY TCP4 203.0.113.50 127.0.0.1 1000 4000\r\n');
    await journal.waitForEntry('block:blocked:203.0.113.50');
    await banned.expectClosedByServer();
    // Two clients behind the same proxy, from different real addresses.
    const first = await connect(port);
    first.write('PROXY TCP4 198.51.100.1 127.0.0.1 1000 4000\r\n');
    const second = await connect(port);
    second.write('PROXY TCP4 198.51.100.2 127.0.0.1 1000 4000\r\n');
    await journal.waitForEntry('connect:198.51.100.2:1000 via 127.0.0.1');
    const again = await connect(port);
    again.write('PROXY TCP4 198.51.100.1 127.0.0.1 1001 4000\r\n');
    await journal.waitForEntry('block:too_many_connections:198.51.100.1');
  });

  it('closes connections from untrusted addresses, bad headers and late ones', async () => {
    const { port, logs } = await boot();
    const untrusted = await connect(port, '127.0.0.2');
    untrusted.write('PROXY TCP4 203.0.113.9 127.0.0.1 1 4000\r\n');
    await untrusted.expectClosedByServer();
    await logs.waitFor(/not a trusted proxy/, 'warn');
    const bad = await connect(port);
    bad.write('GET / HTTP/1.1\r\n\r\n');
    await bad.expectClosedByServer();
    await logs.waitFor(/not a PROXY protocol header/, 'warn');
    const late = await connect(port);
    late.write('PROXY TCP4 203.0.1');
    await late.expectClosedByServer();
    await logs.waitFor(/No complete PROXY header within 300 ms/, 'warn');
    expect(journal.entries).toEqual([]);
  });

  it('refuses an empty trusted list', () => {
    expect(
      () => new EarwaxTransport({ proxyProtocol: { trustedProxies: [] } }),
    ).toThrow(/at least one proxy/);
    expect(
      () =>
        new EarwaxTransport({
          proxyProtocol: { trustedProxies: ['10.0.0.0/33'] },
        }),
    ).toThrow(/not an IP address or CIDR range/);
  });
});
