import { Module } from '@nestjs/common';
import { EarwaxModule } from '../../../lib/index.js';
import { AdminController } from './admin.controller.js';
import { ADMIN_PASSWORD, AdminService } from './admin.service.js';
import { ChatController } from './chat.controller.js';
import { chatAdminPassword } from './chat.options.js';
import { ChatService } from './chat.service.js';

/**
 * The chat server. `EarwaxModule` provides the `ConnectionRegistry` (players
 * and rooms) and the `BlockListService` (bans, checked by the transport
 * before it admits anyone), so no `ConnectionGuard` is needed.
 */
@Module({
  imports: [EarwaxModule.forRoot()],
  // Admin commands are taken first: AdminController's on_data has priority 10.
  controllers: [AdminController, ChatController],
  providers: [
    ChatService,
    AdminService,
    { provide: ADMIN_PASSWORD, useFactory: () => chatAdminPassword() },
  ],
})
export class AppModule {}
