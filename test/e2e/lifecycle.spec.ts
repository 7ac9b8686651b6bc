import 'reflect-metadata';
import { afterEach, describe, expect, it } from '@jest/globals';
import {
  type ArgumentsHost,
  Catch,
  Controller,
  type ExceptionFilter,
  Inject,
  UseFilters,
} from '@nestjs/common';
import { Ctx, Payload } from '@nestjs/microservices';
import { EMPTY } from 'rxjs';
import {
  ConnectionContext,
  ConnectionRegistry,
  EarwaxEvent,
  EarwaxModule,
  EarwaxStatus,
  type EarwaxTransportOptions,
} from '../../lib/index.js';
import { bootEarwax, type Booted } from '../support/boot.js';
import { Journal } from '../support/journal.js';
import { LineClient } from '../support/line-client.js';

const JOURNAL = 'JOURNAL';

class GameError extends Error {}

/** Tells the player what went wrong; the error counts as handled. */
@Catch(GameError)
class GameErrorFilter implements ExceptionFilter {
  catch(error: GameError, host: ArgumentsHost) {
    host
      .switchToRpc()
      .getContext<ConnectionContext>()
      .sendString(`Oops: ${error.message}`);
    return EMPTY;
  }
}

/**
 * A small game: `kick <name>` kicks another player by name, `quit` leaves,
 * `boom` throws, `oops` throws a filtered error, `flood <n>` sends n KiB,
 * `all <text>` broadcasts; anything else is echoed.
 */
@Controller()
@UseFilters(GameErrorFilter)
class GameController {
  constructor(
    @Inject(JOURNAL) private readonly journal: Journal,
    private readonly registry: ConnectionRegistry,
  ) {}

  @EarwaxEvent('on_connect')
  connected(@Ctx() ctx: ConnectionContext) {
    this.journal.record(
      `connect:${this.registry.has(ctx.id)}:${this.registry.size}`,
    );
    ctx.sendString(`id ${ctx.id}`);
  }

  @EarwaxEvent('on_data')
  data(@Payload() line: string, @Ctx() ctx: ConnectionContext) {
    const [verb, ...rest] = line.split(' ');
    const arg = rest.join(' ');
    switch (verb) {
      case 'kick':
        this.registry.get(arg)?.disconnect();
        ctx.sendString('kicked');
        return;
      case 'quit':
        ctx.sendString('Goodbye.');
        ctx.disconnect();
        return;
      case 'boom':
        throw new Error('boom');
      case 'oops':
        throw new GameError('no such room');
      case 'flood':
        for (let i = 0; i < Number(arg); i++)
          ctx.sendRaw(Buffer.alloc(1024, 0x61));
        return;
      case 'all':
        ctx.sendString(
          `sent to ${this.registry.broadcast(arg, { except: ctx })}`,
        );
        return;
      default:
        this.journal.record(`data:${line}`);
        ctx.sendString(line);
    }
  }

  @EarwaxEvent('on_disconnect')
  disconnected(@Payload() reason: string, @Ctx() ctx: ConnectionContext) {
    this.journal.record(`disconnect:${reason}:${this.registry.has(ctx.id)}`);
    // Returns false, never throws, when the peer can no longer be written to.
    this.journal.record(`farewell-sent:${ctx.sendString('bye')}`);
  }
}

describe('connection lifecycle', () => {
  let booted: Booted | undefined;
  let journal: Journal;
  afterEach(async () => {
    await booted?.app.close();
    booted = undefined;
  });

  async function boot(options: EarwaxTransportOptions = {}) {
    journal = new Journal();
    booted = await bootEarwax(
      {
        imports: [EarwaxModule.forRoot()],
        controllers: [GameController],
        providers: [{ provide: JOURNAL, useValue: journal }],
      },
      { encoding: 'utf8', ...options },
    );
    return booted;
  }

  async function join(
    port: number,
  ): Promise<{ client: LineClient; id: string }> {
    const client = await LineClient.connect(port);
    const id = (await client.line(0)).slice(3);
    return { client, id };
  }

  const disconnects = () =>
    journal.entries.filter((e) => e.startsWith('disconnect:'));

  it('puts a connection in the registry before on_connect and takes it out before on_disconnect', async () => {
    const { port, transport } = await boot();
    const a = await join(port);
    const b = await join(port);
    expect(journal.entries).toEqual(['connect:true:1', 'connect:true:2']);
    expect([...transport.connections].map((c) => c.id)).toEqual([a.id, b.id]);
    await a.client.end();
    await journal.waitForEntry('disconnect:client_closed:false');
    expect(transport.connections.size).toBe(1);
    await b.client.end();
  });

  it('lets on_disconnect write to a client that only closed its sending side', async () => {
    const { port } = await boot();
    const { client } = await join(port);
    client.socket.end();
    await client.closed;
    expect(client.lines.slice(1)).toEqual(['bye']);
    expect(journal.entries).toContain('farewell-sent:true');
  });

  it('disconnects once on reset', async () => {
    const { port } = await boot();
    const { client } = await join(port);
    await client.reset();
    await journal.waitForEntry('disconnect:reset:false');
    expect(disconnects()).toEqual(['disconnect:reset:false']);
  });

  it('disconnects once when a handler calls ctx.disconnect(), dropping input queued behind it', async () => {
    const { port } = await boot();
    const { client } = await join(port);
    client.write('quit\r\nafter-quit\r\n');
    await client.closed;
    expect(client.lines.slice(1)).toEqual(['Goodbye.']);
    await journal.waitForEntry('disconnect:kicked:false');
    expect(disconnects()).toEqual(['disconnect:kicked:false']);
    expect(journal.entries).not.toContain('data:after-quit');
    expect(journal.entries).toContain('farewell-sent:false');
  });

  it('kicks another connection at once, without waiting for it to speak', async () => {
    const { port, transport } = await boot();
    const victim = await join(port);
    const admin = await join(port);
    admin.client.send(`kick ${victim.id}`);
    await victim.client.expectClosedByServer();
    await journal.waitForEntry('disconnect:kicked:false');
    expect(transport.connections.has(victim.id)).toBe(false);
    expect(await admin.client.line(1)).toBe('kicked');
    // Kicking again, or a connection that is gone, does nothing.
    admin.client.send(`kick ${victim.id}`);
    expect(await admin.client.line(2)).toBe('kicked');
    expect(disconnects()).toEqual(['disconnect:kicked:false']);
    await admin.client.end();
  });

  it('never throws into a sender when a peer is dead', async () => {
    const { port } = await boot();
    const dead = await join(port);
    const other = await join(port);
    const sender = await join(port);
    await dead.client.reset();
    sender.client.send('all hello');
    // Either 1 or 2: the dead peer may not have been noticed yet; never a throw.
    expect(await sender.client.expectLine(/^sent to [12]$/)).toBeTruthy();
    expect(await other.client.expectLine('hello')).toBe('hello');
    sender.client.send('still here');
    expect(await sender.client.expectLine('still here')).toBe('still here');
    await Promise.all([other.client.end(), sender.client.end()]);
  });

  it('routes a handler error through exception filters and keeps the connection by default', async () => {
    const { port, logs } = await boot();
    const { client } = await join(port);
    const bystander = await join(port);
    client.send('oops');
    expect(await client.line(1)).toBe('Oops: no such room');
    client.send('boom');
    client.send('after boom');
    expect(await client.line(2)).toBe('after boom');
    expect(
      logs.find('GameController.data failed on on_data', 'warn').length,
    ).toBeGreaterThan(0);
    expect(logs.find('boom', 'error').length).toBeGreaterThan(0);
    bystander.client.send('fine');
    expect(await bystander.client.line(1)).toBe('fine');
    expect(disconnects()).toEqual([]);
    await Promise.all([client.end(), bystander.client.end()]);
  });

  it("disconnects once with reason 'error' under the disconnect policy", async () => {
    const { port } = await boot({ handlerErrorPolicy: 'disconnect' });
    const { client } = await join(port);
    client.send('boom');
    await client.expectClosedByServer();
    await journal.waitForEntry('disconnect:error:false');
    expect(disconnects()).toEqual(['disconnect:error:false']);
  });

  it("drops a client that never reads with reason 'slow_consumer', leaving others served", async () => {
    const { port } = await boot({ maxOutputBuffer: 64 * 1024 });
    const { client } = await join(port);
    const other = await join(port);
    client.socket.pause();
    client.send('flood 4096');
    await journal.waitForEntry('disconnect:slow_consumer:false');
    other.client.send('ok');
    expect(await other.client.line(1)).toBe('ok');
    expect(disconnects()).toEqual(['disconnect:slow_consumer:false']);
    client.socket.destroy();
    await other.client.end();
  });

  it('closes gracefully: every connection gets on_disconnect, clients see EOF, nothing runs after', async () => {
    const { port, app, transport } = await boot();
    const statuses: string[] = [];
    transport.status.subscribe((s) => statuses.push(s));
    const clients = await Promise.all([join(port), join(port), join(port)]);
    await app.close();
    booted = undefined;
    await Promise.all(clients.map(({ client }) => client.closed));
    expect(disconnects()).toEqual(
      Array(3).fill('disconnect:server_shutdown:false'),
    );
    expect(statuses).toEqual([
      EarwaxStatus.LISTENING,
      EarwaxStatus.CLOSING,
      EarwaxStatus.CLOSED,
    ]);
    expect(transport.connections.size).toBe(0);
    const before = journal.entries.length;
    await expect(LineClient.connect(port)).rejects.toMatchObject({
      code: 'ECONNREFUSED',
    });
    expect(journal.entries.length).toBe(before);
  });
});
