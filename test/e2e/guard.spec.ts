import 'reflect-metadata';
import { afterEach, describe, expect, it } from '@jest/globals';
import { Controller, Inject, Injectable, Module } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { Ctx, Payload } from '@nestjs/microservices';
import {
  ConnectionContext,
  ConnectionGuard,
  ConnectionRegistry,
  EarwaxEvent,
  EarwaxModule,
  EarwaxTransport,
} from '../../lib/index.js';
import { bootEarwax, type Booted } from '../support/boot.js';
import { Journal } from '../support/journal.js';
import { LineClient } from '../support/line-client.js';
import { RecordingLogger } from '../support/recording-logger.js';

const JOURNAL = 'JOURNAL';

/** A block list, injected into the guard as a user's service would be. */
@Injectable()
class BlockList {
  readonly blocked = new Set<string>();
  readonly failing = new Set<string>();
}

@Injectable()
class BlockListGuard extends ConnectionGuard {
  constructor(private readonly list: BlockList) {
    super();
  }
  override async canConnect(ctx: ConnectionContext): Promise<boolean> {
    await Promise.resolve();
    if (this.list.failing.has(ctx.hostname))
      throw new Error('block list unavailable');
    return !this.list.blocked.has(ctx.hostname);
  }
}

@Injectable()
class ThrowingSyncGuard extends ConnectionGuard {
  override canConnect(): boolean {
    throw new Error('sync guard failure');
  }
}

@Controller()
class WatchController {
  constructor(
    @Inject(JOURNAL) private readonly journal: Journal,
    private readonly registry: ConnectionRegistry,
  ) {}

  @EarwaxEvent('on_block')
  blocked(@Payload() reason: string, @Ctx() ctx: ConnectionContext) {
    this.journal.record(`block:${reason}:${this.registry.has(ctx.id)}`);
    ctx.sendString('You are blocked.');
  }

  @EarwaxEvent('on_connect')
  connected(@Ctx() ctx: ConnectionContext) {
    this.journal.record(`connect:${ctx.hostname}`);
    ctx.sendString('Welcome.');
  }

  @EarwaxEvent('on_disconnect')
  disconnected(@Ctx() ctx: ConnectionContext) {
    this.journal.record(`disconnect:${ctx.hostname}`);
  }
}

/** The user's module that holds the block list. */
@Module({ providers: [BlockList], exports: [BlockList] })
class BlockListModule {}

/** The user's own module providing the guard under the ConnectionGuard token. */
@Module({
  providers: [
    BlockList,
    { provide: ConnectionGuard, useClass: BlockListGuard },
  ],
  exports: [BlockList],
})
class SecurityModule {}

describe('ConnectionGuard from dependency injection', () => {
  let booted: Booted | undefined;
  afterEach(async () => {
    await booted?.app.close();
    booted = undefined;
  });

  async function bootWith(imports: unknown[], providers: unknown[] = []) {
    const journal = new Journal();
    booted = await bootEarwax({
      imports: imports as never[],
      controllers: [WatchController],
      providers: [
        { provide: JOURNAL, useValue: journal },
        ...(providers as never[]),
      ],
    });
    const app = booted.app;
    return {
      journal,
      booted,
      get list() {
        return app.get(BlockList, { strict: false });
      },
    };
  }

  for (const [name, imports, providers] of [
    [
      'EarwaxModule.forRoot({ guard })',
      [
        EarwaxModule.forRoot({
          guard: BlockListGuard,
          imports: [BlockListModule],
        }),
      ],
      [],
    ],
    [
      'a provider in the user module',
      [EarwaxModule.forRoot(), SecurityModule],
      [],
    ],
  ] as const) {
    it(`admits and refuses with a guard given by ${name}`, async () => {
      const { journal, list, booted } = await bootWith(
        [...imports],
        [...providers],
      );
      list.blocked.add('127.0.0.2');

      const allowed = await LineClient.connect(booted.port, '127.0.0.1');
      expect(await allowed.line(0)).toBe('Welcome.');

      const refused = await LineClient.connect(booted.port, '127.0.0.2');
      await refused.closed;
      expect(refused.lines).toEqual(['You are blocked.']);
      expect(refused.ended).toBe(true);

      await allowed.end();
      await journal.waitForEntry('disconnect:127.0.0.1');
      expect(journal.entries).toEqual([
        'connect:127.0.0.1',
        'block:refused:false',
        'disconnect:127.0.0.1',
      ]);
      expect(booted.transport.connections.size).toBe(0);
    });
  }

  it('refuses (fails closed) and logs when the guard rejects', async () => {
    const { journal, list, booted } = await bootWith([
      EarwaxModule.forRoot({
        guard: BlockListGuard,
        imports: [BlockListModule],
      }),
    ]);
    list.failing.add('127.0.0.3');
    const client = await LineClient.connect(booted.port, '127.0.0.3');
    await client.closed;
    expect(client.lines).toEqual(['You are blocked.']);
    expect(journal.entries).toEqual(['block:guard_error:false']);
    expect(booted.logs.find('block list unavailable', 'error')).toHaveLength(1);
  });

  it('refuses and logs when the guard throws synchronously', async () => {
    const { journal, booted } = await bootWith([
      EarwaxModule.forRoot({ guard: ThrowingSyncGuard }),
    ]);
    const client = await LineClient.connect(booted.port);
    await client.closed;
    expect(journal.entries).toEqual(['block:guard_error:false']);
    expect(booted.logs.find('sync guard failure', 'error')).toHaveLength(1);
  });

  it('admits everyone when no guard is provided', async () => {
    const { journal, booted } = await bootWith([EarwaxModule.forRoot()]);
    const client = await LineClient.connect(booted.port, '127.0.0.4');
    expect(await client.line(0)).toBe('Welcome.');
    await client.end();
    await journal.waitForEntry('disconnect:127.0.0.4');
  });

  it('binds the guard in a hybrid application (connectMicroservice)', async () => {
    const journal = new Journal();
    @Module({
      imports: [
        EarwaxModule.forRoot({
          guard: BlockListGuard,
          imports: [BlockListModule],
        }),
      ],
      controllers: [WatchController],
      providers: [{ provide: JOURNAL, useValue: journal }],
    })
    class HybridModule {}
    const logs = new RecordingLogger();
    const app = await NestFactory.create(HybridModule, {
      logger: logs,
      abortOnError: false,
    });
    const transport = new EarwaxTransport({
      host: '127.0.0.1',
      port: 0,
      logConnections: false,
    });
    app.connectMicroservice(
      { strategy: transport },
      { inheritAppConfig: true },
    );
    await app.startAllMicroservices();
    try {
      app.get(BlockList, { strict: false }).blocked.add('127.0.0.5');
      const port = transport.address()!.port;
      const refused = await LineClient.connect(port, '127.0.0.5');
      await refused.closed;
      expect(refused.lines).toEqual(['You are blocked.']);
      const allowed = await LineClient.connect(port);
      expect(await allowed.line(0)).toBe('Welcome.');
      expect(app.get(ConnectionRegistry).size).toBe(1);
      await allowed.end();
    } finally {
      await app.close();
    }
  });

  it('uses a guard passed to the transport without the module', async () => {
    const journal = new Journal();
    const list = new BlockList();
    list.blocked.add('127.0.0.6');
    booted = await bootEarwax(
      {
        controllers: [WatchController],
        providers: [
          { provide: JOURNAL, useValue: journal },
          ConnectionRegistry,
        ],
      },
      { guard: new BlockListGuard(list) },
    );
    const refused = await LineClient.connect(booted.port, '127.0.0.6');
    await refused.closed;
    expect(journal.entries).toEqual(['block:refused:false']);
  });
});
