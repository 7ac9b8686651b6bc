import 'reflect-metadata';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { bootEarwax, type Booted } from '../../../test/support/boot.js';
import { LineClient } from '../../../test/support/line-client.js';
import { AppModule } from '../src/app.module.js';

describe('sample 01-echo', () => {
  let booted: Booted;
  beforeAll(async () => {
    booted = await bootEarwax({ imports: [AppModule] });
  });
  afterAll(() => booted.app.close());

  it('sends every line back, bytes intact', async () => {
    const client = await LineClient.connect(booted.port);
    expect(await client.line(0)).toMatch(/^Echo server/);
    client.write(Buffer.from('Hello world.\r\nna\xefve\n', 'latin1'));
    await client.waitForLines(3);
    expect(
      client.received.subarray(client.received.indexOf('\r\n') + 2),
    ).toEqual(Buffer.from('Hello world.\r\nna\xefve\r\n', 'latin1'));
    await client.end();
  });
});
