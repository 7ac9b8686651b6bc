import { Controller } from '@nestjs/common';
import { Ctx, Payload } from '@nestjs/microservices';
import {
  ConnectionContext,
  ConnectionRegistry,
  EarwaxEvent,
} from '../../../lib/index.js';

/**
 * earwax_server's chat example, working: the newcomer is welcomed with the
 * count of the others, everyone hears who joins and leaves, `quit` leaves.
 */
@Controller()
export class ChatController {
  constructor(private readonly connections: ConnectionRegistry) {}

  @EarwaxEvent('on_block')
  refused(@Ctx() ctx: ConnectionContext): void {
    ctx.sendString('You are blocked.');
  }

  @EarwaxEvent('on_connect')
  joined(@Ctx() ctx: ConnectionContext): void {
    // The newcomer is already in the registry here.
    ctx.sendString('Welcome to the server.');
    ctx.sendString(`Other connections: ${this.connections.size - 1}.`);
    this.connections.broadcast(`New connection from ${ctx}.`, { except: ctx });
  }

  @EarwaxEvent('on_data')
  said(@Payload() line: string, @Ctx() ctx: ConnectionContext): void {
    const text = line.trim();
    if (text === '') return;
    if (text === 'quit') {
      ctx.sendString('Goodbye.');
      ctx.disconnect();
      return;
    }
    this.connections.broadcast(`${ctx}: ${text}`);
  }

  @EarwaxEvent('on_disconnect')
  left(@Ctx() ctx: ConnectionContext): void {
    // The leaver is already out of the registry here.
    this.connections.broadcast(`${ctx} has disconnected.`);
  }
}
