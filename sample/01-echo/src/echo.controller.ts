import { Controller } from '@nestjs/common';
import { Ctx, Payload } from '@nestjs/microservices';
import { ConnectionContext, EarwaxEvent } from '../../../lib/index.js';

/** Sends every line back to whoever sent it. */
@Controller()
export class EchoController {
  @EarwaxEvent('on_connect')
  greet(@Ctx() ctx: ConnectionContext): void {
    ctx.sendString('Echo server. Type something; it comes back.');
  }

  @EarwaxEvent('on_data')
  echo(@Payload() line: Buffer, @Ctx() ctx: ConnectionContext): void {
    ctx.sendBytes(line);
  }
}
