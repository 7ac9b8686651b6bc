/**
 * A small Earwax server run as a child process by the shutdown spec, to be
 * stopped with a real SIGTERM through Nest's shutdown hooks (which end the
 * process, so they cannot run inside Jest). Run it with the loader hooks of
 * shutdown-child-hooks.mjs. It reports on stdout, one line each:
 * `port:<n>` once listening, `connect`, `disconnect:<reason>`,
 * `shutdown:<signal>`; Nest's warnings and errors go to stderr.
 */
import 'reflect-metadata';
import {
  Controller,
  type LoggerService,
  Module,
  type OnApplicationShutdown,
} from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { Ctx, Payload } from '@nestjs/microservices';
import {
  ConnectionContext,
  EarwaxEvent,
  EarwaxModule,
  EarwaxTransport,
} from '../../lib/index.js';

function report(line: string): void {
  // Synchronous for pipes on Linux: nothing is lost when the process ends.
  process.stdout.write(`${line}\n`);
}

class StderrLogger implements LoggerService {
  log(): void {}
  warn(message: unknown): void {
    process.stderr.write(`warn: ${String(message)}\n`);
  }
  error(message: unknown, ...rest: unknown[]): void {
    process.stderr.write(`error: ${String(message)} ${rest.join(' ')}\n`);
  }
}

@Controller()
class ChildController implements OnApplicationShutdown {
  @EarwaxEvent('on_connect')
  connected(@Ctx() ctx: ConnectionContext) {
    ctx.sendString('Welcome.');
    report('connect');
  }

  @EarwaxEvent('on_data')
  data(@Payload() line: string, @Ctx() ctx: ConnectionContext) {
    ctx.sendString(line);
  }

  @EarwaxEvent('on_disconnect')
  disconnected(@Payload() reason: string) {
    report(`disconnect:${reason}`);
  }

  onApplicationShutdown(signal?: string) {
    report(`shutdown:${signal}`);
  }
}

@Module({ imports: [EarwaxModule.forRoot()], controllers: [ChildController] })
class ChildModule {}

const transport = new EarwaxTransport({
  host: '127.0.0.1',
  port: 0,
  encoding: 'utf8',
  messages: { shutdown: 'Server going down.' },
});
const app = await NestFactory.createMicroservice(ChildModule, {
  strategy: transport,
  logger: new StderrLogger(),
});
app.enableShutdownHooks();
await app.listen();
report(`port:${transport.address()?.port}`);
