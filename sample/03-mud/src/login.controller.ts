import { Controller } from '@nestjs/common';
import { Ctx, Payload } from '@nestjs/microservices';
import {
  EarwaxEvent,
  EVENT_HANDLED,
  EVENT_UNHANDLED,
} from '../../../lib/index.js';
import { AccountService } from './account.service.js';
import { CharacterService } from './character.service.js';
import { GameService } from './game.service.js';
import { type Player, PROMPT } from './mud-session.js';

const NAME = /^[A-Za-z]{3,16}$/;
const MIN_PASSWORD = 4;
const MAX_FAILURES = 3;

/**
 * Login: `Name:`, then `Password:` with the client's echo off while it is
 * typed. The first login under a name creates the account. Runs before the
 * game's commands (priority 10) and takes every line until the player is
 * in the world.
 */
@Controller()
export class LoginController {
  constructor(
    private readonly accounts: AccountService,
    private readonly characters: CharacterService,
    private readonly game: GameService,
  ) {}

  @EarwaxEvent('on_connect')
  connected(@Ctx() player: Player): void {
    player.sendString('Welcome to Earwax Tiny MUD!');
    player.sendString(
      'Give a name to log in (a new name makes a new character), or quit.',
    );
    player.sendPrompt('Name: ');
  }

  @EarwaxEvent('on_data', { priority: 10 })
  async received(
    @Payload() line: string,
    @Ctx() player: Player,
  ): Promise<typeof EVENT_HANDLED | undefined> {
    if (player.data.name !== undefined) return EVENT_UNHANDLED;
    if (player.data.loginName === undefined) {
      await this.name(player, line.trim());
    } else {
      await this.password(player, player.data.loginName, line);
    }
    return EVENT_HANDLED;
  }

  private async name(player: Player, text: string): Promise<void> {
    if (text === '') {
      player.sendPrompt('Name: ');
      return;
    }
    if (text.toLowerCase() === 'quit') {
      player.sendString('Goodbye.');
      player.disconnect('quit');
      return;
    }
    if (!NAME.test(text)) {
      player.sendString('A name is 3 to 16 letters.');
      player.sendPrompt('Name: ');
      return;
    }
    const name = text[0].toUpperCase() + text.slice(1).toLowerCase();
    if (this.game.isPlaying(name)) {
      player.sendString(`${name} is already playing.`);
      player.sendPrompt('Name: ');
      return;
    }
    const isNew = !(await this.accounts.exists(name));
    if (!player.isOpen) return;
    player.data.loginName = name;
    player.data.newAccount = isNew;
    player.sendString(
      isNew
        ? `${name} is a new character. Choose a password (${MIN_PASSWORD} characters or more).`
        : `Hello again, ${name}.`,
    );
    // The client stops showing what is typed: the server "will echo".
    player.echo(false);
    player.sendPrompt('Password: ');
  }

  private async password(
    player: Player,
    name: string,
    password: string,
  ): Promise<void> {
    // The player's Enter was not echoed either: end the prompt's line.
    player.sendString('');
    if (player.data.newAccount && password.length < MIN_PASSWORD) {
      player.sendString(
        `A password has at least ${MIN_PASSWORD} characters; try another.`,
      );
      player.sendPrompt('Password: ');
      return;
    }
    player.echo(true);
    player.data.loginName = undefined;
    const result = await this.accounts.login(name, password);
    if (!player.isOpen) return;
    if (result === 'rejected') {
      player.logger.warn(`Wrong password for ${name}.`);
      player.data.failures = (player.data.failures ?? 0) + 1;
      if (player.data.failures >= MAX_FAILURES) {
        player.sendString('Wrong password. Too many failures: goodbye.');
        player.disconnect();
        return;
      }
      player.sendString('Wrong password.');
      player.sendPrompt('Name: ');
      return;
    }
    const { room } = await this.characters.load(name);
    if (!player.isOpen) return;
    // Someone may have logged in under that name while the hash ran (no
    // await from here on, so no one can come between).
    if (this.game.isPlaying(name)) {
      player.sendString(`${name} is already playing.`);
      player.sendPrompt('Name: ');
      return;
    }
    player.logger.log(
      result === 'created'
        ? `${name} created a character and logged in.`
        : `${name} logged in.`,
    );
    player.sendString(
      result === 'created'
        ? `Welcome, ${name}! Your character has been created.`
        : `Welcome back, ${name}!`,
    );
    player.sendString('Type help for the commands.');
    for (const text of this.game.enter(player, name, room)) {
      player.sendString(text);
    }
    player.sendPrompt(PROMPT);
  }
}
