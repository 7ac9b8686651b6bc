import 'reflect-metadata';
import { afterEach, describe, expect, it } from '@jest/globals';
import { Controller } from '@nestjs/common';
import { Ctx, Payload } from '@nestjs/microservices';
import {
  ConnectionContext,
  ConnectionRegistry,
  EarwaxEvent,
  EarwaxModule,
} from '../../lib/index.js';
import {
  EarwaxTesting,
  type EarwaxTestServer,
} from '../../lib/testing/index.js';

/** Calls a send method with a wrong argument, as a careless handler would. */
const MISUSES: Record<string, (ctx: ConnectionContext) => unknown> = {
  'bytes-encoding': (ctx) => ctx.sendBytes('x', 'bogus' as BufferEncoding),
  'bytes-number': (ctx) => ctx.sendBytes(7 as never),
  'raw-number': (ctx) => ctx.sendRaw(123 as never),
  'raw-object': (ctx) => ctx.sendRaw({ length: 3 } as never),
  'string-null': (ctx) => ctx.sendString(null as never),
  'string-buffer': (ctx) => ctx.sendString(Buffer.from('x') as never),
  'prompt-number': (ctx) => ctx.sendPrompt(5 as never),
  'gmcp-package': (ctx) => ctx.sendGmcp(42 as never),
  'echo-string': (ctx) => ctx.echo('yes' as never),
};

@Controller()
class MisuseController {
  constructor(private readonly registry: ConnectionRegistry) {}

  @EarwaxEvent('on_data')
  onData(@Payload() line: string, @Ctx() ctx: ConnectionContext): string {
    const [command, mode] = line.split(' ');
    const misuse =
      command === 'broadcast'
        ? () =>
            this.registry.broadcast('x', {
              encoding: 'bogus' as BufferEncoding,
            })
        : MISUSES[command];
    if (misuse === undefined) return `echo ${line}`;
    if (mode === 'uncaught') {
      misuse(ctx);
      return 'not reached';
    }
    try {
      misuse(ctx);
      return `${command}: no error`;
    } catch (err) {
      return `${command}: ${(err as Error).constructor.name}`;
    }
  }
}

describe('a send with a wrong argument', () => {
  let server: EarwaxTestServer | undefined;
  afterEach(async () => {
    await server?.close();
    server = undefined;
  });

  async function boot(): Promise<EarwaxTestServer> {
    server = await EarwaxTesting.createServer(
      {
        imports: [EarwaxModule.forRoot()],
        controllers: [MisuseController],
      },
      { transport: { encoding: 'utf8', telnet: true }, printLogs: [] },
    );
    return server;
  }

  it('throws a TypeError before writing anything, from every send method', async () => {
    const player = await (await boot()).connect({ telnet: true });
    for (const command of [...Object.keys(MISUSES), 'broadcast']) {
      player.send(command);
      await player.expectLine(`${command}: TypeError`);
    }
    // Nothing of the misused sends reached the player.
    expect(player.lines).toEqual(
      [...Object.keys(MISUSES), 'broadcast'].map((c) => `${c}: TypeError`),
    );
    player.send('still here');
    await player.expectLine('echo still here');
  });

  it('leaves the connection as it was when the handler does not catch it', async () => {
    const booted = await boot();
    const player = await booted.connect({ telnet: true });
    const other = await booted.connect({ telnet: true });
    for (const command of Object.keys(MISUSES)) {
      player.send(`${command} uncaught`);
      // The next reply arrives at once: the failed send left no cork behind.
      player.send(`after ${command}`);
      await player.expectLine(`echo after ${command}`);
    }
    other.send('others too');
    await other.expectLine('echo others too');
    expect(player.isOpen).toBe(true);
    // Each failure is reported like any handler error, naming the call.
    expect(booted.logs.find(/sendRaw\(\): data must be/)).toHaveLength(2);
    expect(
      booted.logs.find(/sendBytes\(\): unknown encoding "bogus"/),
    ).toHaveLength(1);
  });
});
