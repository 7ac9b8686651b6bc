import { Controller } from '@nestjs/common';
import { Ctx, Payload } from '@nestjs/microservices';
import { type DisconnectReason, EarwaxEvent } from '../../../lib/index.js';
import type { Player } from './chat-session.js';
import { ChatService } from './chat.service.js';
import { parseCommand } from './command.js';

const HELP = [
  'Commands:',
  '  <text>                  say something to your room',
  '  /join <room>            go to another room (made if need be)',
  '  /rooms                  list the rooms',
  '  /who                    list who is in your room',
  '  /quit                   leave',
  '  /admin <password>       become an admin',
  '  /ban <ip-or-cidr> [minutes], /unban <ip-or-cidr>, /bans   (admins)',
];

/**
 * The chat: asks a newcomer's name, then runs the room commands and says
 * every other line to the player's room. Admin commands are taken before
 * this sees them (`AdminController`, at a higher priority).
 */
@Controller()
export class ChatController {
  constructor(private readonly chat: ChatService) {}

  @EarwaxEvent('on_connect')
  connected(@Ctx() player: Player): void {
    player.sendString('Welcome to the chat server.');
    player.sendString('What is your name?');
  }

  @EarwaxEvent('on_data')
  received(@Payload() line: string, @Ctx() player: Player): void {
    const text = line.trim();
    if (text === '') return;
    const command = parseCommand(text);
    if (command?.verb === 'quit') {
      player.sendString('Goodbye.');
      player.disconnect('quit');
      return;
    }
    if (player.data.name === undefined) {
      this.chat.chooseName(player, text);
      return;
    }
    if (command === undefined) {
      this.chat.say(player, text);
      return;
    }
    switch (command.verb) {
      case 'join':
        this.chat.join(player, command.rest);
        break;
      case 'rooms':
        this.chat.listRooms(player);
        break;
      case 'who':
        this.chat.who(player);
        break;
      case 'help':
        for (const help of HELP) player.sendString(help);
        break;
      default:
        player.sendString(
          `Unknown command /${command.verb}; /help lists the commands.`,
        );
    }
  }

  @EarwaxEvent('on_disconnect')
  disconnected(
    @Payload() reason: DisconnectReason,
    @Ctx() player: Player,
  ): void {
    this.chat.left(player, reason);
  }
}
