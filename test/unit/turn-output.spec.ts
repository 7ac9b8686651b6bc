import { afterEach, beforeAll, describe, expect, it } from '@jest/globals';
import { Logger } from '@nestjs/common';
import { once } from 'node:events';
import { Writable } from 'node:stream';
import { setImmediate as turnEnd } from 'node:timers/promises';
import { constants as zlibConstants, inflateSync } from 'node:zlib';
import { compress } from '../../lib/connection/outbox.js';
import { ConnectionRegistry } from '../../lib/registry/connection.registry.js';
import {
  recordingOwner,
  releaseTestConnections,
  testConnection,
  TestMedium,
} from '../support/test-connection.js';

/**
 * An output that takes everything at once and records each write it was
 * asked for: one entry per `_write` or `_writev`, with its chunks.
 */
function recordingOutput() {
  const writes: Buffer[][] = [];
  const output = new Writable({
    write(chunk: Buffer, _encoding, done) {
      writes.push([chunk]);
      done();
    },
    writev(chunks, done) {
      writes.push(chunks.map(({ chunk }) => chunk as Buffer));
      done();
    },
  });
  const text = () => Buffer.concat(writes.flat()).toString('latin1');
  return { output, writes, text };
}

function wired(settings: { maxOutputBuffer?: number } = {}) {
  const out = recordingOutput();
  const { connection, ctx, owner } = testConnection({
    medium: new TestMedium(out.output),
    settings,
  });
  return { ...out, connection, ctx, owner };
}

afterEach(releaseTestConnections);
beforeAll(() => Logger.overrideLogger(false));

describe('output within one turn', () => {
  it('leaves in one write at the end of the turn, in order', async () => {
    const { ctx, writes, text } = wired();
    ctx.sendString('The Hall');
    ctx.sendString('A long hall with a stone floor.');
    ctx.sendBytes(Buffer.from('Exits: north, south'));
    ctx.sendRaw('Bob is here.\r\n');
    ctx.sendPrompt('> ');
    // Nothing leaves before the turn ends.
    expect(writes).toHaveLength(0);
    await turnEnd();
    // One write of one chunk: the turn's text, joined.
    expect(writes).toEqual([[expect.any(Buffer)]]);
    expect(text()).toBe(
      'The Hall\r\nA long hall with a stone floor.\r\nExits: north, south\r\nBob is here.\r\n> ',
    );
  });

  it('joins text and bytes of a turn in order, multi-byte text included', async () => {
    const { ctx, writes } = wired();
    ctx.sendString('Ça va? ✓');
    ctx.sendRaw(Buffer.from([0x01, 0x02]));
    ctx.sendString('naïve 🐉');
    ctx.sendBytes(Buffer.from('end'));
    await turnEnd();
    expect(writes).toHaveLength(1);
    expect(Buffer.concat(writes.flat())).toEqual(
      Buffer.concat([
        Buffer.from('Ça va? ✓\r\n'),
        Buffer.from([0x01, 0x02]),
        Buffer.from('naïve 🐉\r\nend\r\n'),
      ]),
    );
  });

  it('costs a write per turn, not per line, over several turns', async () => {
    const { ctx, writes, text } = wired();
    for (let turn = 0; turn < 3; turn++) {
      for (let line = 0; line < 4; line++) ctx.sendString(`${turn}.${line}`);
      await turnEnd();
    }
    expect(writes).toHaveLength(3);
    expect(text()).toBe(
      '0.0\r\n0.1\r\n0.2\r\n0.3\r\n1.0\r\n1.1\r\n1.2\r\n1.3\r\n2.0\r\n2.1\r\n2.2\r\n2.3\r\n',
    );
  });

  it('gives a reading client a turn larger than maxOutputBuffer, in parts', async () => {
    const { ctx, writes, text, owner } = wired({ maxOutputBuffer: 4096 });
    const line = 'x'.repeat(1022);
    let expected = '';
    for (let i = 0; i < 100; i++) {
      expect(ctx.sendString(`${i} ${line}`)).toBe(true);
      expected += `${i} ${line}\r\n`;
    }
    await turnEnd();
    // What the turn held was written whenever it passed the cap, so the
    // client that takes everything is not a slow consumer.
    expect(owner.disconnects).toEqual([]);
    expect(text()).toBe(expected);
    expect(writes.length).toBeGreaterThan(1);
    expect(writes.length).toBeLessThan(100);
  });

  it('still drops a client that does not read, once held output is written', async () => {
    // Never completes a write: everything past the first stays queued.
    const stalled = new Writable({ write: () => undefined });
    const { ctx, owner } = testConnection({
      medium: new TestMedium(stalled),
      settings: { maxOutputBuffer: 8192 },
    });
    let sent = 0;
    while (ctx.sendString('y'.repeat(1000)) && sent < 100) sent++;
    expect(sent).toBeLessThan(100);
    expect(owner.disconnects).toEqual([`${ctx.id}:slow_consumer`]);
    await turnEnd();
  });

  it('is written before the output ends when the server hangs up in the same turn', async () => {
    const ends: string[] = [];
    const { output, text } = recordingOutput();
    output.on('finish', () => ends.push(text()));
    const medium = new TestMedium(output);
    medium.end = () => output.end();
    const { connection, ctx } = testConnection({ medium });
    ctx.sendString('Goodbye.');
    connection.disconnect('server_shutdown');
    await turnEnd();
    expect(ends).toEqual(['Goodbye.\r\n']);
  });

  it('writes a broadcast as one buffer shared by its recipients', async () => {
    const owner = recordingOwner();
    const registry: ConnectionRegistry = owner.registry;
    const players = [0, 1, 2].map(() => {
      const out = recordingOutput();
      const { connection, ctx } = testConnection({
        medium: new TestMedium(out.output),
        owner,
      });
      connection.state = 'open';
      registry.add(ctx);
      registry.join(ctx, 'hall');
      return { ...out, ctx };
    });
    const [ann, bob, cat] = players.map((p) => p.ctx);
    ann?.sendString('You say hi.');
    registry.broadcast('Ann says hi.', { room: 'hall', except: ann });
    await turnEnd();
    // Ann's turn: her own line. Bob's and Cat's: the same Buffer, not a
    // copy each.
    expect(players.map((p) => p.text())).toEqual([
      'You say hi.\r\n',
      'Ann says hi.\r\n',
      'Ann says hi.\r\n',
    ]);
    expect(players[1]?.writes[0]?.[0]).toBe(players[2]?.writes[0]?.[0]);
    // Lines from several sources in one turn: still one write each.
    bob?.sendString('You wave.');
    registry.broadcast('Bob waves.', { room: 'hall', except: bob });
    registry.broadcast('The clock strikes.', { room: 'hall' });
    cat?.sendPrompt('> ');
    await turnEnd();
    expect(players.map((p) => p.writes.length)).toEqual([2, 2, 2]);
    expect(players.map((p) => p.text())).toEqual([
      'You say hi.\r\nBob waves.\r\nThe clock strikes.\r\n',
      'Ann says hi.\r\nYou wave.\r\nThe clock strikes.\r\n',
      'Ann says hi.\r\nBob waves.\r\nThe clock strikes.\r\n> ',
    ]);
  });

  it('answers a lone reply when the read is done, and waits for the turn when others have output', async () => {
    const owner = recordingOwner();
    const [ann, bob] = [0, 1].map(() => {
      const out = recordingOutput();
      const medium = new TestMedium(out.output);
      const { connection, ctx } = testConnection({ medium, owner });
      connection.open();
      return { ...out, medium, ctx };
    });
    if (!ann || !bob) throw new Error('two players');
    owner.handle = (ctx, event, data) => {
      if (event !== 'on_data') return false;
      ctx.sendString(`You say: ${String(data)}`);
      if (data === 'shout') {
        owner.registry.broadcast('Someone shouts!', { except: ctx });
      }
      ctx.sendPrompt('> ');
      return true;
    };
    // Nothing else waits: Ann's answer leaves with the read, in one write.
    ann.medium.feed('hi\r\n');
    expect(ann.writes).toHaveLength(1);
    expect(ann.text()).toBe('You say: hi\r\n> ');
    await turnEnd();
    // A shout gives Bob output: Ann's answer joins the end of the turn,
    // and so does Bob's own answer to what he types in that turn.
    ann.medium.feed('shout\r\n');
    bob.medium.feed('yo\r\n');
    expect(ann.writes).toHaveLength(1);
    expect(bob.writes).toHaveLength(0);
    await turnEnd();
    expect(ann.writes).toHaveLength(2);
    expect(bob.writes).toHaveLength(1);
    expect(ann.text()).toBe('You say: hi\r\n> You say: shout\r\n> ');
    expect(bob.text()).toBe('Someone shouts!\r\nYou say: yo\r\n> ');
  });

  it('under MCCP2, reaches zlib and the medium as one compressed write per turn', async () => {
    const { connection, ctx, writes } = wired();
    compress(connection);
    ctx.sendString('one');
    ctx.sendString('two');
    ctx.sendString('three');
    // zlib works off the main thread: its output is piped to the medium.
    const compressed = once(connection.out, 'data');
    await turnEnd();
    await compressed;
    await turnEnd();
    expect(writes).toHaveLength(1);
    // Z_SYNC_FLUSH: the stream is flushed, not finished.
    const inflated = inflateSync(Buffer.concat(writes.flat()), {
      finishFlush: zlibConstants.Z_SYNC_FLUSH,
    });
    expect(inflated.toString()).toBe('one\r\ntwo\r\nthree\r\n');
  });
});
