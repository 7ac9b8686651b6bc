import { Controller, Get, Module } from '@nestjs/common';
import {
  HealthCheck,
  HealthCheckService,
  TerminusModule,
} from '@nestjs/terminus';
import { EarwaxHealthIndicator } from '../../../lib/terminus/index.js';
import { AppModule } from './app.module.js';

/**
 * `GET /health`: 200 while the game port listens, 503 once it is closing
 * (or never started), through Terminus and `EarwaxHealthIndicator`. What a
 * container's `HEALTHCHECK` or a load balancer calls.
 */
@Controller('health')
export class HealthController {
  constructor(
    private readonly health: HealthCheckService,
    private readonly earwax: EarwaxHealthIndicator,
  ) {}

  @Get()
  @HealthCheck()
  check() {
    return this.health.check([() => this.earwax.isHealthy('chat')]);
  }
}

/**
 * The chat with its health check: the root module of the hybrid
 * application `main.ts` starts when `HEALTH_PORT` is set.
 */
@Module({
  imports: [AppModule, TerminusModule],
  controllers: [HealthController],
  providers: [EarwaxHealthIndicator],
})
export class HealthModule {}
