import { Module } from '@nestjs/common';
import { EarwaxModule } from '../../../lib/index.js';
import { BlockListGuard } from './block-list.guard.js';
import { BlockListService } from './block-list.service.js';
import { ChatController } from './chat.controller.js';

/** Holds the block list, so both the guard and the rest of the game can inject it. */
@Module({ providers: [BlockListService], exports: [BlockListService] })
export class BlockListModule {}

@Module({
  imports: [
    BlockListModule,
    EarwaxModule.forRoot({ guard: BlockListGuard, imports: [BlockListModule] }),
  ],
  controllers: [ChatController],
})
export class AppModule {}
