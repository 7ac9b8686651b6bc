import type { TerminalCapabilities, TerminalInfo } from '../../../lib/index.js';
import type { Player } from './mud-session.js';

/**
 * What `stats` shows: what the client told the server, and how it is
 * connected.
 */
export function clientReport(player: Player): string[] {
  const { client, terminal, window } = player.data;
  return [
    `Client (GMCP Core.Hello): ${client ?? 'not told'}`,
    `Terminal (TTYPE): ${describeTerminal(terminal)}`,
    `Capabilities (MTTS): ${describeCapabilities(terminal)}`,
    `Window (NAWS): ${window === undefined ? 'not told' : `${window.width}x${window.height}`}`,
    `Encoding: ${player.encoding}`,
    `Connection: ${describeConnection(player)}`,
  ];
}

/** Whether the player's connection is encrypted, and how. */
function describeConnection(player: Player): string {
  const tls = player.tls;
  if (tls === undefined) return 'plain telnet (not encrypted)';
  // Both are known once the handshake is done, which admission waits for.
  const how = [tls.protocol, tls.cipher].filter((part) => part !== undefined);
  return `secure (${how.join(', ')})`;
}

function describeTerminal(terminal: TerminalInfo | undefined): string {
  const names = [terminal?.client, terminal?.terminal].filter(
    (name) => name !== undefined,
  );
  if (terminal?.mtts !== undefined) names.push(`MTTS ${terminal.mtts}`);
  return names.length === 0 ? 'not told' : names.join(', ');
}

function describeCapabilities(terminal: TerminalInfo | undefined): string {
  if (terminal === undefined) return 'not told';
  const capabilities = terminal.capabilities;
  const names = (
    Object.keys(capabilities) as Array<keyof TerminalCapabilities>
  ).filter((key) => capabilities[key]);
  return names.length === 0 ? 'none' : names.join(', ');
}
