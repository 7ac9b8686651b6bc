import { StringDecoder } from 'node:string_decoder';
import {
  TelnetSession,
  type TelnetSettings,
} from '../telnet/telnet-session.js';
import type { ConnectionCore } from './connection-core.js';
import { enqueue } from './event-queue.js';
import { readLines, receiveData, withinRate } from './inbound.js';
import { compress, sendLine, writeProtocol } from './outbox.js';

/**
 * Telnet mode: the medium's bytes go through the connection's telnet
 * session, whose clean data goes on to the framer (or to raw `on_data`);
 * its answers go out under the connection's output policy.
 *
 * @internal
 */
export function startTelnet(
  connection: ConnectionCore,
  settings: TelnetSettings,
): void {
  const line = connection.settings.framing === 'line';
  const text = connection.settings.encoding !== undefined;
  let decoder: StringDecoder | undefined;
  let decoderEncoding: BufferEncoding | undefined;
  // No compression under encryption (MCCP2 over TLS invites CRIME-style
  // attacks, and TLS links are rarely the slow ones).
  if (settings.mccp2 && connection.listener.isTls) {
    settings = { ...settings, mccp2: false };
  }
  const session = new TelnetSession(settings, {
    data: (chunk, start, end) => {
      const bytes =
        start === 0 && end === chunk.length
          ? chunk
          : chunk.subarray(start, end);
      if (line) {
        readLines(connection, bytes);
      } else if (text) {
        // The client may agree to another charset mid-stream.
        const encoding = connection.encoding;
        if (decoder === undefined || decoderEncoding !== encoding) {
          decoder = new StringDecoder(encoding);
          decoderEncoding = encoding;
        }
        const decoded = decoder.write(bytes);
        if (decoded.length > 0) receiveData(connection, decoded);
      } else {
        receiveData(connection, bytes);
      }
    },
    // Every command, negotiation and subnegotiation takes an event from the
    // input rate, as a line does: a negotiation flood is dropped, then
    // disconnected, like a line flood, and a dropped one is not answered.
    allow: () => connection.state === 'open' && withinRate(connection),
    overBudget: () => {
      if (connection.state !== 'open') return;
      connection.logger.warn(
        'Telnet answers would pass twice the input: disconnecting (flood).',
      );
      const message = connection.settings.messages.flood;
      if (message !== false) sendLine(connection, message);
      connection.disconnect('flood');
    },
    emit: (event, payload) => {
      if (connection.state !== 'open') return;
      connection.inputSeen = true;
      // The subnegotiation it comes from took its event (allow()).
      enqueue(connection, event, payload);
    },
    msspStatus: () => connection.owner.msspStatus(connection),
    get logger() {
      return connection.logger;
    },
    write: (bytes) => writeProtocol(connection, bytes),
    startCompression: () => compress(connection),
  });
  connection.telnet = session;
  session.start();
}
