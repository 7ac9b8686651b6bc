import 'reflect-metadata';
import { describe, expect, it, jest } from '@jest/globals';
import { Controller } from '@nestjs/common';
import { Ctx } from '@nestjs/microservices';
import { NestFactory } from '@nestjs/core';
import { Module } from '@nestjs/common';
import { type Server as NetServer, Socket, createServer } from 'node:net';
import {
  ConnectionContext,
  EarwaxEvent,
  EarwaxModule,
  EarwaxStatus,
  EarwaxTransport,
} from '../../lib/index.js';
import { bootEarwax } from '../support/boot.js';
import { Journal } from '../support/journal.js';
import { LineClient } from '../support/line-client.js';
import { RecordingLogger } from '../support/recording-logger.js';

@Controller()
class HelloController {
  @EarwaxEvent('on_connect')
  hello(@Ctx() ctx: ConnectionContext) {
    ctx.sendString(`hello ${ctx.toString()}`);
  }
}

describe('listen, close, unwrap, on and status', () => {
  it('rejects app.listen() with EADDRINUSE when the port is taken', async () => {
    const blocker: NetServer = createServer();
    await new Promise<void>((resolve) =>
      blocker.listen(0, '127.0.0.1', resolve),
    );
    const port = (blocker.address() as { port: number }).port;
    try {
      const statuses: string[] = [];
      await expect(
        bootEarwax(
          { controllers: [HelloController] },
          { port },
          (_app, transport) => {
            transport.status.subscribe((s) => statuses.push(s));
          },
        ),
      ).rejects.toMatchObject({ code: 'EADDRINUSE' });
      expect(statuses).toEqual([EarwaxStatus.CLOSED]);
    } finally {
      await new Promise((resolve) => blocker.close(resolve));
    }
  });

  it('rejects app.listen() for a host or port it cannot bind', async () => {
    await expect(
      bootEarwax({ controllers: [HelloController] }, { host: '192.0.2.1' }),
    ).rejects.toMatchObject({ code: 'EADDRNOTAVAIL' });
    await expect(
      bootEarwax({ controllers: [HelloController] }, { port: 70000 }),
    ).rejects.toMatchObject({ code: 'ERR_SOCKET_BAD_PORT' });
  });

  it('serves IPv6 loopback and names the peer with brackets', async () => {
    const booted = await bootEarwax(
      { controllers: [HelloController] },
      { host: '::1' },
    );
    try {
      const lines = new Journal();
      const { connect } = await import('node:net');
      const socket = connect({ port: booted.port, host: '::1' });
      socket.on('data', (d: Buffer) => lines.record(d.toString()));
      await lines.waitFor((es) => es.join('').includes('\r\n'));
      expect(lines.entries.join('')).toMatch(/^hello \[::1\]:\d+\r\n$/);
      socket.destroy();
    } finally {
      await booted.app.close();
    }
  });

  it('unwraps to the net.Server, forwards on() listeners added before listen(), and logs where it listens', async () => {
    const connections = new Journal<number>();
    const booted = await bootEarwax(
      { controllers: [HelloController] },
      {},
      (_app, transport) => {
        transport.on('connection', (socket) =>
          connections.record(socket.remotePort ?? 0),
        );
      },
    );
    try {
      const server = booted.transport.unwrap<NetServer>();
      expect(server.listening).toBe(true);
      expect(server.address()).toEqual(booted.transport.address());
      const client = await LineClient.connect(booted.port);
      await connections.waitFor((es) => es.length === 1);
      expect(connections.entries[0]).toBe(client.socket.localPort);
      expect(
        booted.logs.find(`Listening on 127.0.0.1:${booted.port}`, 'log'),
      ).toHaveLength(1);
      await client.end();
    } finally {
      await booted.app.close();
    }
  });

  it('applies the backlog and socket options it is given', async () => {
    const noDelay = jest.spyOn(Socket.prototype, 'setNoDelay');
    const keepAlive = jest.spyOn(Socket.prototype, 'setKeepAlive');
    let listenOptions: unknown;
    const booted = await bootEarwax(
      { controllers: [HelloController] },
      { backlog: 7, noDelay: true, keepAlive: 1000, ipv6Only: false },
      (_app, transport) => {
        const server = transport.unwrap<NetServer>();
        const listen = server.listen.bind(server);
        jest.spyOn(server, 'listen').mockImplementation(((options: unknown) => {
          listenOptions = options;
          return listen(options as never);
        }) as never);
      },
    );
    try {
      expect(listenOptions).toMatchObject({
        host: '127.0.0.1',
        port: 0,
        backlog: 7,
        ipv6Only: false,
      });
      const client = await LineClient.connect(booted.port);
      expect(await client.line(0)).toMatch(/^hello 127\.0\.0\.1:/);
      expect(noDelay).toHaveBeenCalledWith(true);
      expect(keepAlive).toHaveBeenCalledWith(true, 1000);
      await client.end();
    } finally {
      noDelay.mockRestore();
      keepAlive.mockRestore();
      await booted.app.close();
    }
  });

  it('closes with NestFactory.createMicroservice and a module, and close() is idempotent', async () => {
    @Module({
      imports: [EarwaxModule.forRoot()],
      controllers: [HelloController],
    })
    class AppModule {}
    const transport = new EarwaxTransport({ host: '127.0.0.1', port: 0 });
    const app = await NestFactory.createMicroservice(AppModule, {
      strategy: transport,
      logger: new RecordingLogger(),
    });
    await app.listen();
    const client = await LineClient.connect(transport.address()!.port);
    expect(await client.line(0)).toMatch(/^hello /);
    const first = transport.close();
    expect(transport.close()).toBe(first);
    await app.close();
    await client.closed;
    expect(transport.unwrap<NetServer>().listening).toBe(false);
  });

  it('validates numeric options', () => {
    expect(() => new EarwaxTransport({ maxLineLength: 0 })).toThrow(
      /maxLineLength/,
    );
    expect(() => new EarwaxTransport({ maxOutputBuffer: -1 })).toThrow(
      /maxOutputBuffer/,
    );
  });
});
