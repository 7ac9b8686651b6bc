import 'reflect-metadata';
import { afterEach, describe, expect, it } from '@jest/globals';
import { Controller, Inject } from '@nestjs/common';
import { Payload } from '@nestjs/microservices';
import { connect } from 'node:net';
import { concat, delay, of, throwError } from 'rxjs';
import {
  EarwaxEvent,
  EarwaxModule,
  EVENT_HANDLED,
  type EarwaxTransportOptions,
} from '../../lib/index.js';
import { bootEarwax, type Booted } from '../support/boot.js';
import { Journal } from '../support/journal.js';
import { LineClient } from '../support/line-client.js';

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

describe('handler replies', () => {
  const running: Booted[] = [];
  let journal: Journal;
  afterEach(async () => {
    await Promise.all(running.splice(0).map((b) => b.app.close()));
  });

  async function boot(options: EarwaxTransportOptions = {}) {
    journal = new Journal();
    const booted = await bootEarwax(
      {
        imports: [EarwaxModule.forRoot()],
        controllers: [ReplyController],
        providers: [{ provide: JOURNAL, useValue: journal }],
      },
      { encoding: 'utf8', ...options },
    );
    running.push(booted);
    return booted;
  }

  it('sends returned text, bytes and arrays as lines, and the chain goes on', async () => {
    const { port } = await boot();
    const client = await LineClient.connect(port);
    client.send('text');
    expect(await client.waitForLines(2)).toEqual(['plain text', 'end of text']);
    client.send('bytes');
    await client.expectLine('end of bytes');
    expect(
      client.received.includes(Buffer.from([0x41, 0xe9, 0x0d, 0x0a])),
    ).toBe(true);
    client.send('lines');
    await client.expectLine('end of lines');
    expect(client.lines.slice(-4)).toEqual([
      'one',
      'two',
      'four',
      'end of lines',
    ]);
    client.send('async');
    await client.expectLine('end of async');
    expect(client.lines.at(-2)).toBe('resolved');
    await client.end();
  });

  it('sends each value an Observable emits; its last value decides the chain', async () => {
    const { port } = await boot();
    const client = await LineClient.connect(port);
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
    await client.end();
  });

  it('keeps what was sent before an Observable fails, and ignores other values', async () => {
    const { port, logs } = await boot();
    const client = await LineClient.connect(port);
    client.send('fail');
    await client.expectLine('before the error');
    await logs.waitFor(/failed on on_data/, 'warn');
    client.send('object');
    await client.expectLine('end of object');
    expect(client.lines).toEqual(['before the error', 'end of object']);
    await client.end();
  });
});

describe('protocol sniffing', () => {
  const running: Booted[] = [];
  afterEach(async () => {
    await Promise.all(running.splice(0).map((b) => b.app.close()));
  });

  async function boot(options: EarwaxTransportOptions = {}) {
    const journal = new Journal();
    const booted = await bootEarwax(
      {
        imports: [EarwaxModule.forRoot()],
        controllers: [ReplyController],
        providers: [{ provide: JOURNAL, useValue: journal }],
      },
      { encoding: 'utf8', ...options },
    );
    running.push(booted);
    return { ...booted, journal };
  }

  it('answers a browser with a plain-text HTTP response and closes', async () => {
    const { port, logs, journal } = await boot();
    const client = await LineClient.connect(port);
    client.write('GET / HTTP/1.1\r\nHost: localhost\r\nAccept: */*\r\n\r\n');
    await client.expectClosedByServer();
    const text = client.received.toString('utf8');
    expect(text).toMatch(/^HTTP\/1\.0 400 Bad Request\r\n/);
    expect(text).toContain('Content-Type: text/plain');
    expect(text).toContain('This is a game server, not a web server');
    await logs.waitFor(/HTTP request on the game port/, 'warn');
    await journal.waitForEntry('disconnect:protocol');
    expect(journal.entries).toEqual(['disconnect:protocol']);
  });

  it('does not mistake a player for a browser, nor sniff past the first chunk', async () => {
    const { port, journal } = await boot();
    const client = await LineClient.connect(port);
    client.send('GET sword');
    await journal.waitForEntry('last:GET sword');
    client.send('GET / HTTP/1.1');
    await journal.waitForEntry('last:GET / HTTP/1.1');
    expect(client.ended).toBe(false);
    await client.end();
  });

  it('closes a TLS handshake sent to the plain port', async () => {
    const { port, logs, journal } = await boot();
    const socket = connect({ port, host: '127.0.0.1' });
    socket.on('error', () => undefined);
    await new Promise<void>((resolve) => socket.once('connect', resolve));
    // The start of a TLS ClientHello record.
    socket.write(Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00]));
    await logs.waitFor(/TLS handshake on a plain port/, 'warn');
    await new Promise<void>((resolve) => socket.once('close', () => resolve()));
    await journal.waitForEntry('disconnect:protocol');
  });

  it('lets HTTP through as lines when sniffing is off', async () => {
    const { port, journal } = await boot({ sniffProtocols: false });
    const client = await LineClient.connect(port);
    client.send('GET / HTTP/1.1');
    await journal.waitForEntry('last:GET / HTTP/1.1');
    expect(client.ended).toBe(false);
    await client.end();
  });
});
