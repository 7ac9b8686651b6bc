import 'reflect-metadata';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { Controller } from '@nestjs/common';
import { Ctx, Payload } from '@nestjs/microservices';
import {
  ConnectionContext,
  EarwaxEvent,
  EarwaxModule,
} from '../../lib/index.js';
import { bootEarwax, type Booted } from '../support/boot.js';
import { LineClient } from '../support/line-client.js';

@Controller()
class EchoController {
  @EarwaxEvent('on_connect')
  hello(@Ctx() ctx: ConnectionContext) {
    ctx.sendString('hello');
  }
  @EarwaxEvent('on_data')
  echo(@Payload() line: Buffer, @Ctx() ctx: ConnectionContext) {
    ctx.sendBytes(line);
  }
}

describe('smoke', () => {
  let booted: Booted;
  beforeAll(async () => {
    booted = await bootEarwax({
      imports: [EarwaxModule.forRoot()],
      controllers: [EchoController],
    });
  });
  afterAll(() => booted.app.close());

  it('echoes', async () => {
    const c = await LineClient.connect(booted.port);
    expect(await c.line(0)).toBe('hello');
    c.send('abc');
    expect(await c.line(1)).toBe('abc');
    await c.end();
  });
});
