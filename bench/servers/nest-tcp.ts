/**
 * NestJS's own TCP transport (`Transport.TCP`), for the echo scenario only:
 * a `@MessagePattern('echo')` handler returning its input, driven by the
 * load generator over Nest's JSON framing (`<length>#<json>`).
 */
import 'reflect-metadata';
import { Controller } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import {
  MessagePattern,
  type MicroserviceOptions,
  Payload,
  Transport,
} from '@nestjs/microservices';
import { serve, serverArgs } from './control.js';

const args = serverArgs();

@Controller()
class EchoController {
  @MessagePattern('echo')
  echo(@Payload() data: string): string {
    return data;
  }
}

let close = async (): Promise<void> => {};

await serve(
  {
    listen: async (port) => {
      const app = await NestFactory.createMicroservice<MicroserviceOptions>(
        { controllers: [EchoController] },
        {
          transport: Transport.TCP,
          options: { host: '127.0.0.1', port },
          logger: ['error', 'warn'],
        },
      );
      await app.listen();
      close = () => app.close();
    },
    // Not needed by the echo scenario, which counts its own connections.
    connections: () => -1,
    close: () => close(),
  },
  args.port,
);
