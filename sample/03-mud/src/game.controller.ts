import { Controller } from '@nestjs/common';
import { Ctx, Payload } from '@nestjs/microservices';
import {
  type DisconnectReason,
  EarwaxEvent,
  EVENT_HANDLED,
} from '../../../lib/index.js';
import { clientReport } from './client-report.js';
import { parseCommand } from './command.js';
import { GameService } from './game.service.js';
import type { Player } from './mud-session.js';

export const HELP = [
  'Commands:',
  '  look (l)              what is around you',
  "  say <text> ('<text>)  talk to the players in the room",
  '  go <exit>             walk out: go north, or just north or n',
  '                        (n, s, e, w, u, d)',
  '  who                   who is playing, and where',
  '  stats (terminal)      what your client told the server',
  '  help                  this list',
  '  quit                  leave the game',
];

/**
 * The game's commands, for players in the world (`LoginController` takes
 * every line before that). Answers are the handler's reply: the strings it
 * returns are sent as lines, then `PromptController` sends the prompt.
 */
@Controller()
export class GameController {
  constructor(private readonly game: GameService) {}

  @EarwaxEvent('on_data')
  command(
    @Payload() line: string,
    @Ctx() player: Player,
  ): string | string[] | Promise<string[]> | typeof EVENT_HANDLED | undefined {
    const command = parseCommand(line);
    switch (command.verb) {
      case 'blank':
        return undefined;
      case 'look':
        return this.game.look(player);
      case 'say':
        return this.game.say(player, command.text);
      case 'go':
        if (command.direction !== undefined) {
          return this.game.move(player, command.direction);
        }
        return command.exit === ''
          ? 'Go where?'
          : `"${command.exit}" is not a way out; try n, s, e, w, u or d.`;
      case 'who':
        return this.game.who();
      case 'stats':
        return clientReport(player);
      case 'help':
        return HELP;
      case 'quit':
        player.sendString(`Goodbye, ${player.data.name}. Come back soon!`);
        player.disconnect('quit');
        // No prompt after that.
        return EVENT_HANDLED;
      case 'unknown':
        return `"${command.word}" is not a command; type help for the commands.`;
    }
  }

  @EarwaxEvent('on_disconnect')
  disconnected(
    @Payload() reason: DisconnectReason,
    @Ctx() player: Player,
  ): Promise<void> {
    return this.game.left(player, reason);
  }
}
