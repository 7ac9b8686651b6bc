import 'reflect-metadata';
import { afterEach, describe, expect, it } from '@jest/globals';
import { Controller, Inject } from '@nestjs/common';
import { Ctx, Payload } from '@nestjs/microservices';
import { connect, type Socket } from 'node:net';
import {
  ConnectionContext,
  ConnectionRegistry,
  EarwaxEvent,
  EarwaxModule,
} from '../../lib/index.js';
import { bootEarwax, type Booted } from '../support/boot.js';

type Dispatching = Socket & { _writeGeneric(...args: unknown[]): unknown };

/** Writes each socket handed to the kernel (a write or a writev each). */
const dispatched = new WeakMap<Socket, number>();

/** Counts the writes `socket` hands to the kernel, through Node's own hook. */
function countWrites(socket: Socket): void {
  const target = socket as Dispatching;
  const dispatch = target._writeGeneric;
  dispatched.set(socket, 0);
  target._writeGeneric = function (this: Socket, ...args: unknown[]) {
    dispatched.set(socket, (dispatched.get(socket) ?? 0) + 1);
    return dispatch.apply(this, args);
  };
}

/** A game's turn: a command answered with several lines and a prompt. */
@Controller()
class TurnController {
  constructor(
    @Inject(ConnectionRegistry) private readonly registry: ConnectionRegistry,
  ) {}

  @EarwaxEvent('on_connect')
  enter(@Ctx() ctx: ConnectionContext): void {
    countWrites(ctx.socket);
    this.registry.join(ctx, 'hall');
  }

  @EarwaxEvent('on_data')
  command(@Payload() line: string, @Ctx() ctx: ConnectionContext): void {
    if (line === 'writes') {
      // How many writes everything before this answer took.
      ctx.sendString(`writes: ${dispatched.get(ctx.socket)}`);
    } else if (line === 'look') {
      ctx.sendString('The Hall');
      ctx.sendString('A long hall with a stone floor.');
      ctx.sendString('Exits: north, south.');
      ctx.sendString('Nobody else is here.');
      ctx.sendPrompt('> ');
    } else if (line.startsWith('say ')) {
      const words = line.slice(4);
      ctx.sendString(`You say: ${words}`);
      this.registry.broadcast(`Someone says: ${words}`, {
        room: 'hall',
        except: ctx,
      });
      ctx.sendString('Your voice echoes.');
      ctx.sendPrompt('> ');
    }
  }
}

/** A raw client that keeps every chunk it reads, as it was read. */
class ChunkClient {
  readonly chunks: Buffer[] = [];
  private wake: (() => void) | undefined;

  private constructor(readonly socket: Socket) {
    socket.on('data', (chunk: Buffer) => {
      this.chunks.push(chunk);
      this.wake?.();
    });
    socket.on('error', () => undefined);
  }

  static async open(port: number): Promise<ChunkClient> {
    const socket = connect({ host: '127.0.0.1', port });
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('error', reject);
    });
    return new ChunkClient(socket);
  }

  get text(): string {
    return Buffer.concat(this.chunks).toString();
  }

  /** Resolves once what was read ends with `tail`; fails if it closes. */
  until(tail: string): Promise<void> {
    return new Promise((resolve, reject) => {
      const check = () => {
        if (this.text.endsWith(tail)) {
          this.wake = undefined;
          resolve();
        }
      };
      this.wake = check;
      this.socket.once('close', () =>
        reject(new Error(`closed; read ${JSON.stringify(this.text)}`)),
      );
      check();
    });
  }

  close(): void {
    this.socket.destroy();
  }
}

describe('one write per connection per turn (real sockets)', () => {
  let booted: Booted | undefined;
  const clients: ChunkClient[] = [];

  afterEach(async () => {
    for (const client of clients.splice(0)) client.close();
    await booted?.app.close();
    booted = undefined;
  });

  async function boot(): Promise<number> {
    booted = await bootEarwax(
      { imports: [EarwaxModule.forRoot()], controllers: [TurnController] },
      { encoding: 'utf8', logConnections: false },
    );
    return booted.port;
  }

  async function player(port: number): Promise<ChunkClient> {
    const client = await ChunkClient.open(port);
    clients.push(client);
    return client;
  }

  /** The writes the server made to `client` so far. */
  async function writesTo(client: ChunkClient): Promise<number> {
    client.chunks.length = 0;
    client.socket.write('writes\r\n');
    await client.until('\r\n');
    return Number(/^writes: (\d+)\r\n$/.exec(client.text)?.[1]);
  }

  it("sends a handler's lines and prompt in one write", async () => {
    const alice = await player(await boot());
    alice.socket.write('look\r\n');
    await alice.until('> ');
    expect(alice.text).toBe(
      'The Hall\r\nA long hall with a stone floor.\r\nExits: north, south.\r\nNobody else is here.\r\n> ',
    );
    expect(await writesTo(alice)).toBe(1);
  });

  it('sends the speaker one write and the room its broadcast', async () => {
    const port = await boot();
    const alice = await player(port);
    const bob = await player(port);
    // Both have joined the room once each has answered a look.
    for (const client of [alice, bob]) {
      client.socket.write('look\r\n');
      await client.until('> ');
      client.chunks.length = 0;
    }
    alice.socket.write('say hello\r\n');
    await alice.until('> ');
    await bob.until('Someone says: hello\r\n');
    expect(alice.text).toBe('You say: hello\r\nYour voice echoes.\r\n> ');
    expect(bob.text).toBe('Someone says: hello\r\n');
    // Two turns each: the look, then the say (or what the room heard).
    expect(await writesTo(alice)).toBe(2);
    expect(await writesTo(bob)).toBe(2);
  });
});
