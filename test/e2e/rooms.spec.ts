import 'reflect-metadata';
import { afterEach, describe, expect, it } from '@jest/globals';
import { Controller, Inject, Injectable } from '@nestjs/common';
import { Ctx, Payload } from '@nestjs/microservices';
import {
  type AnyConnectionContext,
  ConnectionContext,
  ConnectionRegistry,
  EarwaxEvent,
  EarwaxModule,
} from '../../lib/index.js';
import {
  type EarwaxTestClient,
  EarwaxTesting,
  type EarwaxTestServer,
} from '../../lib/testing/index.js';
import { Journal } from '../support/journal.js';

const JOURNAL = 'JOURNAL';

/** What the chat keeps for each connection (`ctx.data`). */
interface Chatter {
  name?: string;
}
type ChatContext = ConnectionContext<Chatter>;

/** What the chat's on_disconnect handler saw. */
interface Departure {
  id: string;
  reason: string;
  /** `ctx.data.name`. */
  name: string | undefined;
  /** `ctx.rooms`. */
  rooms: string[];
  /** The rooms whose `registry.members()` still hold this connection. */
  listedIn: string[];
  /** `registry.has(ctx.id)`. */
  live: boolean;
  /** What `ctx.join('limbo')` returned. */
  rejoined: boolean;
  /** `registry.rooms()` at that point. */
  registryRooms: string[];
}

/** A plain service (not a controller) that talks to rooms. */
@Injectable()
class Herald {
  constructor(private readonly registry: ConnectionRegistry) {}

  announce(room: string, text: string): number {
    return this.registry.broadcast(`** ${text} **`, { room });
  }
}

/**
 * A small chat: `/join X`, `/leave X`, `/rooms`, `/name X`, `/say text` (to
 * the sender's rooms, not to the sender), `/shout room text` (through the
 * Herald service), `/ping`.
 */
@Controller()
class ChatController {
  constructor(
    @Inject(JOURNAL) private readonly journal: Journal<Departure>,
    private readonly registry: ConnectionRegistry,
    private readonly herald: Herald,
  ) {}

  @EarwaxEvent('on_connect')
  connected(@Ctx() ctx: ChatContext) {
    ctx.sendString(`id ${ctx.id}`);
  }

  @EarwaxEvent('on_data')
  data(@Payload() line: string, @Ctx() ctx: ChatContext) {
    const space = line.indexOf(' ');
    const verb = space === -1 ? line : line.slice(0, space);
    const arg = space === -1 ? '' : line.slice(space + 1);
    switch (verb) {
      case '/join':
        ctx.sendString(`join ${arg}: ${ctx.join(arg)}`);
        return;
      case '/leave':
        ctx.sendString(`leave ${arg}: ${ctx.leave(arg)}`);
        return;
      case '/rooms':
        ctx.sendString(`rooms: ${[...ctx.rooms].join(',')}`);
        return;
      case '/name':
        ctx.data.name = arg;
        ctx.sendString(`name: ${arg}`);
        return;
      case '/say': {
        // Typed state: `name` is `string | undefined` here.
        const name: string = ctx.data.name ?? 'someone';
        let sent = 0;
        for (const room of ctx.rooms) {
          sent += this.registry.broadcast(`[${room}] ${name}: ${arg}`, {
            room,
            except: ctx,
          });
        }
        ctx.sendString(`said to ${sent}`);
        return;
      }
      case '/shout': {
        const [room, ...words] = arg.split(' ');
        ctx.sendString(
          `shouted to ${this.herald.announce(room, words.join(' '))}`,
        );
        return;
      }
      case '/ping':
        ctx.sendString('pong');
        return;
      default:
        ctx.sendString(`unknown: ${line}`);
    }
  }

  @EarwaxEvent('on_disconnect')
  disconnected(@Payload() reason: string, @Ctx() ctx: ChatContext) {
    const self: AnyConnectionContext = ctx;
    this.journal.record({
      id: ctx.id,
      reason,
      name: ctx.data.name,
      rooms: [...ctx.rooms],
      listedIn: this.registry
        .rooms()
        .filter((room) =>
          this.registry.members(room).some((member) => member === self),
        ),
      live: this.registry.has(ctx.id),
      rejoined: ctx.join('limbo'),
      registryRooms: this.registry.rooms(),
    });
  }
}

/** A chat client with the id its connection was given. */
interface Member {
  client: EarwaxTestClient;
  id: string;
}

/** Lines a client got from `/say`, `/shout` or the Herald. */
function chatter(member: Member): string[] {
  return member.client.lines.filter(
    (line) => line.startsWith('[') || line.startsWith('**'),
  );
}

/**
 * Sends a command and waits for the first line after it that matches (other
 * clients' chat may arrive in between).
 */
async function reply(
  member: Member,
  command: string,
  pattern: RegExp,
): Promise<string> {
  const { client } = member;
  // Whatever came before the command is not its reply.
  await client.readLines(client.unread.length);
  client.send(command);
  return client.expectLine(pattern);
}

/**
 * Round-trips a `/ping`: every line the server wrote to this client before
 * it handled the ping has then arrived.
 */
async function settle(member: Member): Promise<void> {
  await reply(member, '/ping', /^pong$/);
}

describe('rooms and per-connection state', () => {
  let server: EarwaxTestServer | undefined;
  let journal: Journal<Departure>;

  afterEach(async () => {
    await server?.close();
    server = undefined;
  });

  async function boot(): Promise<EarwaxTestServer> {
    journal = new Journal<Departure>();
    server = await EarwaxTesting.createServer(
      {
        imports: [EarwaxModule.forRoot()],
        controllers: [ChatController],
        providers: [Herald, { provide: JOURNAL, useValue: journal }],
      },
      { transport: { encoding: 'utf8', logConnections: false } },
    );
    return server;
  }

  async function enter(): Promise<Member> {
    if (!server) throw new Error('boot() first');
    const client = await server.connect();
    const first = await client.readLine();
    expect(first).toMatch(/^id /);
    return { client, id: first.slice(3) };
  }

  async function departure(member: Member): Promise<Departure> {
    await journal.waitForEntry((d) => d.id === member.id);
    return journal.entries.find((d) => d.id === member.id) as Departure;
  }

  it('tracks rooms across join, leave and disconnect, and broadcasts to members only', async () => {
    const { app } = await boot();
    const registry = app.get(ConnectionRegistry);
    const a = await enter();
    const b = await enter();
    const c = await enter();

    expect(await reply(a, '/join tavern', /^join /)).toBe('join tavern: true');
    expect(await reply(b, '/join tavern', /^join /)).toBe('join tavern: true');
    expect(await reply(c, '/join forge', /^join /)).toBe('join forge: true');

    expect(registry.rooms()).toEqual(['tavern', 'forge']);
    expect(registry.members('tavern').map((m) => m.id)).toEqual([a.id, b.id]);
    expect(registry.members('forge').map((m) => m.id)).toEqual([c.id]);
    expect(registry.roomSize('tavern')).toBe(2);
    expect(registry.roomSize('forge')).toBe(1);
    expect(registry.roomSize('cellar')).toBe(0);
    expect(registry.members('cellar')).toEqual([]);
    expect(await reply(a, '/rooms', /^rooms:/)).toBe('rooms: tavern');
    expect(await reply(c, '/rooms', /^rooms:/)).toBe('rooms: forge');
    expect([...(registry.get(b.id)?.rooms ?? [])]).toEqual(['tavern']);

    // A room broadcast reaches the other members only.
    expect(await reply(a, '/say hello', /^said to/)).toBe('said to 1');
    expect(await b.client.expectLine(/^\[/)).toBe('[tavern] someone: hello');
    await settle(a);
    await settle(c);
    expect(chatter(a)).toEqual([]);
    expect(chatter(c)).toEqual([]);

    // B leaves: no longer a member, no longer reached.
    expect(await reply(b, '/leave tavern', /^leave /)).toBe(
      'leave tavern: true',
    );
    expect(await reply(b, '/leave tavern', /^leave /)).toBe(
      'leave tavern: false',
    );
    expect(await reply(b, '/rooms', /^rooms:/)).toBe('rooms: ');
    expect(registry.members('tavern').map((m) => m.id)).toEqual([a.id]);
    expect(await reply(c, '/join tavern', /^join /)).toBe('join tavern: true');
    expect(await reply(c, '/rooms', /^rooms:/)).toBe('rooms: forge,tavern');
    expect(registry.roomSize('tavern')).toBe(2);

    expect(await reply(a, '/say again', /^said to/)).toBe('said to 1');
    expect(await c.client.expectLine(/^\[tavern\]/)).toBe(
      '[tavern] someone: again',
    );
    await settle(b);
    expect(chatter(b)).toEqual(['[tavern] someone: hello']);

    // A disconnects (the client closes): the room shrinks.
    await a.client.close();
    const gone = await departure(a);
    expect(gone).toEqual({
      id: a.id,
      reason: 'client_closed',
      name: undefined,
      // Still readable in on_disconnect...
      rooms: ['tavern'],
      // ...while the registry no longer lists it anywhere.
      listedIn: [],
      live: false,
      rejoined: false,
      registryRooms: ['tavern', 'forge'],
    });
    expect(registry.roomSize('tavern')).toBe(1);
    expect(registry.members('tavern').map((m) => m.id)).toEqual([c.id]);
    expect(registry.rooms()).toEqual(['tavern', 'forge']);

    // The last member goes: the rooms disappear.
    await c.client.close();
    expect(await departure(c)).toMatchObject({
      rooms: ['forge', 'tavern'],
      listedIn: [],
      registryRooms: [],
    });
    expect(registry.rooms()).toEqual([]);
    expect(registry.roomSize('tavern')).toBe(0);
    expect(registry.roomSize('forge')).toBe(0);
    expect(registry.members('tavern')).toEqual([]);
    expect(registry.rooms()).not.toContain('limbo');
    expect(registry.size).toBe(1);
  });

  it('lets any service injected with ConnectionRegistry broadcast to a room', async () => {
    const { app, transport } = await boot();
    // The service's registry is the transport's.
    expect(app.get(ConnectionRegistry)).toBe(transport.connections);
    const a = await enter();
    const b = await enter();
    const c = await enter();
    await reply(a, '/join tavern', /^join /);
    await reply(b, '/join tavern', /^join /);

    // Called by the test, outside any handler.
    expect(app.get(Herald).announce('tavern', 'The bell tolls')).toBe(2);
    expect(await a.client.expectLine(/^\*\*/)).toBe('** The bell tolls **');
    expect(await b.client.expectLine(/^\*\*/)).toBe('** The bell tolls **');

    // Called by a handler of a connection that is not in the room.
    expect(await reply(c, '/shout tavern Last orders', /^shouted/)).toBe(
      'shouted to 2',
    );
    await a.client.expectLine('** Last orders **');
    await b.client.expectLine('** Last orders **');
    await settle(c);
    expect(chatter(c)).toEqual([]);

    expect(app.get(Herald).announce('nowhere', 'echo')).toBe(0);
  });

  it('broadcasts bytes to everyone, leaves out an iterable of connections, and sends nothing to an unknown room', async () => {
    const { app } = await boot();
    const registry = app.get(ConnectionRegistry);
    const a = await enter();
    const b = await enter();
    const c = await enter();

    // Bytes go out as they are (not UTF-8 text), then CR LF.
    const bytes = new Uint8Array([0xff, 0x00, 0x41]);
    const expected = Buffer.from([0xff, 0x00, 0x41, 0x0d, 0x0a]);
    expect(registry.broadcast(bytes)).toBe(3);
    for (const member of [a, b, c]) {
      await member.client.waitFor(
        () => member.client.received.includes(expected),
        'the broadcast bytes',
      );
      const idLine = Buffer.from(`id ${member.id}\r\n`);
      expect(member.client.received).toEqual(Buffer.concat([idLine, expected]));
    }

    // `except` takes any iterable: a generator here, not an array or a set.
    const ctxA = registry.get(a.id) as ConnectionContext;
    const ctxB = registry.get(b.id) as ConnectionContext;
    function* leftOut() {
      yield ctxA;
      yield ctxB;
    }
    expect(registry.broadcast('[all] psst', { except: leftOut() })).toBe(1);
    expect(await c.client.expectLine(/^\[all\]/)).toBe('[all] psst');
    // An array works as well.
    expect(registry.broadcast('[all] hush', { except: [ctxA, ctxB] })).toBe(1);
    await c.client.expectLine('[all] hush');
    await settle(a);
    await settle(b);
    expect(chatter(a)).toEqual([]);
    expect(chatter(b)).toEqual([]);

    // A room nobody is in: nothing sent, and no room created.
    expect(registry.broadcast('[cellar] anyone?', { room: 'cellar' })).toBe(0);
    expect(registry.broadcast(new Uint8Array([0x41]), { room: 'cellar' })).toBe(
      0,
    );
    expect(registry.rooms()).toEqual([]);
    // A room whose only member is left out: nothing sent either.
    await reply(c, '/join forge', /^join /);
    expect(
      registry.broadcast('[forge] x', {
        room: 'forge',
        except: registry.get(c.id),
      }),
    ).toBe(0);
    await settle(c);
    expect(chatter(c)).toEqual(['[all] psst', '[all] hush']);
  });

  it('refuses a second join of the same room, and any join of a connection that is no longer open', async () => {
    const { app } = await boot();
    const registry = app.get(ConnectionRegistry);
    const a = await enter();
    const b = await enter();

    expect(await reply(a, '/join tavern', /^join /)).toBe('join tavern: true');
    expect(await reply(a, '/join tavern', /^join /)).toBe('join tavern: false');
    expect(registry.roomSize('tavern')).toBe(1);
    expect(registry.members('tavern').map((m) => m.id)).toEqual([a.id]);
    expect(
      registry.join(registry.get(a.id) as ConnectionContext, 'tavern'),
    ).toBe(false);

    const ctxA = registry.get(a.id) as ConnectionContext;
    await a.client.close();
    // In its own on_disconnect, a connection can no longer join.
    expect((await departure(a)).rejoined).toBe(false);
    // Nor afterwards, through the registry or the context.
    expect(ctxA.isOpen).toBe(false);
    expect(registry.join(ctxA, 'tavern')).toBe(false);
    expect(ctxA.join('cellar')).toBe(false);
    expect(registry.rooms()).toEqual([]);
    expect(registry.roomSize('tavern')).toBe(0);
    expect(registry.roomSize('cellar')).toBe(0);

    // The room still works for the open connection.
    expect(await reply(b, '/join tavern', /^join /)).toBe('join tavern: true');
    expect(registry.members('tavern').map((m) => m.id)).toEqual([b.id]);
  });

  it('keeps typed per-connection state across handlers and into on_disconnect', async () => {
    const { app } = await boot();
    const registry = app.get(ConnectionRegistry);
    const a = await enter();
    const b = await enter();

    expect(await reply(a, '/name Ann', /^name:/)).toBe('name: Ann');
    await reply(a, '/join tavern', /^join /);
    await reply(b, '/join tavern', /^join /);

    expect(await reply(a, '/say hi', /^said to/)).toBe('said to 1');
    expect(await b.client.expectLine(/^\[tavern\]/)).toBe('[tavern] Ann: hi');
    // B has no name: the state is per connection.
    expect(await reply(b, '/say hey', /^said to/)).toBe('said to 1');
    expect(await a.client.expectLine(/^\[tavern\]/)).toBe(
      '[tavern] someone: hey',
    );
    expect(registry.get(a.id)?.data).toEqual({ name: 'Ann' });
    expect(registry.get(b.id)?.data).toEqual({});

    // Renaming replaces the stored name.
    await reply(a, '/name Annabel', /^name:/);
    await reply(a, '/say bye', /^said to/);
    await b.client.expectLine('[tavern] Annabel: bye');

    await a.client.close();
    expect(await departure(a)).toMatchObject({
      name: 'Annabel',
      reason: 'client_closed',
    });
    await b.client.close();
    expect((await departure(b)).name).toBeUndefined();
  });
});
