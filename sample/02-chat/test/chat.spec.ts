import 'reflect-metadata';
import { afterEach, beforeEach, describe, expect, it } from '@jest/globals';
import { bootEarwax, type Booted } from '../../../test/support/boot.js';
import { LineClient } from '../../../test/support/line-client.js';
import { AppModule } from '../src/app.module.js';
import { BlockListService } from '../src/block-list.service.js';
import { chatTransportOptions } from '../src/chat.options.js';

describe('sample 02-chat', () => {
  let booted: Booted;
  beforeEach(async () => {
    booted = await bootEarwax(
      { imports: [AppModule] },
      { ...chatTransportOptions({}), port: 0 },
    );
  });
  afterEach(() => booted.app.close());

  it('welcomes with the count of others, announces joins, chat and leaves', async () => {
    const alice = await LineClient.connect(booted.port);
    await alice.waitForLines(2);
    expect(alice.lines).toEqual([
      'Welcome to the server.',
      'Other connections: 0.',
    ]);

    const bob = await LineClient.connect(booted.port);
    await bob.waitForLines(2);
    expect(bob.lines).toEqual([
      'Welcome to the server.',
      'Other connections: 1.',
    ]);
    const bobName = `127.0.0.1:${bob.socket.localPort}`;
    expect(await alice.line(2)).toBe(`New connection from ${bobName}.`);

    bob.send('hello all');
    expect(await alice.line(3)).toBe(`${bobName}: hello all`);
    expect(await bob.line(2)).toBe(`${bobName}: hello all`);

    bob.send('quit');
    await bob.closed;
    expect(bob.lines.slice(3)).toEqual(['Goodbye.']);
    expect(await alice.line(4)).toBe(`${bobName} has disconnected.`);
    await alice.end();
  });

  it('refuses a blocked address with a message, using the injected block list', async () => {
    booted.app.get(BlockListService, { strict: false }).block('127.0.0.9');
    const blocked = await LineClient.connect(booted.port, '127.0.0.9');
    await blocked.closed;
    expect(blocked.lines).toEqual(['You are blocked.']);
    const allowed = await LineClient.connect(booted.port, '127.0.0.10');
    expect(await allowed.line(0)).toBe('Welcome to the server.');
    await allowed.end();
  });
});
