import {
  Injectable,
  type OnApplicationShutdown,
  type OnModuleInit,
  Optional,
} from '@nestjs/common';
// Value imports: the constructor's design:paramtypes metadata names them.
import { BlockListService } from '../block-list/block-list.service.js';
import { ConnectionRegistry } from '../registry/connection.registry.js';
import { EarwaxMetrics } from '../metrics/earwax-metrics.js';
import type { EarwaxAdapterHost } from './cluster.interfaces.js';
import { EarwaxAdapter } from './earwax.adapter.js';

/**
 * Starts the application's adapter once every provider exists, with the
 * registry, block list and metrics as its host, and stops it at shutdown.
 * Stopped in `onApplicationShutdown`, which Nest runs after the transports
 * have closed (on `app.close()` and on a signal alike), so the adapter
 * outlives every connection's departure and removes what is left of this
 * process last.
 *
 * @internal
 */
@Injectable()
export class ClusterLifecycle implements OnModuleInit, OnApplicationShutdown {
  constructor(
    private readonly registry: ConnectionRegistry,
    private readonly blockList: BlockListService,
    @Optional() private readonly adapter?: EarwaxAdapter,
    @Optional() private readonly metrics?: EarwaxMetrics,
  ) {}

  async onModuleInit(): Promise<void> {
    const { registry, blockList, metrics } = this;
    const host: EarwaxAdapterHost = {
      deliver: (broadcast) => registry.deliver(broadcast),
      execute: (command) => registry.execute(command),
      presence: () => registry.presence(),
      receive: (event) => registry.receive(event),
      applyBanChange: (change) => blockList.applyBanChange(change),
      bans: () => blockList.bans(),
      replaceBans: (bans) => blockList.replaceBans(bans),
      messageRejected: () => {
        if (metrics) metrics.clusterMessagesRejected++;
      },
    };
    await this.adapter?.init(host);
  }

  async onApplicationShutdown(): Promise<void> {
    try {
      await this.adapter?.close();
    } finally {
      this.registry.detach();
    }
  }
}
