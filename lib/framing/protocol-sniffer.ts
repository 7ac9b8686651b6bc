/**
 * Recognises a connection's first bytes as another protocol than a game
 * client's: a browser pointed at the game port, or a TLS client at a plain
 * one. Only the first chunk is looked at, once, so the hot path pays
 * nothing.
 */

const HTTP_METHODS = new Set([
  'GET',
  'HEAD',
  'POST',
  'PUT',
  'DELETE',
  'OPTIONS',
  'PATCH',
  'CONNECT',
  'TRACE',
]);
const HTTP_VERSION = Buffer.from(' HTTP/1.');

/**
 * Which other protocol a connection's first chunk speaks, if any: an HTTP
 * request line (`GET /path HTTP/1.1`: method, target and version, so a
 * player's `get sword` is not one), or a TLS handshake record.
 *
 * @internal
 */
export function foreignProtocol(chunk: Buffer): 'http' | 'tls' | undefined {
  // A TLS record: handshake (22), version 3.x.
  if (chunk.length >= 3 && chunk[0] === 0x16 && chunk[1] === 0x03) {
    return 'tls';
  }
  const space = chunk.indexOf(0x20);
  if (space < 3 || space > 7) return undefined;
  if (!HTTP_METHODS.has(chunk.toString('latin1', 0, space))) return undefined;
  let lineEnd = chunk.indexOf(0x0a);
  if (lineEnd === -1) lineEnd = chunk.length;
  const version = chunk.indexOf(HTTP_VERSION, space);
  return version !== -1 && version < lineEnd ? 'http' : undefined;
}
