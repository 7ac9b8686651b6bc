import 'reflect-metadata';
import { afterEach, describe, expect, it } from '@jest/globals';
import { Controller, Inject } from '@nestjs/common';
import { Payload } from '@nestjs/microservices';
import { concat, delay, of, throwError } from 'rxjs';
import {
  EarwaxEvent,
  EarwaxModule,
  EVENT_HANDLED,
  type EarwaxTransportOptions,
} from '../../lib/index.js';
import {
  EarwaxTesting,
  type EarwaxTestServer,
} from '../../lib/testing/index.js';
import { Journal } from '../support/journal.js';

const JOURNAL = 'JOURNAL';

/** Answers commands by returning replies in every supported form. */
@Controller()
class ReplyController {
  constructor(@Inject(JOURNAL) private readonly journal: Journal) {}

  @EarwaxEvent('on_data', { priority: 1 })
  answer(@Payload() line: string): unknown {
    switch (line) {
      case 'text':
        return 'plain text';
      case 'bytes':
        return Buffer.from([0x41, 0xe9]);
      case 'lines':
        return ['one', Buffer.from('two'), 3, 'four'];
      case 'async':
        return Promise.resolve('resolved');
      case 'stream':
        return concat(of('first'), of('second').pipe(delay(5)));
      case 'stop':
        return of('stopping', EVENT_HANDLED);
      case 'stop-early':
        // Only the last value decides: this one does not stop the chain.
        return of(EVENT_HANDLED, 'after');
      case 'fail':
        return concat(
          of('before the error'),
          throwError(() => new Error('x')),
        );
      case 'object':
        return { not: 'a reply' };
      default:
        return undefined;
    }
  }

  @EarwaxEvent('on_disconnect')
  gone(@Payload() reason: string): void {
    this.journal.record(`disconnect:${reason}`);
  }

  @EarwaxEvent('on_data')
  last(@Payload() line: string): string {
    this.journal.record(`last:${line}`);
    return `end of ${line}`;
  }
}

/** Greets every player on connect, as most games do. */
@Controller()
class GreetingController {
  @EarwaxEvent('on_connect')
  greet() {
    return 'Welcome, traveller.';
  }
}

/**
 * Boots the reply controller (utf8 lines) with its own journal.
 */
async function bootReplies(
  options: EarwaxTransportOptions = {},
): Promise<{ server: EarwaxTestServer; journal: Journal }> {
  const journal = new Journal();
  const server = await EarwaxTesting.createServer(
    {
      imports: [EarwaxModule.forRoot()],
      controllers: [ReplyController],
      providers: [{ provide: JOURNAL, useValue: journal }],
    },
    // Handler errors are expected here, and read from server.logs.
    { transport: { encoding: 'utf8', ...options }, printLogs: [] },
  );
  return { server, journal };
}

describe('handler replies', () => {
  let server: EarwaxTestServer | undefined;
  let journal: Journal;
  afterEach(async () => {
    await server?.close();
    server = undefined;
  });

  async function boot(options: EarwaxTransportOptions = {}) {
    ({ server, journal } = await bootReplies(options));
    return server;
  }

  it('sends returned text, bytes and arrays as lines, and the chain goes on', async () => {
    const client = await (await boot()).connect();
    client.send('text');
    expect(await client.readLines(2)).toEqual(['plain text', 'end of text']);
    client.send('bytes');
    await client.expectLine('end of bytes');
    expect(
      client.received.includes(Buffer.from([0x41, 0xe9, 0x0d, 0x0a])),
    ).toBe(true);
    client.send('lines');
    expect(await client.readUntil('end of lines')).toEqual([
      'one',
      'two',
      'four',
      'end of lines',
    ]);
    expect(client.lines.slice(-4)).toEqual([
      'one',
      'two',
      'four',
      'end of lines',
    ]);
    client.send('async');
    await client.expectLine('end of async');
    expect(client.lines.at(-2)).toBe('resolved');
  });

  it('sends each value an Observable emits; its last value decides the chain', async () => {
    const client = await (await boot()).connect();
    client.send('stream');
    await client.expectLine('end of stream');
    expect(client.lines).toEqual(['first', 'second', 'end of stream']);
    client.send('stop');
    await client.expectLine('stopping');
    client.send('stop-early');
    await client.expectLine('end of stop-early');
    expect(client.lines.slice(3)).toEqual([
      'stopping',
      'after',
      'end of stop-early',
    ]);
    // The chain stopped after 'stop': the last handler never saw it.
    expect(journal.entries).toEqual(['last:stream', 'last:stop-early']);
  });

  it('keeps what was sent before an Observable fails, and ignores other values', async () => {
    const server = await boot();
    const client = await server.connect();
    client.send('fail');
    await client.expectLine('before the error');
    await server.logs.waitFor(/failed on on_data/, { level: 'warn' });
    client.send('object');
    await client.expectLine('end of object');
    expect(client.lines).toEqual(['before the error', 'end of object']);
  });
});

describe('protocol sniffing', () => {
  let server: EarwaxTestServer | undefined;
  afterEach(async () => {
    await server?.close();
    server = undefined;
  });

  async function boot(options: EarwaxTransportOptions = {}) {
    const booted = await bootReplies(options);
    server = booted.server;
    return booted;
  }

  it('answers a browser with a plain-text HTTP response and closes', async () => {
    const { server, journal } = await boot();
    const client = await server.connect();
    client.sendRaw('GET / HTTP/1.1\r\nHost: localhost\r\nAccept: */*\r\n\r\n');
    await client.expectClose();
    const text = client.received.toString('utf8');
    expect(text).toMatch(/^HTTP\/1\.0 400 Bad Request\r\n/);
    expect(text).toContain('Content-Type: text/plain');
    expect(text).toContain('This is a game server, not a web server');
    await server.logs.waitFor(/HTTP request on the game port/, {
      level: 'warn',
    });
    await journal.waitForEntry('disconnect:protocol');
    expect(journal.entries).toEqual(['disconnect:protocol']);
  });

  it('closes a browser without an HTTP answer when the game greeted it first', async () => {
    const greeted = await EarwaxTesting.createServer(
      { imports: [EarwaxModule.forRoot()], controllers: [GreetingController] },
      { transport: { encoding: 'utf8' }, printLogs: [] },
    );
    try {
      const client = await greeted.connect();
      await client.expectLine('Welcome, traveller.');
      client.sendRaw('GET / HTTP/1.1\r\nHost: localhost\r\n\r\n');
      await client.expectClose();
      // The greeting, and nothing that would pass for a status line after it.
      expect(client.received.toString('utf8')).toBe('Welcome, traveller.\r\n');
      await greeted.logs.waitFor(
        /HTTP request on the game port, after the game had written to it/,
        { level: 'warn' },
      );
    } finally {
      await greeted.close();
    }
  });

  it('does not mistake a player for a browser, nor sniff past the first chunk', async () => {
    const { server, journal } = await boot();
    const client = await server.connect();
    client.send('GET sword');
    await journal.waitForEntry('last:GET sword');
    client.send('GET / HTTP/1.1');
    await journal.waitForEntry('last:GET / HTTP/1.1');
    await client.expectLine('end of GET / HTTP/1.1');
    expect(client.isOpen).toBe(true);
  });

  it('closes a TLS handshake sent to the plain port', async () => {
    const { server, journal } = await boot();
    const client = await server.connect();
    // The start of a TLS ClientHello record.
    client.sendRaw(Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00]));
    await server.logs.waitFor(/TLS handshake on a plain port/, {
      level: 'warn',
    });
    await client.expectClose();
    await journal.waitForEntry('disconnect:protocol');
    expect(client.received).toHaveLength(0);
  });

  it('lets HTTP through as lines when sniffing is off', async () => {
    const { server, journal } = await boot({ sniffProtocols: false });
    const client = await server.connect();
    client.send('GET / HTTP/1.1');
    await journal.waitForEntry('last:GET / HTTP/1.1');
    expect(client.isOpen).toBe(true);
  });
});
