import { Module } from '@nestjs/common';
import { EarwaxModule } from '../../../lib/index.js';
import { AccountService } from './account.service.js';
import { ClientInfoController } from './client-info.controller.js';
import { GameController } from './game.controller.js';
import { GameService } from './game.service.js';
import { LoginController } from './login.controller.js';
import { PromptController } from './prompt.controller.js';

/**
 * The MUD. Every line goes through three `on_data` handlers in priority
 * order: `LoginController` (10) until the player is in the world, then
 * `GameController` (0) answers the command, then `PromptController` (-10)
 * sends the prompt.
 */
@Module({
  imports: [EarwaxModule.forRoot()],
  controllers: [
    LoginController,
    GameController,
    PromptController,
    ClientInfoController,
  ],
  providers: [AccountService, GameService],
})
export class AppModule {}
