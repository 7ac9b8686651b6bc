import 'reflect-metadata';
import { afterEach, describe, expect, it } from '@jest/globals';
import { Controller, type INestApplication, Inject } from '@nestjs/common';
import { Ctx, Payload } from '@nestjs/microservices';
import { Test } from '@nestjs/testing';
import { once } from 'node:events';
import { connect as tcpConnect } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import {
  BlockListService,
  ConnectionContext,
  EarwaxEvent,
  EarwaxMetrics,
  type EarwaxMetricsSnapshot,
  EarwaxModule,
  EarwaxTransport,
} from '../../lib/index.js';
import { makeCertificate } from '../support/certificates.js';
import { bootEarwax, type Booted } from '../support/boot.js';
import { Journal } from '../support/journal.js';
import { LineClient } from '../support/line-client.js';
import { RecordingLogger } from '../support/recording-logger.js';
import { Waiters } from '../support/waiters.js';

const JOURNAL = 'JOURNAL';

@Controller()
class GameController {
  constructor(@Inject(JOURNAL) private readonly journal: Journal) {}

  @EarwaxEvent('on_connect')
  welcome(@Ctx() ctx: ConnectionContext) {
    ctx.sendString('welcome');
  }

  @EarwaxEvent('on_data')
  data(@Payload() line: string, @Ctx() ctx: ConnectionContext) {
    if (line === 'quit') return ctx.disconnect('quit');
    if (line === 'boom') throw new Error('boom');
    return `echo ${line}`;
  }

  @EarwaxEvent('on_block')
  blocked(@Payload() reason: string) {
    this.journal.record(`block:${reason}`);
  }

  @EarwaxEvent('on_disconnect')
  left(@Payload() reason: string) {
    this.journal.record(`disconnect:${reason}`);
  }
}

/** Every byte a client has sent (its socket's own count). */
function sentBy(...clients: LineClient[]): number {
  return clients.reduce((sum, c) => sum + c.socket.bytesWritten, 0);
}

/** Every byte a client has received. */
function receivedBy(...clients: LineClient[]): number {
  return clients.reduce((sum, c) => sum + c.received.length, 0);
}

const noRefusals = {
  server_full: 0,
  blocked: 0,
  too_many_connections: 0,
  rate_limited: 0,
  refused: 0,
  guard_error: 0,
};
const noDisconnections = {
  client_closed: 0,
  reset: 0,
  quit: 0,
  kicked: 0,
  idle: 0,
  flood: 0,
  protocol: 0,
  line_too_long: 0,
  slow_consumer: 0,
  server_shutdown: 0,
  error: 0,
};

describe('EarwaxMetrics fed by a running transport', () => {
  let booted: Booted | undefined;
  const apps: INestApplication[] = [];
  const clients: LineClient[] = [];
  afterEach(async () => {
    for (const client of clients.splice(0)) client.socket.destroy();
    await booted?.app.close();
    booted = undefined;
    for (const app of apps.splice(0)) await app.close();
  });

  async function connect(port: number, from?: string): Promise<LineClient> {
    const client = await LineClient.connect(port, from);
    clients.push(client);
    return client;
  }

  it('counts connections, refusals, disconnections by reason, lines, errors and bytes exactly', async () => {
    const journal = new Journal();
    booted = await bootEarwax(
      {
        imports: [EarwaxModule.forRoot()],
        controllers: [GameController],
        providers: [{ provide: JOURNAL, useValue: journal }],
      },
      { encoding: 'utf8' },
    );
    const { app, transport, port } = booted;
    const metrics = app.get(EarwaxMetrics);
    // The module's one instance is what the transport feeds.
    expect(transport.metrics).toBe(metrics);
    let s: EarwaxMetricsSnapshot = metrics.snapshot();
    expect([s.transports, s.listeningTransports]).toEqual([1, 1]);

    const talker = await connect(port);
    await talker.expectLine('welcome');
    talker.send('hello');
    talker.send('boom');
    talker.send('world');
    await talker.expectLine('echo world');
    // The server has answered every line, so it has read every byte, and
    // written nothing the client has not seen.
    s = metrics.snapshot();
    expect(s).toMatchObject({
      connectionsAccepted: 1,
      connectionsAdmitted: 1,
      openConnections: 1,
      heldSockets: 1,
      linesReceived: 3,
      handlerErrors: 1,
      handlerTimeouts: 0,
      inputDropped: 0,
      bytesReceived: sentBy(talker),
      bytesSent: receivedBy(talker),
    });
    expect(talker.lines).toEqual(['welcome', 'echo hello', 'echo world']);

    const quitter = await connect(port, '127.0.0.2');
    await quitter.expectLine('welcome');
    quitter.send('quit');
    await quitter.expectClosedByServer();

    const banned = await connect(port, '127.0.0.5');
    await banned.expectLine('welcome');
    app.get(BlockListService).ban('127.0.0.5');
    await banned.expectClosedByServer();
    const refused = await connect(port, '127.0.0.5');
    await refused.expectClosedByServer();

    const resetter = await connect(port, '127.0.0.3');
    await resetter.expectLine('welcome');
    await resetter.reset();

    await talker.end();
    await journal.waitFor(
      (es) => es.length === 5,
      'four disconnections and one refusal',
    );
    expect([...journal.entries].sort()).toEqual([
      'block:blocked',
      'disconnect:client_closed',
      'disconnect:kicked',
      'disconnect:quit',
      'disconnect:reset',
    ]);

    // Closing releases every socket still held, so the totals are final.
    await app.close();
    booted = undefined;
    s = metrics.snapshot();
    const everyone = [talker, quitter, banned, refused, resetter];
    expect(s).toEqual({
      connectionsAccepted: 5,
      connectionsAdmitted: 4,
      connectionsRefused: { ...noRefusals, blocked: 1 },
      disconnections: {
        ...noDisconnections,
        client_closed: 1,
        quit: 1,
        kicked: 1,
        reset: 1,
      },
      bytesReceived: sentBy(...everyone),
      bytesSent: receivedBy(...everyone),
      linesReceived: 4,
      inputDropped: 0,
      handlerErrors: 1,
      handlerTimeouts: 0,
      // No cluster adapter: nothing from other processes to refuse.
      clusterMessagesRejected: 0,
      openConnections: 0,
      heldSockets: 0,
      transports: 1,
      listeningTransports: 0,
    });
    // The exposition says the same.
    const text = metrics.toPrometheus();
    expect(text).toContain(
      'earwax_connections_refused_total{reason="blocked"} 1\n',
    );
    expect(text).toContain('earwax_disconnections_total{reason="kicked"} 1\n');
    expect(text).toContain(`earwax_sent_bytes_total ${s.bytesSent}\n`);
  });

  it('counts lines dropped by the input-rate limiter, up to the flood disconnect', async () => {
    const journal = new Journal();
    booted = await bootEarwax(
      {
        controllers: [GameController],
        providers: [{ provide: JOURNAL, useValue: journal }],
      },
      {
        encoding: 'utf8',
        // Two lines pass; a token comes back only after a second.
        inputRate: {
          linesPerSecond: 1,
          lineBurst: 2,
          dropsBeforeDisconnect: 2,
        },
        messages: { floodWarning: 'slow down', flood: 'bye' },
      },
    );
    const client = await connect(booted.port);
    await client.expectLine('welcome');
    // One write: 2 pass, then the 3rd is dropped with a warning, the 4th
    // quietly, and the 5th (past dropsBeforeDisconnect) floods.
    client.write('a\r\nb\r\nc\r\nd\r\ne\r\n');
    await journal.waitForEntry('disconnect:flood');
    await client.closed;
    // The flood disconnect discards the events still queued (echoes).
    expect(client.lines).toEqual(['welcome', 'slow down', 'bye']);
    const s = booted.transport.metrics.snapshot();
    expect(s.linesReceived).toBe(5);
    expect(s.inputDropped).toBe(3);
    expect(s.disconnections.flood).toBe(1);
  });

  it('counts a TLS connection as on the wire, handshake included, and releases it', async () => {
    const { key, cert } = makeCertificate('metrics');
    booted = await bootEarwax(
      {
        controllers: [GameController],
        providers: [{ provide: JOURNAL, useValue: new Journal() }],
      },
      { encoding: 'utf8', tls: { key, cert } },
    );
    // TLS over a TCP socket of our own, whose counters are the wire bytes.
    const tcp = tcpConnect({ port: booted.port, host: '127.0.0.1' });
    await once(tcp, 'connect');
    const tls = tlsConnect({ socket: tcp, ca: cert, servername: 'localhost' });
    tls.on('error', () => undefined);
    let text = '';
    const waits = new Waiters(() => `received ${JSON.stringify(text)}`);
    tls.setEncoding('utf8');
    tls.on('data', (chunk: string) => {
      text += chunk;
      waits.wake();
    });
    tls.once('close', () => waits.end('the connection closed'));
    try {
      await waits.until(() => text.includes('welcome\r\n'), 'the welcome');
      tls.write('hi\r\n');
      await waits.until(() => text.includes('echo hi\r\n'), 'the echo');
      // The server answered the last thing the client sent, and the echo
      // was the last thing it wrote.
      const s = booted.transport.metrics.snapshot();
      expect(s.bytesReceived).toBe(tcp.bytesWritten);
      expect(s.bytesSent).toBe(tcp.bytesRead);
      // Handshakes and records weigh more than the text they carry.
      expect(s.bytesReceived).toBeGreaterThan('hi\r\n'.length);
      expect(s.bytesSent).toBeGreaterThan(text.length);
    } finally {
      tls.destroy();
    }
    await booted.app.close();
    const s = booted.transport.metrics.snapshot();
    booted = undefined;
    expect([
      s.connectionsAccepted,
      s.connectionsAdmitted,
      s.heldSockets,
    ]).toEqual([1, 1, 0]);
  });

  it('gives a transport without EarwaxModule its own metrics, and the module one set for all its transports', async () => {
    // Without the module.
    booted = await bootEarwax(
      {
        controllers: [GameController],
        providers: [{ provide: JOURNAL, useValue: new Journal() }],
      },
      { encoding: 'utf8' },
    );
    const own = booted.transport.metrics;
    expect(own).toBeInstanceOf(EarwaxMetrics);
    const client = await connect(booted.port);
    await client.expectLine('welcome');
    expect(own.snapshot()).toMatchObject({
      connectionsAdmitted: 1,
      transports: 1,
      listeningTransports: 1,
    });
    await booted.app.close();
    booted = undefined;
    expect(own.snapshot().listeningTransports).toBe(0);

    // With the module, in a hybrid app running two transports: both feed
    // the application's one EarwaxMetrics.
    const moduleRef = await Test.createTestingModule({
      imports: [EarwaxModule.forRoot()],
      controllers: [GameController],
      providers: [{ provide: JOURNAL, useValue: new Journal() }],
    })
      .setLogger(new RecordingLogger())
      .compile();
    const hybrid = moduleRef.createNestApplication({ logger: false });
    apps.push(hybrid);
    const transports = [0, 1].map(
      () =>
        new EarwaxTransport({ host: '127.0.0.1', port: 0, encoding: 'utf8' }),
    );
    for (const strategy of transports) hybrid.connectMicroservice({ strategy });
    await hybrid.startAllMicroservices();
    await hybrid.init();
    const shared = hybrid.get(EarwaxMetrics);
    expect(transports.map((t) => t.metrics)).toEqual([shared, shared]);
    for (const t of transports) {
      const c = await connect(t.address()?.port ?? 0);
      await c.expectLine('welcome');
    }
    expect(shared.snapshot()).toMatchObject({
      connectionsAdmitted: 2,
      openConnections: 2,
      transports: 2,
      listeningTransports: 2,
    });
    await transports[0].close();
    expect(shared.snapshot()).toMatchObject({
      connectionsAdmitted: 2,
      openConnections: 1,
      transports: 2,
      listeningTransports: 1,
    });
  });
});
