import {
  Inject,
  Injectable,
  Logger,
  type OnModuleDestroy,
} from '@nestjs/common';
import {
  ApplicationConfig,
  HttpAdapterHost,
  ModuleRef,
  ModulesContainer,
} from '@nestjs/core';
import type { Subscription } from 'rxjs';
import { BlockListService } from './block-list/block-list.service.js';
import { EARWAX_MODULE_OPTIONS } from './earwax.constants.js';
import { ConnectionGuard } from './guard/connection.guard.js';
import { ConnectionRegistry } from './registry/connection.registry.js';
import {
  type EarwaxStatus,
  EarwaxTransport,
} from './transport/earwax.transport.js';
import type { EarwaxTransportDefaults } from './earwax-module-options.interface.js';
import { EarwaxMetrics } from './metrics/earwax-metrics.js';
import { NestDirectDispatcher } from './pipeline/direct-dispatch.js';
import { findForeignHandlers } from './pipeline/foreign-handlers.js';
import { nestInternalsNow } from './pipeline/nest-internals.js';

/**
 * The `EarwaxTransport`s of one application, as the `EarwaxBinder` met them:
 * what `EarwaxHealthIndicator` looks at. A transport stays listed after it
 * closes (it is then down, not gone). Provided by `EarwaxModule`, not
 * exported from an entry point; not marked internal, because the health
 * indicator's declared constructor names it.
 */
@Injectable()
export class EarwaxTransports implements Iterable<EarwaxTransport> {
  private readonly transports = new Set<EarwaxTransport>();

  /** How many transports are listed. */
  get size(): number {
    return this.transports.size;
  }

  /** Lists a transport (once). */
  add(transport: EarwaxTransport): void {
    this.transports.add(transport);
  }

  [Symbol.iterator](): IterableIterator<EarwaxTransport> {
    return this.transports.values();
  }

  /**
   * A transport's status now: its status stream replays the latest one to
   * a new subscriber at once. `undefined` until it first listens.
   */
  statusOf(transport: EarwaxTransport): EarwaxStatus | undefined {
    let status: EarwaxStatus | undefined;
    transport.status.subscribe((value) => (status = value)).unsubscribe();
    return status;
  }
}

/**
 * Hands the application's `ConnectionGuard`, `ConnectionRegistry`,
 * `BlockListService` and `EarwaxMetrics` to every `EarwaxTransport` the
 * application runs, so `main.ts` needs no factory wiring, and lists each in
 * `EarwaxTransports`. Nest records each microservice's strategy in the
 * modules container's RPC target registry (a replaying stream, per
 * application); this listens to it.
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
    private readonly metrics: EarwaxMetrics,
    private readonly transports: EarwaxTransports,
    @Inject(EARWAX_MODULE_OPTIONS)
    private readonly defaults: EarwaxTransportDefaults | null,
    config: ApplicationConfig,
    adapterHost: HttpAdapterHost,
  ) {
    const dispatcher = new NestDirectDispatcher(
      modules,
      config,
      // An HTTP adapter (null in a microservice): a hybrid application.
      () => Boolean(adapterHost.httpAdapter),
    );
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
    // Read when a transport listens, after every microservice of a hybrid
    // application was connected.
    let otherTransports = 0;
    const foreignHandlers = () => {
      const nest = nestInternalsNow();
      return nest?.available
        ? findForeignHandlers(this.modules, nest.internals)
        : undefined;
    };
    this.subscription = targets.subscribe((target) => {
      if (target instanceof EarwaxTransport) {
        target.bind({
          guard: this.findGuard(),
          registry: this.registry,
          blockList: this.blockList,
          defaults: this.defaults ?? undefined,
          metrics: this.metrics,
          dispatcher,
          foreignHandlers,
          otherTransports: () => otherTransports > 0,
        });
        this.transports.add(target);
      } else {
        otherTransports += 1;
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
