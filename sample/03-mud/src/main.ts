import 'reflect-metadata';
import { Logger } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { resolve } from 'node:path';
import { EarwaxTransport } from '../../../lib/index.js';
import { AppModule } from './app.module.js';
import { databasePath } from './database.options.js';
import { mudTransportOptions, tlsNotice } from './mud.options.js';

async function bootstrap(): Promise<void> {
  // Read first: a bad PORT, TLS_PORT, TLS_KEY or TLS_CERT stops the server
  // before anything starts.
  const options = mudTransportOptions();
  const database = databasePath();
  const app = await NestFactory.createMicroservice(
    AppModule.forRoot({ database }),
    { strategy: new EarwaxTransport(options) },
  );
  // SIGTERM or Ctrl-C closes gracefully: every player gets the goodbye.
  app.enableShutdownHooks();
  await app.listen();
  const logger = new Logger('EarwaxTinyMud');
  logger.log(`Players are kept in ${resolve(database)} (MUD_DB).`);
  const notice = tlsNotice(options);
  if (notice !== undefined) logger.log(notice);
}

bootstrap().catch((err: unknown) => {
  console.error(err instanceof Error ? err.message : err);
  process.exit(1);
});
