import 'reflect-metadata';
import { afterEach, describe, expect, it } from '@jest/globals';
import {
  Controller,
  Get,
  type INestApplication,
  Injectable,
  Query,
} from '@nestjs/common';
import { Ctx } from '@nestjs/microservices';
import {
  HealthCheck,
  HealthCheckService,
  TerminusModule,
} from '@nestjs/terminus';
import { Test } from '@nestjs/testing';
import { get } from 'node:http';
import type { AddressInfo } from 'node:net';
import {
  ConnectionContext,
  EarwaxEvent,
  EarwaxModule,
  EarwaxTransport,
} from '../../lib/index.js';
import { EarwaxHealthIndicator } from '../../lib/terminus/index.js';
import { LineClient } from '../support/line-client.js';
import { RecordingLogger } from '../support/recording-logger.js';

/** What the extra "redis" check reports; the test changes it. */
@Injectable()
class ClusterState {
  healthy = true;
  failure: Error | undefined;
  hang = false;

  check() {
    if (this.failure) throw this.failure;
    if (this.hang) return new Promise<never>(() => undefined);
    return { healthy: this.healthy, connected: this.healthy };
  }
}

@Controller('health')
class HealthController {
  constructor(
    private readonly health: HealthCheckService,
    private readonly earwax: EarwaxHealthIndicator,
    private readonly cluster: ClusterState,
  ) {}

  @Get()
  @HealthCheck()
  check(@Query('max') max?: string) {
    return this.health.check([
      () =>
        this.earwax.isHealthy(
          'earwax',
          max === undefined ? {} : { maxOpenConnections: Number(max) },
        ),
    ]);
  }

  @Get('cluster')
  @HealthCheck()
  withCluster() {
    return this.health.check([
      () =>
        this.earwax.isHealthy('game', {
          checks: { redis: () => this.cluster.check() },
          checkTimeout: 200,
        }),
    ]);
  }
}

@Controller()
class GameController {
  @EarwaxEvent('on_connect')
  welcome(@Ctx() ctx: ConnectionContext) {
    ctx.sendString('welcome');
  }
}

interface HealthResponse {
  status: number;
  body: {
    status: string;
    details: Record<string, Record<string, unknown>>;
  };
}

/** GET over real HTTP, without keep-alive, bounded in time. */
function getJson(port: number, path: string): Promise<HealthResponse> {
  return new Promise((resolve, reject) => {
    const request = get(
      { host: '127.0.0.1', port, path, agent: false, timeout: 5000 },
      (response) => {
        let text = '';
        response.setEncoding('utf8');
        response.on('data', (chunk: string) => (text += chunk));
        response.on('end', () => {
          try {
            resolve({
              status: response.statusCode ?? 0,
              body: JSON.parse(text),
            });
          } catch {
            reject(new Error(`GET ${path}: not JSON: ${text}`));
          }
        });
      },
    );
    request.on('timeout', () =>
      request.destroy(new Error(`GET ${path} timed out after 5000 ms`)),
    );
    request.on('error', reject);
  });
}

describe('EarwaxHealthIndicator in a hybrid app (HTTP + game port)', () => {
  const apps: INestApplication[] = [];
  const clients: LineClient[] = [];
  afterEach(async () => {
    for (const client of clients.splice(0)) client.socket.destroy();
    for (const app of apps.splice(0)) await app.close();
  });

  /** The app, its HTTP port, and its (not yet started) game transport. */
  async function bootHybrid() {
    const logs = new RecordingLogger();
    const moduleRef = await Test.createTestingModule({
      imports: [EarwaxModule.forRoot(), TerminusModule.forRoot()],
      controllers: [HealthController, GameController],
      providers: [EarwaxHealthIndicator, ClusterState],
    })
      .setLogger(logs)
      .compile();
    const app = moduleRef.createNestApplication({ logger: logs });
    apps.push(app);
    const transport = new EarwaxTransport({
      host: '127.0.0.1',
      port: 0,
      encoding: 'utf8',
    });
    app.connectMicroservice(
      { strategy: transport },
      { inheritAppConfig: true },
    );
    await app.listen(0, '127.0.0.1');
    const port = (app.getHttpServer().address() as AddressInfo).port;
    return { app, transport, port, logs };
  }

  it('is down before the transport listens, up while it does, and down once it has closed', async () => {
    const { app, transport, port } = await bootHybrid();

    let res = await getJson(port, '/health');
    expect(res.status).toBe(503);
    expect(res.body.details.earwax).toMatchObject({
      status: 'down',
      transports: [
        {
          status: 'not_started',
          listeners: [{ name: 'default', address: null }],
        },
      ],
      message: 'transport default is not started',
    });

    await app.startAllMicroservices();
    const bound = transport.address();
    res = await getJson(port, '/health');
    expect(res.status).toBe(200);
    expect(res.body.status).toBe('ok');
    expect(res.body.details.earwax).toEqual({
      status: 'up',
      transports: [
        {
          status: 'listening',
          listeners: [{ name: 'default', address: `127.0.0.1:${bound?.port}` }],
        },
      ],
      openConnections: 0,
    });

    const player = await LineClient.connect(bound?.port ?? 0);
    clients.push(player);
    await player.expectLine('welcome');
    res = await getJson(port, '/health');
    expect(res.status).toBe(200);
    expect(res.body.details.earwax.openConnections).toBe(1);

    // A threshold below the open connections makes it down.
    res = await getJson(port, '/health?max=0');
    expect(res.status).toBe(503);
    expect(res.body.details.earwax).toMatchObject({
      status: 'down',
      openConnections: 1,
      maxOpenConnections: 0,
      message: '1 connections open, above 0',
    });
    expect((await getJson(port, '/health?max=1')).status).toBe(200);

    await transport.close();
    res = await getJson(port, '/health');
    expect(res.status).toBe(503);
    expect(res.body.details.earwax).toMatchObject({
      status: 'down',
      transports: [
        { status: 'closed', listeners: [{ name: 'default', address: null }] },
      ],
      openConnections: 0,
      message: 'transport default is closed',
    });
  });

  it('reports an extra check (where the Redis adapter plugs in): up, down, throwing, or too slow', async () => {
    const { app, port } = await bootHybrid();
    await app.startAllMicroservices();
    const cluster = app.get(ClusterState);

    let res = await getJson(port, '/health/cluster');
    expect(res.status).toBe(200);
    expect(res.body.details.game.checks).toEqual({
      redis: { status: 'up', connected: true },
    });

    cluster.healthy = false;
    res = await getJson(port, '/health/cluster');
    expect(res.status).toBe(503);
    expect(res.body.details.game).toMatchObject({
      status: 'down',
      checks: { redis: { status: 'down', connected: false } },
      message: 'redis is down',
    });

    cluster.failure = new Error('connect ECONNREFUSED 127.0.0.1:6379');
    res = await getJson(port, '/health/cluster');
    expect(res.status).toBe(503);
    expect(res.body.details.game).toMatchObject({
      checks: {
        redis: {
          status: 'down',
          message: 'connect ECONNREFUSED 127.0.0.1:6379',
        },
      },
      message: 'redis is down: connect ECONNREFUSED 127.0.0.1:6379',
    });

    cluster.failure = undefined;
    cluster.hang = true;
    res = await getJson(port, '/health/cluster');
    expect(res.status).toBe(503);
    expect(res.body.details.game).toMatchObject({
      checks: { redis: { status: 'down', message: 'timed out after 200 ms' } },
    });

    cluster.hang = false;
    cluster.healthy = true;
    expect((await getJson(port, '/health/cluster')).status).toBe(200);
  });

  it('rejects bad options with a clear error', async () => {
    const { app } = await bootHybrid();
    const indicator = app.get(EarwaxHealthIndicator);
    await expect(
      indicator.isHealthy('earwax', { maxOpenConnections: -1 }),
    ).rejects.toThrow(
      'EarwaxHealthIndicator: "maxOpenConnections" must be a finite number of at least 0, not -1.',
    );
    await expect(
      indicator.isHealthy('earwax', { checkTimeout: Number.NaN }),
    ).rejects.toThrow(RangeError);
    await expect(
      indicator.isHealthy('earwax', {
        checks: { redis: 'up' as unknown as () => { healthy: boolean } },
      }),
    ).rejects.toThrow('check "redis" must be a function');
  });

  it('is down in an application with no transport', async () => {
    const moduleRef = await Test.createTestingModule({
      imports: [EarwaxModule.forRoot(), TerminusModule.forRoot()],
      providers: [EarwaxHealthIndicator],
    })
      .setLogger(new RecordingLogger())
      .compile();
    const app = moduleRef.createNestApplication({ logger: false });
    apps.push(app);
    await app.init();
    await expect(app.get(EarwaxHealthIndicator).isHealthy()).resolves.toEqual({
      earwax: {
        status: 'down',
        transports: [],
        openConnections: 0,
        message: 'no EarwaxTransport is bound to this application',
      },
    });
  });

  it('names EarwaxModule when the application lacks it', async () => {
    await expect(
      Test.createTestingModule({
        imports: [TerminusModule.forRoot()],
        providers: [EarwaxHealthIndicator],
      })
        .setLogger(new RecordingLogger())
        .compile(),
    ).rejects.toThrow(
      'EarwaxHealthIndicator needs EarwaxModule.forRoot() (or forRootAsync()) imported in the application',
    );
  });
});
