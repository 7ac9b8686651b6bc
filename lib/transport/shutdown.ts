import { sendLine } from '../connection/outbox.js';
import type { ConnectionHub } from './connection-hub.js';
import type { TransportSettings } from './transport-settings.js';

/**
 * Ends every connection of a transport that stopped accepting: a connection
 * still being admitted is closed; an open one gets the goodbye and is
 * disconnected with `server_shutdown` (so `on_disconnect` runs for each).
 * Resolves once every one is gone, or at `closeTimeout`, when whatever is
 * left is destroyed.
 *
 * @internal
 */
export async function shutDown(
  hub: ConnectionHub,
  settings: TransportSettings,
): Promise<void> {
  const goodbye = settings.messages.shutdown;
  for (const connection of [...hub.live]) {
    if (connection.state === 'pending') {
      connection.medium.destroy();
      continue;
    }
    if (goodbye !== false && connection.state === 'open') {
      sendLine(connection, goodbye);
    }
    connection.disconnect('server_shutdown');
  }
  await hub.whenIdle(settings.closeTimeout);
  hub.watch.stop();
}
