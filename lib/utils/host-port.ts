const IPV4_MAPPED = '::ffff:';

/**
 * `host:port`, with an IPv6 host in brackets (`[::1]:4000`).
 *
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
