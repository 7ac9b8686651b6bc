import 'reflect-metadata';
import { afterEach, describe, expect, it } from '@jest/globals';
import { Controller, Inject } from '@nestjs/common';
import { Ctx, Payload } from '@nestjs/microservices';
import {
  BlockListService,
  ConnectionContext,
  EarwaxEvent,
  EarwaxModule,
  type EarwaxTransportOptions,
} from '../../lib/index.js';
import { bootEarwax, type Booted } from '../support/boot.js';
import { Haproxy, type SendProxyVersion } from '../support/haproxy.js';
import { Journal } from '../support/journal.js';
import { LineClient } from '../support/line-client.js';

const JOURNAL = 'JOURNAL';
/** Generous for a loaded 2-core machine; every wait inside is bounded too. */
const TEST_TIMEOUT_MS = 10_000;

/** Records every event with the address Earwax saw, and echoes lines. */
@Controller()
class WhoController {
  constructor(@Inject(JOURNAL) private readonly journal: Journal) {}

  @EarwaxEvent('on_connect')
  connected(@Ctx() ctx: ConnectionContext) {
    this.journal.record(
      `connect:${ctx.hostname}:${ctx.port} address ${ctx.address.address} via ${ctx.proxy?.address ?? 'none'}`,
    );
  }

  @EarwaxEvent('on_block')
  blocked(@Payload() reason: string, @Ctx() ctx: ConnectionContext) {
    this.journal.record(`block:${reason}:${ctx.hostname}`);
  }

  @EarwaxEvent('on_data')
  data(@Payload() line: string, @Ctx() ctx: ConnectionContext) {
    this.journal.record(`data:${ctx.hostname}:${line}`);
    ctx.sendString(`you are ${ctx.hostname}: ${line}`);
  }

  @EarwaxEvent('on_disconnect')
  disconnected(@Payload() reason: string, @Ctx() ctx: ConnectionContext) {
    this.journal.record(`disconnect:${ctx.hostname}:${reason}`);
  }
}

describe('behind a real HAProxy', () => {
  let booted: Booted | undefined;
  let haproxy: Haproxy | undefined;
  const clients: LineClient[] = [];
  let journal: Journal;

  afterEach(async () => {
    for (const client of clients.splice(0)) client.socket.destroy();
    try {
      await haproxy?.stop();
    } finally {
      haproxy = undefined;
      await booted?.app.close();
      booted = undefined;
    }
  });

  /** Earwax behind the PROXY protocol, then HAProxy in front of it. */
  async function boot(
    versions: readonly SendProxyVersion[],
    options: EarwaxTransportOptions = {},
  ): Promise<{ booted: Booted; haproxy: Haproxy }> {
    journal = new Journal();
    booted = await bootEarwax(
      {
        imports: [EarwaxModule.forRoot()],
        controllers: [WhoController],
        providers: [{ provide: JOURNAL, useValue: journal }],
      },
      {
        encoding: 'utf8',
        proxyProtocol: { trustedProxies: ['127.0.0.1'] },
        ...options,
      },
    );
    haproxy = await Haproxy.start({ earwaxPort: booted.port, versions });
    return { booted, haproxy };
  }

  /** Each client's own port, kept as it was once the socket is gone. */
  const sourcePorts = new WeakMap<LineClient, number>();

  async function connect(port: number, from: string): Promise<LineClient> {
    const client = await LineClient.connect(port, from);
    clients.push(client);
    expect(client.socket.localAddress).toBe(from);
    sourcePorts.set(client, client.socket.localPort!);
    return client;
  }

  /** What on_connect records for `client` from `ip`, through the proxy. */
  function seenAs(client: LineClient, ip: string): string {
    return `connect:${ip}:${sourcePorts.get(client)} address ${ip} via 127.0.0.1`;
  }

  describe.each<{ version: SendProxyVersion; send: string }>([
    { version: 1, send: 'send-proxy' },
    { version: 2, send: 'send-proxy-v2' },
  ])('PROXY v$version ($send)', ({ version }) => {
    it(
      'shows Earwax the real client address and port, and echo works both ways',
      async () => {
        const { haproxy } = await boot([version]);
        const port = haproxy.port(version);
        const two = await connect(port, '127.0.0.2');
        const three = await connect(port, '127.0.0.3');
        // HAProxy opens its server connection at once, before any data.
        await journal.waitForEntry(seenAs(two, '127.0.0.2'));
        await journal.waitForEntry(seenAs(three, '127.0.0.3'));

        two.send('hello from two');
        three.send('hello from three');
        await expect(two.expectLine(/^you are /)).resolves.toBe(
          'you are 127.0.0.2: hello from two',
        );
        await expect(three.expectLine(/^you are /)).resolves.toBe(
          'you are 127.0.0.3: hello from three',
        );
        await journal.waitForEntry('data:127.0.0.2:hello from two');
        await journal.waitForEntry('data:127.0.0.3:hello from three');

        // Every connection Earwax saw is one of the two clients (the
        // readiness probe never reaches it), none as the proxy's address.
        expect(
          journal.entries.filter((e) => e.startsWith('connect:')).sort(),
        ).toEqual([seenAs(two, '127.0.0.2'), seenAs(three, '127.0.0.3')]);
        expect(booted!.transport.connections.size).toBe(2);
        expect(
          [...booted!.transport.connections]
            .map((ctx) => `${ctx.hostname} via ${ctx.proxy?.address}`)
            .sort(),
        ).toEqual(['127.0.0.2 via 127.0.0.1', '127.0.0.3 via 127.0.0.1']);
      },
      TEST_TIMEOUT_MS,
    );

    it(
      'bans the real client: kicks it through HAProxy and refuses its reconnect, others unaffected',
      async () => {
        const { booted, haproxy } = await boot([version]);
        const port = haproxy.port(version);
        const two = await connect(port, '127.0.0.2');
        const three = await connect(port, '127.0.0.3');
        await journal.waitForEntry(seenAs(two, '127.0.0.2'));
        await journal.waitForEntry(seenAs(three, '127.0.0.3'));
        two.send('before');
        await two.expectLine('you are 127.0.0.2: before');

        booted.app.get(BlockListService).ban('127.0.0.2');
        await journal.waitForEntry('disconnect:127.0.0.2:kicked');
        // Earwax closed its side; HAProxy passes the close to the client.
        await two.expectClosedByServer();

        const again = await connect(port, '127.0.0.2');
        await journal.waitForEntry('block:blocked:127.0.0.2');
        await again.expectClosedByServer();

        // The ban matched the client, not the proxy: 127.0.0.3 is still
        // connected and talking, and can connect again.
        three.send('still here');
        await three.expectLine('you are 127.0.0.3: still here');
        const fresh = await connect(port, '127.0.0.3');
        await journal.waitForEntry(seenAs(fresh, '127.0.0.3'));
        fresh.send('new');
        await fresh.expectLine('you are 127.0.0.3: new');

        expect(
          journal.entries.filter(
            (e) =>
              e.startsWith('connect:127.0.0.2:') || e.includes('127.0.0.1:'),
          ),
        ).toEqual([seenAs(two, '127.0.0.2')]);
        expect(journal.count((e) => e.startsWith('block:'))).toBe(1);
        expect(journal.count((e) => e.startsWith('disconnect:'))).toBe(1);
      },
      TEST_TIMEOUT_MS,
    );

    it(
      'closes a direct connection from 127.0.0.2, not a trusted proxy, while the proxied one works',
      async () => {
        const { booted, haproxy } = await boot([version]);
        const proxied = await connect(haproxy.port(version), '127.0.0.2');
        await journal.waitForEntry(seenAs(proxied, '127.0.0.2'));

        const direct = await connect(booted.port, '127.0.0.2');
        direct.write('PROXY TCP4 203.0.113.9 127.0.0.1 1234 4000\r\nhi\r\n');
        await direct.expectClosedByServer();
        await booted.logs.waitFor(/not a trusted proxy/, 'warn');
        expect(
          booted.logs
            .find(/not a trusted proxy/, 'warn')
            .map((entry) => entry.context),
        ).toEqual([`127.0.0.2:${direct.socket.localPort}`]);
        expect(direct.lines).toEqual([]);

        proxied.send('through the proxy');
        await proxied.expectLine('you are 127.0.0.2: through the proxy');
        // The direct connection never became a connection, nor a refusal.
        expect(journal.entries).toEqual([
          seenAs(proxied, '127.0.0.2'),
          'data:127.0.0.2:through the proxy',
        ]);
      },
      TEST_TIMEOUT_MS,
    );
  });

  it(
    'accepts only the configured version: with versions [2], the send-proxy frontend is refused',
    async () => {
      const { booted, haproxy } = await boot([1, 2], {
        proxyProtocol: { trustedProxies: ['127.0.0.1'], versions: [2] },
      });
      const viaV1 = await connect(haproxy.port(1), '127.0.0.2');
      await booted.logs.waitFor(/PROXY v1 header not accepted/, 'warn');
      await viaV1.expectClosedByServer();

      const viaV2 = await connect(haproxy.port(2), '127.0.0.3');
      await journal.waitForEntry(seenAs(viaV2, '127.0.0.3'));
      viaV2.send('v2 only');
      await viaV2.expectLine('you are 127.0.0.3: v2 only');
      expect(journal.entries).toEqual([
        seenAs(viaV2, '127.0.0.3'),
        'data:127.0.0.3:v2 only',
      ]);
    },
    TEST_TIMEOUT_MS,
  );
});
