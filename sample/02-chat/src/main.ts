import 'reflect-metadata';
import { Logger } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import type { AddressInfo } from 'node:net';
import { EarwaxTransport } from '../../../lib/index.js';
import { AppModule } from './app.module.js';
import { chatHealthPort, chatTransportOptions } from './chat.options.js';

async function bootstrap(): Promise<void> {
  // Read first: a bad setting stops the server before anything starts.
  const options = chatTransportOptions();
  const healthPort = chatHealthPort();
  const strategy = new EarwaxTransport(options);
  if (healthPort === undefined) {
    const app = await NestFactory.createMicroservice(AppModule, { strategy });
    // SIGTERM or Ctrl-C closes gracefully: everyone gets SHUTDOWN_MESSAGE.
    app.enableShutdownHooks();
    await app.listen();
    return;
  }
  // With HEALTH_PORT: a hybrid application, HTTP for the health check
  // beside the game port. Loaded only then: plain runs need no HTTP stack.
  const { HealthModule } = await import('./health.module.js');
  const app = await NestFactory.create(HealthModule);
  app.connectMicroservice({ strategy }, { inheritAppConfig: true });
  app.enableShutdownHooks();
  await app.startAllMicroservices();
  await app.listen(healthPort, options.host ?? '127.0.0.1');
  const { address, port } = app.getHttpServer().address() as AddressInfo;
  const host = address.includes(':') ? `[${address}]` : address;
  new Logger('Health').log(`GET http://${host}:${port}/health`);
}

bootstrap().catch((err: unknown) => {
  console.error(err instanceof Error ? err.message : err);
  process.exit(1);
});
