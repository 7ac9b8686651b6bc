import 'reflect-metadata';
import { afterEach, describe, expect, it } from '@jest/globals';
import { Controller } from '@nestjs/common';
import { Ctx, Payload } from '@nestjs/microservices';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import {
  ConnectionContext,
  EarwaxEvent,
  type DisconnectReason,
} from '../../lib/index.js';
import {
  EarwaxTesting,
  type EarwaxTestServer,
} from '../../lib/testing/index.js';
import { Journal } from '../support/journal.js';

const journal = new Journal();

@Controller()
class NetcatController {
  @EarwaxEvent('on_connect')
  hello(@Ctx() ctx: ConnectionContext) {
    journal.record(`connect:${ctx.hostname}`);
    return 'hello';
  }

  @EarwaxEvent('on_data')
  echo(@Payload() line: string) {
    journal.record(`data:${line}`);
    return `echo ${line}`;
  }

  @EarwaxEvent('on_disconnect')
  gone(@Payload() reason: DisconnectReason) {
    journal.record(`disconnect:${reason}`);
  }
}

/**
 * Debian's OpenBSD netcat as a player: LF-only lines from its standard input,
 * `-N` to send FIN at the end of it, `-s` for its own address. Resolves with
 * everything it printed once it exits (when the server has closed).
 */
async function netcat(port: number, from: string, input: string) {
  const child = spawn('nc', ['-N', '-s', from, '127.0.0.1', String(port)], {
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  const spawned = await Promise.race([
    once(child, 'spawn').then(() => true),
    once(child, 'error').then(() => false),
  ]);
  if (!spawned) {
    throw new Error(
      'nc is not installed: install Debian\'s netcat-openbsd (".ci/run" does).',
    );
  }
  const out: Buffer[] = [];
  let err = '';
  child.stdout.on('data', (chunk: Buffer) => out.push(chunk));
  child.stderr.on('data', (chunk: Buffer) => (err += chunk.toString()));
  const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
  child.stdin.end(input);
  const [code] = (await once(child, 'exit')) as [number | null];
  clearTimeout(timer);
  return { output: Buffer.concat(out).toString('latin1'), code, err };
}

describe('a raw netcat client (LF-only lines)', () => {
  let server: EarwaxTestServer | undefined;

  afterEach(async () => {
    await server?.close();
    server = undefined;
    journal.entries.length = 0;
  });

  it('gets every LF-terminated line, and the unterminated last one at its FIN, with CRLF replies', async () => {
    server = await EarwaxTesting.createServer(
      { controllers: [NetcatController] },
      { transport: { encoding: 'utf8' } },
    );
    const { output, code, err } = await netcat(
      server.port,
      '127.0.0.2',
      'look\nsay hello there\n\nlast words',
    );
    expect({ code, err }).toEqual({ code: 0, err: '' });
    expect(output).toBe(
      'hello\r\necho look\r\necho say hello there\r\necho \r\necho last words\r\n',
    );
    await journal.waitForEntry('disconnect:client_closed', 5000);
    expect(journal.entries).toEqual([
      'connect:127.0.0.2',
      'data:look',
      'data:say hello there',
      'data:',
      'data:last words',
      'disconnect:client_closed',
    ]);
  });

  it('still gets clean lines in telnet mode, after the offers it shows as stray bytes', async () => {
    server = await EarwaxTesting.createServer(
      { controllers: [NetcatController] },
      { transport: { encoding: 'utf8', telnet: true } },
    );
    const { output, code } = await netcat(server.port, '127.0.0.3', 'look\n');
    expect(code).toBe(0);
    // The offers (IAC DO/WILL ...) come first and are never answered by nc.
    expect(output.charCodeAt(0)).toBe(0xff);
    expect(output.endsWith('hello\r\necho look\r\n')).toBe(true);
    await journal.waitForEntry('disconnect:client_closed', 5000);
    expect(journal.entries).toEqual([
      'connect:127.0.0.3',
      'data:look',
      'disconnect:client_closed',
    ]);
  });
});
