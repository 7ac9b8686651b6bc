import 'reflect-metadata';
import { NestFactory } from '@nestjs/core';
import { EarwaxTransport } from '../../../lib/index.js';
import { AppModule } from './app.module.js';
import { chatTransportOptions } from './chat.options.js';

async function bootstrap(): Promise<void> {
  const app = await NestFactory.createMicroservice(AppModule, {
    strategy: new EarwaxTransport(chatTransportOptions()),
  });
  // Ctrl-C closes gracefully: everyone hears the server go.
  app.enableShutdownHooks();
  await app.listen();
}

void bootstrap();
