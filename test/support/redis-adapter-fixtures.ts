/**
 * Registries and contexts without a transport, for the adapter specs
 * (cluster-adapter, in-memory-adapter): contexts on unconnected sockets that
 * claim a remote address, and a host that records disconnects.
 */
import { Socket } from 'node:net';
import type { ConnectionHost } from '../../lib/connection/connection-context.js';
import { ConnectionContext, ConnectionRegistry } from '../../lib/index.js';

/** A host that records the disconnects its contexts ask for. */
export type RecordingHost = ConnectionHost & { disconnects: string[] };

/** A connection host for contexts made without a transport. */
export function recordingHost(
  registry = new ConnectionRegistry(),
): RecordingHost {
  const disconnects: string[] = [];
  return {
    disconnects,
    encoding: 'utf8',
    maxOutputBuffer: 1024,
    checkEveryWrite: true,
    registry,
    awaitDrain: () => undefined,
    firstInput: () => false,
    disconnect: (ctx, reason) => void disconnects.push(`${ctx.id}:${reason}`),
    receive: () => undefined,
    receiveLine: () => undefined,
    lineOverflow: () => undefined,
    overRate: () => undefined,
    ended: () => undefined,
    closed: () => undefined,
    failed: () => undefined,
  };
}

/** A context on an unconnected socket that claims a remote address. */
export function fakeContext(
  host: ConnectionHost,
  remote = '203.0.113.9',
  port = 5000,
): ConnectionContext {
  const socket = new Socket();
  Object.defineProperty(socket, 'remoteAddress', { value: remote });
  Object.defineProperty(socket, 'remotePort', { value: port });
  Object.defineProperty(socket, 'remoteFamily', {
    value: remote.includes(':') ? 'IPv6' : 'IPv4',
  });
  return new ConnectionContext(socket, host);
}
