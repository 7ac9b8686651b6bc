import 'reflect-metadata';
import { NestFactory } from '@nestjs/core';
import { EarwaxTransport } from '../../../lib/index.js';
import { AppModule } from './app.module.js';

async function bootstrap(): Promise<void> {
  const app = await NestFactory.createMicroservice(AppModule, {
    strategy: new EarwaxTransport({
      host: process.env.HOST ?? '127.0.0.1',
      port: Number(process.env.PORT ?? 4000),
    }),
  });
  app.enableShutdownHooks();
  await app.listen();
}

void bootstrap();
