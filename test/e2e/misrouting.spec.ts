/**
 * A plain `@EventPattern('on_data')` or `@MessagePattern(...)` on a
 * controller of an Earwax application boots and is never called by
 * `EarwaxTransport`. The transport says so at start-up, naming the method
 * and the decorator to use, unless the handler is most likely meant for
 * another transport of a hybrid application.
 */
import { afterEach, describe, expect, it } from '@jest/globals';
import { Controller, Module } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import {
  Ctx,
  EventPattern,
  MessagePattern,
  Payload,
  Transport,
} from '@nestjs/microservices';
import {
  type ConnectionContext,
  EarwaxEvent,
  EarwaxModule,
  EarwaxTransport,
} from '../../lib/index.js';
import { type Booted, bootEarwax } from '../support/boot.js';
import { LineClient } from '../support/line-client.js';
import { RecordingLogger } from '../support/recording-logger.js';

@Controller()
class MixedController {
  readonly misrouted: string[] = [];

  @EventPattern('on_data')
  heard(@Payload() line: string): void {
    this.misrouted.push(`event:${line}`);
  }

  @MessagePattern('sum')
  sum(@Payload() numbers: number[]): number {
    this.misrouted.push('sum');
    return numbers.reduce((a, b) => a + b, 0);
  }

  @EventPattern('score', Transport.TCP)
  score(@Payload() points: number): void {
    this.misrouted.push(`score:${points}`);
  }

  @EarwaxEvent('on_data')
  echo(@Payload() line: string, @Ctx() ctx: ConnectionContext): void {
    ctx.sendString(`echo ${line}`);
  }
}

/** The warnings the transport logged. */
function warnings(logs: RecordingLogger): string[] {
  return logs
    .find('EarwaxTransport never calls', 'warn')
    .map((entry) => entry.message);
}

describe('a pattern decorator Earwax never calls', () => {
  let booted: Booted | undefined;

  afterEach(async () => {
    await booted?.app.close();
    booted = undefined;
  });

  it('is named at start-up with the decorator to use, and never called', async () => {
    booted = await bootEarwax({
      imports: [EarwaxModule.forRoot()],
      controllers: [MixedController],
    });
    expect(warnings(booted.logs)).toEqual([
      "MixedController.heard is decorated @EventPattern('on_data'), which EarwaxTransport never calls: use @EarwaxEvent('on_data') for an Earwax event.",
      expect.stringMatching(
        /^MixedController\.sum is decorated @MessagePattern\('sum'\), which EarwaxTransport never calls \(.*no other transport\): use @EarwaxEvent\('name'\) after transport\.registerEventType\('name'\).*@MessagePattern\('sum', Transport\.TCP\)\.$/,
      ),
    ]);
    // The warning tells the truth: the line reaches the Earwax handler only.
    const client = await LineClient.connect(booted.port);
    client.socket.write('hello\r\n');
    expect(await client.line(0)).toBe('echo hello');
    await client.end();
    expect(booted.app.get(MixedController).misrouted).toEqual([]);
  });

  it('names the pattern and the decorator without EarwaxModule', async () => {
    booted = await bootEarwax({ controllers: [MixedController] });
    expect(warnings(booted.logs)).toEqual([
      "A controller method is decorated @EventPattern('on_data'), which EarwaxTransport never calls: use @EarwaxEvent('on_data') for an Earwax event.",
      expect.stringContaining(
        "A controller method is decorated @MessagePattern('sum'), which EarwaxTransport never calls",
      ),
    ]);
  });

  it('names a registered event of the game like a built-in one', async () => {
    @Controller()
    class TickController {
      @EventPattern('on_tick')
      tick(@Payload() data: unknown): unknown {
        return data;
      }
    }
    booted = await bootEarwax(
      { imports: [EarwaxModule.forRoot()], controllers: [TickController] },
      {},
      (_app, transport) => transport.registerEventType('on_tick'),
    );
    expect(warnings(booted.logs)).toEqual([
      "TickController.tick is decorated @EventPattern('on_tick'), which EarwaxTransport never calls: use @EarwaxEvent('on_tick') for an Earwax event.",
    ]);
  });

  it('says nothing of a handler bound to another transport, or of one for a second transport of a hybrid app', async () => {
    @Controller()
    class ForOthersController {
      @MessagePattern('sum')
      sum(@Payload() numbers: number[]): number {
        return numbers.reduce((a, b) => a + b, 0);
      }

      @EventPattern('score', Transport.TCP)
      score(@Payload() points: number): number {
        return points;
      }

      @EventPattern('on_connect')
      greet(@Payload() data: unknown): unknown {
        return data;
      }
    }
    @Module({
      imports: [EarwaxModule.forRoot()],
      controllers: [ForOthersController],
    })
    class HybridModule {}
    const logs = new RecordingLogger();
    const app = await NestFactory.create(HybridModule, {
      logger: logs,
      abortOnError: false,
    });
    const transport = new EarwaxTransport({ host: '127.0.0.1', port: 0 });
    app.connectMicroservice({ strategy: transport });
    app.connectMicroservice({
      transport: Transport.TCP,
      options: { host: '127.0.0.1', port: 0 },
    });
    try {
      await app.startAllMicroservices();
      // 'sum' may be meant for the TCP transport; 'on_connect' cannot be.
      expect(warnings(logs)).toEqual([
        "ForOthersController.greet is decorated @EventPattern('on_connect'), which EarwaxTransport never calls: use @EarwaxEvent('on_connect') for an Earwax event.",
      ]);
    } finally {
      await app.close();
    }
  });
});
