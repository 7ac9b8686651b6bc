import 'reflect-metadata';
import { NestFactory } from '@nestjs/core';
import { EarwaxTransport } from '../../../lib/index.js';
import { AppModule } from './app.module.js';
import { chatTransportOptions } from './chat.options.js';

async function bootstrap(): Promise<void> {
  // Read first: a bad setting stops the server before anything starts.
  const options = chatTransportOptions();
  const app = await NestFactory.createMicroservice(AppModule, {
    strategy: new EarwaxTransport(options),
  });
  // SIGTERM or Ctrl-C closes gracefully: everyone gets SHUTDOWN_MESSAGE.
  app.enableShutdownHooks();
  await app.listen();
}

bootstrap().catch((err: unknown) => {
  console.error(err instanceof Error ? err.message : err);
  process.exit(1);
});
