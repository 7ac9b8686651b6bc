import type { Attributes } from '@opentelemetry/api';
import type { AnyConnectionContext } from '../connection/connection-context.js';

/**
 * The attributes of an event's span: OpenTelemetry's messaging and network
 * semantic conventions where they fit (an event is a message the
 * transport processes; the event type is the operation, the listener the
 * destination), and `earwax.*` for the same facts under names of ours.
 *
 * @internal
 */
export function eventAttributes(
  ctx: AnyConnectionContext,
  event: string,
): Attributes {
  const client = ctx.address;
  // Behind a PROXY-protocol proxy, the socket's peer is the proxy.
  const peer = ctx.proxy ?? client;
  const listener = ctx.listener;
  return {
    'messaging.system': 'earwax',
    'messaging.operation.type': 'process',
    'messaging.operation.name': event,
    'messaging.destination.name': listener,
    'network.transport': 'tcp',
    'network.peer.address': peer.address,
    'network.peer.port': peer.port,
    'client.address': ctx.hostname,
    'client.port': ctx.port,
    'earwax.event': event,
    'earwax.connection.id': ctx.id,
    'earwax.listener': listener,
  };
}

/**
 * The `error.type` of a handler's failure: the error's class name, or
 * `_OTHER` for a thrown value that is not an `Error`.
 *
 * @internal
 */
export function errorType(err: unknown): string {
  return err instanceof Error ? err.constructor.name || err.name : '_OTHER';
}
