import 'reflect-metadata';
import { afterEach, describe, expect, it } from '@jest/globals';
import {
  EarwaxTesting,
  type EarwaxTestServer,
} from '../../../lib/testing/index.js';
import { AppModule } from '../src/app.module.js';

describe('sample 01-echo', () => {
  let server: EarwaxTestServer | undefined;
  afterEach(async () => {
    await server?.close();
    server = undefined;
  });

  it('sends every line back, bytes intact', async () => {
    server = await EarwaxTesting.createServer(AppModule);
    // Latin-1 text: "naïve" is not valid UTF-8, and must come back as sent.
    const client = await server.connect({ encoding: 'latin1' });
    expect(await client.readLine()).toMatch(/^Echo server/);
    client.sendRaw(Buffer.from('Hello world.\r\nna\xefve\n', 'latin1'));
    expect(await client.readLines(2)).toEqual(['Hello world.', 'na\xefve']);
    const received = client.received;
    expect(received.subarray(received.indexOf('\r\n') + 2)).toEqual(
      Buffer.from('Hello world.\r\nna\xefve\r\n', 'latin1'),
    );
  });
});
