import { Controller } from '@nestjs/common';
import { Ctx } from '@nestjs/microservices';
import { EarwaxEvent } from '../../../lib/index.js';
import { type Player, PROMPT } from './mud-session.js';

/**
 * The prompt after every response: the last `on_data` handler (lowest
 * priority), so it runs once the command's reply has been sent. It ends
 * with IAC EOR or IAC GA, which MUD clients use to tell a prompt from text.
 */
@Controller()
export class PromptController {
  @EarwaxEvent('on_data', { priority: -10 })
  prompt(@Ctx() player: Player): void {
    if (player.data.name !== undefined && player.isOpen) {
      player.sendPrompt(PROMPT);
    }
  }
}
