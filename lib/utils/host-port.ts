const IPV4_MAPPED = '::ffff:';

/**
 * A host and a port as one address, `host:port`, with an IPv6 address in
 * brackets so that its colons cannot be read as the port's (`[::1]:4000`,
 * as in a URL's authority, RFC 3986): for logs, messages and an HTTP `Host`.
 *
 * @param host A host name, an IPv4 address, or an IPv6 address (without
 *   brackets; a zone, `fe80::1%eth0`, is kept as it is).
 * @param port The port.
 * @returns `'203.0.113.9:4000'`, `'[2001:db8::1]:4000'`, `'localhost:4000'`.
 * @internal
 */
export function formatHostPort(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}

/**
 * An IPv4-mapped IPv6 address (`::ffff:203.0.113.9`) in its IPv4 form; any
 * other address as it is.
 *
 * @internal
 */
export function unmapIPv4(address: string): string {
  return address.startsWith(IPV4_MAPPED)
    ? address.slice(IPV4_MAPPED.length)
    : address;
}
