import type { GmcpMessage } from '../interfaces/telnet.interface.js';

/**
 * Reads a GMCP message from a WebSocket text frame (`Package.Name json`),
 * as a telnet GMCP subnegotiation is read.
 *
 * @returns The message, or why it is not one.
 * @internal
 */
export function parseGmcpText(text: string): GmcpMessage | Error {
  const space = text.indexOf(' ');
  const pkg = space === -1 ? text : text.slice(0, space);
  if (pkg.length === 0) return new Error('GMCP message without a package name');
  const rest = space === -1 ? '' : text.slice(space + 1);
  if (rest.trim() === '') return { package: pkg, data: undefined };
  try {
    return { package: pkg, data: JSON.parse(rest) as unknown };
  } catch (err) {
    return new Error(
      `GMCP ${pkg} with invalid JSON: ${(err as Error).message}`,
    );
  }
}
