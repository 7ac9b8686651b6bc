import type { INestMicroservice, ModuleMetadata } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import {
  EarwaxTransport,
  type EarwaxTransportOptions,
} from '../../lib/index.js';
import { RecordingLogger } from './recording-logger.js';

/** A booted microservice with its transport, port and recorded logs. */
export interface Booted {
  app: INestMicroservice;
  transport: EarwaxTransport;
  port: number;
  logs: RecordingLogger;
}

/**
 * Boots a real Nest microservice on `EarwaxTransport`, on 127.0.0.1 and a
 * free port, logging into a `RecordingLogger`.
 */
export async function bootEarwax(
  metadata: ModuleMetadata,
  options: EarwaxTransportOptions = {},
  setup?: (app: INestMicroservice, transport: EarwaxTransport) => void,
): Promise<Booted> {
  const logs = new RecordingLogger();
  const moduleRef = await Test.createTestingModule(metadata)
    .setLogger(logs)
    .compile();
  const transport = new EarwaxTransport({
    host: '127.0.0.1',
    // Listeners name their own ports.
    ...(options.listeners === undefined ? { port: 0 } : {}),
    ...options,
  });
  const app = moduleRef.createNestMicroservice({
    strategy: transport,
    logger: logs,
  });
  app.useLogger(logs);
  setup?.(app, transport);
  await app.listen();
  const address = transport.address();
  if (!address) throw new Error('The transport is not listening.');
  return { app, transport, port: address.port, logs };
}
