import 'reflect-metadata';
import {
  afterAll,
  afterEach,
  beforeAll,
  describe,
  expect,
  it,
} from '@jest/globals';
import { Controller, Inject } from '@nestjs/common';
import { Ctx, Payload } from '@nestjs/microservices';
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect as netConnect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import {
  BlockListService,
  ConnectionContext,
  EarwaxEvent,
  EarwaxModule,
  type EarwaxTransportOptions,
} from '../../lib/index.js';
import {
  EarwaxTestClient,
  EarwaxTesting,
  type EarwaxTestServer,
} from '../../lib/testing/index.js';
import { bootEarwax, type Booted } from '../support/boot.js';
import {
  makeCertificate,
  type TestCertificate,
} from '../support/certificates.js';
import { WatchedChild } from '../support/child-process.js';
import { Haproxy, type SendProxyVersion } from '../support/haproxy.js';
import { Journal } from '../support/journal.js';
import { LineClient } from '../support/line-client.js';
import { awaitEvent } from '../support/pending-waits.js';

const JOURNAL = 'JOURNAL';
/**
 * Only a bound for a test that hangs, generous for a busy machine: every
 * wait inside ends on an event, or fails at once when the socket or process
 * it depends on ends.
 */
const TEST_TIMEOUT_MS = 30_000;

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

describe('TLS passthrough: a real HAProxy (mode tcp) in front of a TLS listener with the PROXY protocol', () => {
  let cert: TestCertificate;
  let certDir: string;
  /** The test certificate as a file, for `openssl s_client -CAfile`. */
  let caFile: string;
  let server: EarwaxTestServer | undefined;
  let haproxy: Haproxy | undefined;
  let journal: Journal;
  const sockets: Socket[] = [];
  const children: WatchedChild[] = [];

  beforeAll(() => {
    cert = makeCertificate('haproxy passthrough');
    certDir = mkdtempSync(join(tmpdir(), 'earwax-haproxy-tls-'));
    caFile = join(certDir, 'ca.pem');
    writeFileSync(caFile, cert.cert);
  });

  afterAll(() => {
    rmSync(certDir, { recursive: true, force: true });
  });

  afterEach(async () => {
    for (const socket of sockets.splice(0)) socket.destroy();
    for (const child of children.splice(0)) await child.stop('SIGKILL');
    try {
      await haproxy?.stop();
    } finally {
      haproxy = undefined;
      await server?.close();
      server = undefined;
    }
  });

  /**
   * Earwax with one TLS listener that requires the PROXY protocol from
   * 127.0.0.1, and HAProxy forwarding to it in TCP mode (no `ssl` on its
   * side: the TLS bytes pass through), with the given PROXY version.
   */
  async function boot(
    version: SendProxyVersion,
  ): Promise<{ server: EarwaxTestServer; port: number }> {
    journal = new Journal();
    server = await EarwaxTesting.createServer(
      {
        imports: [EarwaxModule.forRoot()],
        controllers: [WhoController],
        providers: [{ provide: JOURNAL, useValue: journal }],
      },
      {
        transport: {
          encoding: 'utf8',
          listeners: [
            {
              name: 'tls',
              port: 0,
              tls: { key: cert.key, cert: cert.cert },
              proxyProtocol: { trustedProxies: ['127.0.0.1'] },
            },
          ],
        },
      },
    );
    haproxy = await Haproxy.start({
      earwaxPort: server.addressOf('tls').port,
      versions: [version],
    });
    return { server, port: haproxy.port(version) };
  }

  /** `openssl s_client` from `from`, verifying the game's certificate. */
  function sClient(port: number, from: string) {
    const child = WatchedChild.spawn(
      'openssl s_client',
      'openssl',
      [
        's_client',
        '-connect',
        `127.0.0.1:${port}`,
        '-bind',
        `${from}:0`,
        '-servername',
        'localhost',
        '-CAfile',
        caFile,
        // A certificate that does not verify ends the handshake: the one
        // that does can only be the game's, so TLS went through HAProxy.
        '-verify_return_error',
        '-quiet',
      ],
      { stdio: ['pipe', 'pipe', 'pipe'] },
    );
    children.push(child);
    // A write after s_client has gone is reported by expectOutput.
    child.child.stdin?.on('error', () => undefined);
    return {
      send: (line: string) => child.child.stdin?.write(`${line}\n`),
      /**
       * Waits for `text` in its output; fails at once, with its stderr, if
       * it ends without writing it (is the openssl package installed?
       * .ci/run installs it).
       */
      expectOutput: (text: string): Promise<void> =>
        child.until(
          () => child.stdout().includes(text),
          `openssl s_client to write ${JSON.stringify(text)}`,
        ),
    };
  }

  describe.each<{ version: SendProxyVersion; send: string }>([
    { version: 1, send: 'send-proxy' },
    { version: 2, send: 'send-proxy-v2' },
  ])('PROXY v$version ($send)', ({ version }) => {
    it(
      'serves openssl s_client from 127.0.0.2 over TLS through HAProxy, as 127.0.0.2, and echo works both ways',
      async () => {
        const { server, port } = await boot(version);
        const client = sClient(port, '127.0.0.2');
        // s_client sends it once its handshake is done; a failure shows
        // what s_client said.
        client.send('hello through haproxy');
        await client.expectOutput('you are 127.0.0.2: hello through haproxy');
        expect(journal.entries).toEqual([
          expect.stringMatching(
            /^connect:127\.0\.0\.2:\d+ address 127\.0\.0\.2 via 127\.0\.0\.1$/,
          ),
          'data:127.0.0.2:hello through haproxy',
        ]);

        expect(server.registry.size).toBe(1);
        const [ctx] = [...server.registry];
        expect(ctx.listener).toBe('tls');
        expect(ctx.hostname).toBe('127.0.0.2');
        expect(ctx.proxy?.address).toBe('127.0.0.1');
        // The header named s_client's own port, not HAProxy's.
        expect(ctx.port).not.toBe(ctx.proxy?.port);
        expect(ctx.tls?.protocol).toMatch(/^TLSv1\.[23]$/);
        expect(ctx.tls?.servername).toBe('localhost');
        ctx.sendString('a word from the game');
        await client.expectOutput('a word from the game');
      },
      TEST_TIMEOUT_MS,
    );

    it(
      'refuses a banned client address before the TLS handshake (no TLS byte goes back), and serves the others',
      async () => {
        const { server, port } = await boot(version);
        server.app.get(BlockListService).ban('127.0.0.2');

        const raw = netConnect({
          host: '127.0.0.1',
          port,
          localAddress: '127.0.0.2',
        });
        sockets.push(raw);
        raw.on('error', () => undefined);
        await awaitEvent(once(raw, 'connect'), 'connecting to HAProxy');
        const hello = tlsConnect({
          socket: raw,
          ca: cert.cert,
          servername: 'localhost',
        });
        hello.on('error', () => undefined);
        let secured = false;
        hello.once('secureConnect', () => (secured = true));
        // The ClientHello went to HAProxy and on to Earwax, which read the
        // PROXY header, found the real address banned and closed: HAProxy
        // then closes the client's side.
        await awaitEvent(
          once(raw, 'close'),
          'HAProxy to close the banned client',
        );
        await journal.waitForEntry('block:blocked:127.0.0.2');
        expect(raw.bytesRead).toBe(0);
        expect(secured).toBe(false);
        expect(server.logs.find(/TLS handshake/)).toEqual([]);

        // Another address gets in over TLS through the same frontend.
        const other = await EarwaxTestClient.connect({
          port,
          from: '127.0.0.3',
          tls: { ca: cert.cert, servername: 'localhost' },
        });
        try {
          // `client <address:port> → ...`: the client's own end.
          const [, self] = other.label.split(' ');
          await journal.waitForEntry(
            `connect:${self} address 127.0.0.3 via 127.0.0.1`,
          );
          other.send('still served');
          await other.expectLine('you are 127.0.0.3: still served');
        } finally {
          await other.close();
        }
        expect(
          journal.entries.filter(
            (e) => e.startsWith('block:') || e.startsWith('connect:'),
          ),
        ).toEqual([
          'block:blocked:127.0.0.2',
          expect.stringMatching(/^connect:127\.0\.0\.3:/),
        ]);
      },
      TEST_TIMEOUT_MS,
    );
  });
});
