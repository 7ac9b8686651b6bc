import type { Socket } from 'node:net';
import type { Connection } from '../connection/connection.js';
import {
  ProxyHeaderParser,
  type ProxyParseResult,
} from '../proxy/proxy-protocol.js';
import { describeError } from '../utils/describe-error.js';
import type { ResolvedProxyProtocol } from './transport-settings.js';

/**
 * A listener behind a proxy: the connection must come from a trusted proxy
 * and start with a PROXY header, which names the real client before any
 * admission check runs. Calls `next` once the header is read; closes the
 * socket otherwise.
 *
 * @internal
 */
export function readProxyHeader(
  connection: Connection,
  socket: Socket,
  settings: ResolvedProxyProtocol,
  next: () => void,
): void {
  const from = connection.address;
  const family = from.family === 'IPv6' ? 'ipv6' : 'ipv4';
  const logger = connection.logger;
  if (!settings.trusted.check(from.address, family)) {
    logger.warn(
      'Connection from an address that is not a trusted proxy, on a PROXY-protocol listener: closed.',
    );
    socket.destroy();
    return;
  }
  const parser = new ProxyHeaderParser({ versions: settings.versions });
  const timer = setTimeout(() => {
    socket.off('data', onData);
    logger.warn(
      `No complete PROXY header within ${settings.headerTimeout} ms: closed.`,
    );
    socket.destroy();
  }, settings.headerTimeout);
  // A proxy's health check connects and closes without a header: no
  // warning for it, and no timer left behind.
  const onEarlyClose = () => {
    clearTimeout(timer);
    logger.debug('Closed before a complete PROXY header.');
  };
  socket.once('close', onEarlyClose);
  const onData = (chunk: Buffer) => {
    let result: ProxyParseResult;
    try {
      result = parser.push(chunk);
    } catch (err) {
      clearTimeout(timer);
      socket.off('close', onEarlyClose);
      socket.off('data', onData);
      logger.warn(`${describeError(err)}: closed.`);
      socket.destroy();
      return;
    }
    if (result.state === 'incomplete') return;
    clearTimeout(timer);
    socket.off('close', onEarlyClose);
    socket.off('data', onData);
    socket.pause();
    // Whatever followed the header in its packet is the client's.
    if (result.rest.length > 0) socket.unshift(result.rest);
    const { header } = result;
    if (
      header.command === 'PROXY' &&
      header.source !== undefined &&
      (header.family === 'IPv4' || header.family === 'IPv6')
    ) {
      connection.setProxiedRemote(
        header.source.address,
        header.source.port,
        header.family,
      );
    }
    next();
  };
  socket.on('data', onData);
  socket.resume();
}
