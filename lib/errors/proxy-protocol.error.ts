/**
 * A connection's first bytes are not a valid PROXY protocol header: not one
 * at all, malformed, over-long, or of a version the parser does not accept.
 * Also thrown by a push after the parser has finished. The message says what
 * was wrong, e.g. `PROXY v1: bad source port "99999"`.
 *
 * @publicApi
 */
export class ProxyProtocolError extends Error {
  override readonly name = 'ProxyProtocolError';
}
