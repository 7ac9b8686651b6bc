import 'reflect-metadata';
import { afterEach, describe, expect, it } from '@jest/globals';
import { Controller } from '@nestjs/common';
import { Ctx, Payload } from '@nestjs/microservices';
import {
  ConnectionContext,
  EarwaxEvent,
  type DisconnectReason,
} from '../../lib/index.js';
import {
  EarwaxTesting,
  type EarwaxTestServer,
} from '../../lib/testing/index.js';
import { WatchedChild } from '../support/child-process.js';
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
 * everything it printed once it has ended (when the server has closed) and
 * its output has been read to the end.
 */
async function netcat(port: number, from: string, input: string) {
  const child = WatchedChild.spawn(
    'nc',
    'nc',
    ['-N', '-s', from, '127.0.0.1', String(port)],
    { stdio: ['pipe', 'pipe', 'pipe'] },
  );
  // A write after nc has gone is reported by its end.
  child.child.stdin?.on('error', () => undefined);
  child.child.stdin?.end(input);
  const { code, error } = await child.waitForEnd();
  if (error) {
    throw new Error(
      `nc could not start (${error.message}): install Debian's netcat-openbsd (".ci/run" does).`,
    );
  }
  return { output: child.stdout('latin1'), code, err: child.stderr };
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
    await journal.waitForEntry('disconnect:client_closed');
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
    await journal.waitForEntry('disconnect:client_closed');
    expect(journal.entries).toEqual([
      'connect:127.0.0.3',
      'data:look',
      'disconnect:client_closed',
    ]);
  });
});
