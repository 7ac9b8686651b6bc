import { Module } from '@nestjs/common';
import { EarwaxModule } from '../../../lib/index.js';
import { RedisAdapter } from '../../../lib/redis/index.js';
import { ClusterChatController } from './cluster-chat.controller.js';
import { Goodbye } from './goodbye.js';
import { CLUSTER_SETTINGS, SettingsModule } from './settings.module.js';
import type { ClusterSettings } from './cluster.options.js';

/**
 * One worker's application. The adapter is built by `forRootAsync` from the
 * injected settings (as it would be from `@nestjs/config`'s
 * `ConfigService`), so every worker, and every host running this sample,
 * joins the same game through Redis.
 */
@Module({
  imports: [
    EarwaxModule.forRootAsync({
      imports: [SettingsModule],
      inject: [CLUSTER_SETTINGS],
      useFactory: () => ({ encoding: 'utf8' as const, maxLineLength: 1024 }),
      adapter: {
        inject: [CLUSTER_SETTINGS],
        useFactory: (settings: ClusterSettings) =>
          new RedisAdapter({
            redis: settings.redisUrl,
            prefix: settings.redisPrefix,
          }),
      },
    }),
  ],
  controllers: [ClusterChatController],
  providers: [Goodbye],
})
export class AppModule {}
