import 'reflect-metadata';
import { afterEach, describe, expect, it } from '@jest/globals';
import { Controller } from '@nestjs/common';
import { Payload } from '@nestjs/microservices';
import { execFileSync } from 'node:child_process';
import { EarwaxEvent } from '../../lib/index.js';
import { bootEarwax, type Booted } from '../support/boot.js';
import { LineClient } from '../support/line-client.js';

@Controller()
class EchoController {
  @EarwaxEvent('on_data')
  echo(@Payload() line: Buffer): string {
    return `echo ${line.toString()}`;
  }
}

/**
 * Opens `count` connections to `port` from another process and resets each
 * (TCP RST) as soon as it is established, then exits. Run synchronously:
 * this process's event loop is blocked meanwhile, so every connection waits
 * in the accept queue and is reset before the transport sees it.
 */
function resetStorm(port: number, count: number): void {
  const script = `
    const net = require('node:net');
    let left = ${count};
    for (let i = 0; i < ${count}; i++) {
      const socket = net.connect(${port}, '127.0.0.1');
      socket.on('error', () => {});
      socket.on('connect', () => socket.resetAndDestroy());
      socket.on('close', () => { if (--left === 0) process.exit(0); });
    }
  `;
  execFileSync(process.execPath, ['-e', script], { stdio: 'inherit' });
}

describe('connections reset while they wait to be accepted', () => {
  let booted: Booted | undefined;
  afterEach(async () => {
    await booted?.app.close();
    booted = undefined;
  });

  it('are closed before admission: never logged, limited or counted under an empty address', async () => {
    booted = await bootEarwax(
      { controllers: [EchoController] },
      {
        encoding: undefined,
        // A rate that the storm would exhaust, had it been counted.
        connectionRate: { limit: 5, windowMs: 600_000 },
        refusalLogInterval: false,
      },
    );
    const { port, transport, logs } = booted;
    resetStorm(port, 60);
    // A player from the same loopback address connects after the storm:
    // its connection is accepted after every reset one, so once it is
    // served, the transport has seen them all.
    const player = await LineClient.connect(port);
    player.send('hello');
    expect(await player.expectLine('echo hello')).toBe('echo hello');
    const s = transport.metrics.snapshot();
    expect(s.connectionsAccepted).toBe(61);
    expect(s.connectionsAdmitted).toBe(1);
    expect(Object.values(s.connectionsRefused).every((n) => n === 0)).toBe(
      true,
    );
    // No log line names a connection without an address.
    const nameless = logs.journal.entries.filter(
      (entry) =>
        entry.context === ':0' || /from :|from\s*$/.test(entry.message),
    );
    expect(nameless).toEqual([]);
    player.socket.destroy();
  }, 30_000);
});
