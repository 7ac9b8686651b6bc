import 'reflect-metadata';
import { afterEach, describe, expect, it } from '@jest/globals';
import { once } from 'node:events';
import { Controller, Inject } from '@nestjs/common';
import { Ctx, Payload } from '@nestjs/microservices';
import { defer, of } from 'rxjs';
import {
  ConnectionContext,
  ConnectionRegistry,
  EarwaxEvent,
  EarwaxModule,
  EarwaxTransport,
  type EarwaxTransportOptions,
  EVENT_HANDLED,
  EventNameError,
} from '../../lib/index.js';
import {
  EarwaxTesting,
  type EarwaxTestServer,
} from '../../lib/testing/index.js';
import { Gate } from '../support/gate.js';
import { Journal } from '../support/journal.js';

const JOURNAL = 'JOURNAL';

@Controller()
class LifecycleController {
  constructor(@Inject(JOURNAL) private readonly journal: Journal) {}

  @EarwaxEvent('on_connect')
  connected(@Payload() data: unknown, @Ctx() ctx: ConnectionContext) {
    this.journal.record(`connect:${data === undefined}:${ctx.isOpen}`);
  }

  @EarwaxEvent('on_data')
  data(@Payload() line: Buffer) {
    this.journal.record(`data:${Buffer.isBuffer(line)}:${line.toString()}`);
  }

  @EarwaxEvent('on_disconnect')
  disconnected(@Payload() reason: string, @Ctx() ctx: ConnectionContext) {
    this.journal.record(`disconnect:${reason}:${ctx.state}`);
  }
}

@Controller()
class ChainController {
  constructor(
    @Inject(JOURNAL) private readonly journal: Journal,
    private readonly gate: Gate,
  ) {}

  @EarwaxEvent('on_data', { priority: -1 })
  last(@Payload() line: string) {
    this.journal.record(`last:${line}`);
  }

  @EarwaxEvent('on_data')
  middle(@Payload() line: string) {
    this.journal.record(`middle:${line}`);
    if (line === 'stop-sync') return EVENT_HANDLED;
    if (line === 'stop-async') return Promise.resolve(EVENT_HANDLED);
    if (line === 'stop-observable') return defer(() => of('x', EVENT_HANDLED));
    if (line === 'truthy') return 'yes';
    return undefined;
  }

  @EarwaxEvent('on_data', { priority: 5 })
  async first(@Payload() line: string) {
    if (line === 'wait') {
      this.journal.record('held');
      await this.gate.open;
    }
    this.journal.record(`first:${line}`);
  }
}

describe('events and handler chains', () => {
  let server: EarwaxTestServer | undefined;
  afterEach(async () => {
    await server?.close();
    server = undefined;
  });

  /** Boots the chain controller (utf8 lines) and returns its journal. */
  async function bootChain(options: EarwaxTransportOptions = {}) {
    const journal = new Journal();
    server = await EarwaxTesting.createServer(
      {
        imports: [EarwaxModule.forRoot()],
        controllers: [ChainController],
        providers: [{ provide: JOURNAL, useValue: journal }, Gate],
      },
      { transport: { encoding: 'utf8', ...options } },
    );
    return { journal, server };
  }

  it('dispatches on_connect, on_data and on_disconnect with their payloads', async () => {
    const journal = new Journal();
    server = await EarwaxTesting.createServer({
      imports: [EarwaxModule.forRoot()],
      controllers: [LifecycleController],
      providers: [{ provide: JOURNAL, useValue: journal }],
    });
    const client = await server.connect();
    await journal.waitForEntry('connect:true:true');
    client.send('hello');
    await journal.waitForEntry('data:true:hello');
    await client.close();
    await journal.waitForEntry('disconnect:client_closed:closing');
    expect(journal.entries).toEqual([
      'connect:true:true',
      'data:true:hello',
      'disconnect:client_closed:closing',
    ]);
  });

  it('runs handlers by priority, then registration order, and stops at EVENT_HANDLED', async () => {
    const { journal, server } = await bootChain();
    expect(server.transport.getHandlerOrder('on_data')).toEqual([
      'ChainController.first',
      'ChainController.middle',
      'ChainController.last',
    ]);
    const client = await server.connect();
    for (const line of [
      'go',
      'stop-sync',
      'stop-async',
      'stop-observable',
      'truthy',
      'end',
    ]) {
      client.send(line);
    }
    await journal.waitForEntry('last:end');
    expect(journal.entries).toEqual([
      'first:go',
      'middle:go',
      'last:go',
      'first:stop-sync',
      'middle:stop-sync',
      'first:stop-async',
      'middle:stop-async',
      'first:stop-observable',
      'middle:stop-observable',
      'first:truthy',
      'middle:truthy',
      'last:truthy',
      'first:end',
      'middle:end',
      'last:end',
    ]);
  });

  it("handles one connection's events in arrival order while others run", async () => {
    const { journal, server } = await bootChain();
    const gate = server.app.get(Gate);
    const [slow, fast] = await server.connectMany(2);
    slow.send('wait');
    slow.send('after-wait');
    fast.send('other');
    // The other connection is not held up by the waiting handler...
    await journal.waitForEntry('last:other');
    expect(journal.entries.some((e) => e.endsWith(':after-wait'))).toBe(false);
    // ...and the waiting connection's next line runs only after it.
    gate.release();
    await journal.waitForEntry('last:after-wait');
    const mine = journal.entries.filter((e) => e.endsWith('wait'));
    expect(mine).toEqual([
      'first:wait',
      'middle:wait',
      'last:wait',
      'first:after-wait',
      'middle:after-wait',
      'last:after-wait',
    ]);
  });
  it('pauses reading while a flood waits behind a slow handler, then delivers every line in order', async () => {
    // Without an input rate limit: this is about the event queue alone.
    const { journal, server } = await bootChain({
      maxQueuedEvents: 16,
      inputRate: false,
    });
    const client = await server.connect();
    const registry = server.app.get(ConnectionRegistry);
    expect(registry).toBe(server.registry);
    client.send('wait');
    await journal.waitForEntry('held');
    const [ctx] = registry;
    const paused = once(ctx.socket, 'pause');
    const flood = Array.from({ length: 20_000 }, (_, i) => `n${i}`);
    client.sendRaw(flood.map((l) => `${l}\r\n`).join(''));
    // The handler is held, so reading must stop long before the flood is read.
    await paused;
    expect(journal.entries.filter((e) => e.startsWith('first:n'))).toEqual([]);
    server.app.get(Gate).release();
    await journal.waitForEntry('last:n19999');
    expect(journal.entries.filter((e) => e.startsWith('first:n'))).toEqual(
      flood.map((l) => `first:${l}`),
    );
  });
});

@Controller()
class TellController {
  constructor(@Inject(JOURNAL) private readonly journal: Journal) {}

  @EarwaxEvent('on_tell')
  tell(@Payload() data: { text: string }, @Ctx() ctx: ConnectionContext) {
    this.journal.record(`tell:${data.text}`);
    ctx.sendString(`told ${data.text}`);
    return data.text === 'handled' ? EVENT_HANDLED : undefined;
  }

  @EarwaxEvent('on_data')
  async data(@Payload() line: string, @Ctx() ctx: ConnectionContext) {
    // A handler may await a custom event for its own connection.
    const handled = await this.transport.dispatchEvent('on_tell', ctx, {
      text: line,
    });
    ctx.sendString(`handled=${handled}`);
  }

  transport!: EarwaxTransport;
}

@Controller()
class UnknownEventController {
  @EarwaxEvent('on_nothing')
  nothing() {}
}

describe('custom events and EventNameError', () => {
  let server: EarwaxTestServer | undefined;
  afterEach(async () => {
    await server?.close();
    server = undefined;
  });

  it('dispatches a registered custom event and reports whether it was handled', async () => {
    const journal = new Journal();
    server = await EarwaxTesting.createServer(
      {
        imports: [EarwaxModule.forRoot()],
        controllers: [TellController],
        providers: [{ provide: JOURNAL, useValue: journal }],
      },
      {
        transport: { encoding: 'utf8', eventTypes: ['on_tell'] },
        configure: (app, transport) => {
          app.get(TellController).transport = transport;
        },
      },
    );
    expect(server.transport.getEventTypes()).toEqual([
      'on_block',
      'on_connect',
      'on_disconnect',
      'on_data',
      'on_resize',
      'on_terminal',
      'on_gmcp',
      'on_tell',
    ]);
    const client = await server.connect();
    client.send('handled');
    client.send('plain');
    expect(await client.readLines(4)).toEqual([
      'told handled',
      'handled=true',
      'told plain',
      'handled=false',
    ]);
    expect(client.lines).toEqual([
      'told handled',
      'handled=true',
      'told plain',
      'handled=false',
    ]);
  });

  it('rejects dispatching an unknown event and registering a name twice', async () => {
    const transport = new EarwaxTransport();
    expect(transport.registerEventType('on_tick')).toBe('on_tick');
    expect(() => transport.registerEventType('on_tick')).toThrow(
      EventNameError,
    );
    expect(() => transport.registerEventType('on_data')).toThrow(
      /already registered/,
    );
    expect(() => new EarwaxTransport({ eventTypes: ['on_connect'] })).toThrow(
      EventNameError,
    );
    const ctx = {} as ConnectionContext;
    await expect(transport.dispatchEvent('on_nope', ctx)).rejects.toThrow(
      EventNameError,
    );
    await expect(transport.dispatchEvent('on_nope', ctx)).rejects.toMatchObject(
      {
        eventName: 'on_nope',
      },
    );
    // A registered event with no handlers is simply not handled.
    await expect(transport.dispatchEvent('on_tick', ctx)).resolves.toBe(false);
  });

  it('fails app.listen() when a handler names an unregistered event, naming class and method', async () => {
    const attempt = EarwaxTesting.createServer({
      controllers: [UnknownEventController],
    });
    await expect(attempt).rejects.toThrow(EventNameError);
    await expect(
      EarwaxTesting.createServer({ controllers: [UnknownEventController] }),
    ).rejects.toThrow(
      /UnknownEventController\.nothing.*"on_nothing" is not registered/,
    );
  });

  it('accepts the event once it is registered before listen()', async () => {
    server = await EarwaxTesting.createServer(
      { controllers: [UnknownEventController] },
      {
        configure: (_app, transport) => {
          transport.registerEventType('on_nothing');
        },
      },
    );
    expect(server.transport.getHandlerOrder('on_nothing')).toEqual([
      'UnknownEventController.nothing',
    ]);
  });
});
