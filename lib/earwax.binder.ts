import {
  Inject,
  Injectable,
  Logger,
  type OnModuleDestroy,
} from '@nestjs/common';
import { ModuleRef, ModulesContainer } from '@nestjs/core';
import type { Subscription } from 'rxjs';
import { BlockListService } from './block-list.service.js';
import { EARWAX_MODULE_OPTIONS } from './constants.js';
import { ConnectionGuard } from './connection.guard.js';
import { ConnectionRegistry } from './connection.registry.js';
import { EarwaxTransport } from './earwax.transport.js';
import type { EarwaxTransportDefaults } from './interfaces/earwax-module-options.interface.js';

/**
 * Hands the application's `ConnectionGuard`, `ConnectionRegistry` and
 * `BlockListService` to every
 * `EarwaxTransport` the application runs, so `main.ts` needs no factory
 * wiring. Nest records each microservice's strategy in the modules
 * container's RPC target registry (a replaying stream, per application);
 * this listens to it.
 *
 * @internal
 */
@Injectable()
export class EarwaxBinder implements OnModuleDestroy {
  private readonly logger = new Logger('EarwaxModule');
  private subscription: Subscription | undefined;

  constructor(
    private readonly modules: ModulesContainer,
    private readonly moduleRef: ModuleRef,
    private readonly registry: ConnectionRegistry,
    private readonly blockList: BlockListService,
    @Inject(EARWAX_MODULE_OPTIONS)
    private readonly defaults: EarwaxTransportDefaults | null,
  ) {
    // Subscribed at construction, not in onModuleInit: a hybrid application
    // starts its microservices (startAllMicroservices) before its init hooks
    // run (app.listen), and no connection may be accepted without the guard.
    // Providers are all instantiated before any microservice is created, so
    // the guard can be resolved when a transport arrives.
    const targets = (
      this.modules as Partial<Pick<ModulesContainer, 'getRpcTargetRegistry'>>
    ).getRpcTargetRegistry?.();
    if (!targets) {
      // An older @nestjs/core without the registry: nothing to listen to.
      this.logger.warn(
        'This @nestjs/core cannot hand the ConnectionGuard to EarwaxTransport; pass it as the "guard" option.',
      );
      return;
    }
    this.subscription = targets.subscribe((target) => {
      if (target instanceof EarwaxTransport) {
        target.bind({
          guard: this.findGuard(),
          registry: this.registry,
          blockList: this.blockList,
          defaults: this.defaults ?? undefined,
        });
      }
    });
  }

  onModuleDestroy(): void {
    this.subscription?.unsubscribe();
  }

  private findGuard(): ConnectionGuard | undefined {
    try {
      return this.moduleRef.get(ConnectionGuard, { strict: false });
    } catch {
      this.logger.debug(
        'No ConnectionGuard provided: every connection is admitted.',
      );
      return undefined;
    }
  }
}
