import { type DynamicModule, Module } from '@nestjs/common';
import { TypeOrmModule } from '@nestjs/typeorm';
import { EarwaxModule } from '../../../lib/index.js';
import { AccountEntity } from './account.entity.js';
import { AccountService } from './account.service.js';
import { CharacterEntity } from './character.entity.js';
import { CharacterService } from './character.service.js';
import { ClientInfoController } from './client-info.controller.js';
import { databaseOptions } from './database.options.js';
import { GameController } from './game.controller.js';
import { GameService } from './game.service.js';
import { LoginController } from './login.controller.js';
import { PromptController } from './prompt.controller.js';

/** What the game is started with. */
export interface MudAppOptions {
  /** The SQLite file that keeps accounts and characters (made if absent). */
  readonly database: string;
}

/**
 * The MUD. Every line goes through three `on_data` handlers in priority
 * order: `LoginController` (10) until the player is in the world, then
 * `GameController` (0) answers the command, then `PromptController` (-10)
 * sends the prompt. Accounts and characters live in a SQLite file through
 * TypeORM.
 */
@Module({
  controllers: [
    LoginController,
    GameController,
    PromptController,
    ClientInfoController,
  ],
  providers: [AccountService, CharacterService, GameService],
})
export class AppModule {
  /** The game, keeping its players in `options.database`. */
  static forRoot(options: MudAppOptions): DynamicModule {
    return {
      module: AppModule,
      imports: [
        EarwaxModule.forRoot(),
        TypeOrmModule.forRootAsync({
          useFactory: () => databaseOptions(options.database),
        }),
        TypeOrmModule.forFeature([AccountEntity, CharacterEntity]),
      ],
    };
  }
}
