/**
 * Registries and contexts without a transport, for the adapter specs
 * (cluster-adapter, in-memory-adapter): contexts on unconnected sockets that
 * claim a remote address, and a host that records disconnects.
 */
import { Writable } from 'node:stream';
import type { ConnectionContext } from '../../lib/index.js';
import { ConnectionRegistry } from '../../lib/index.js';
import {
  recordingOwner,
  testConnection,
  TestMedium,
  type RecordingOwner,
} from './test-connection.js';

/** An owner that records the disconnects its contexts ask for. */
export type RecordingHost = RecordingOwner;

/** A connection owner for contexts made without a transport. */
export function recordingHost(
  registry = new ConnectionRegistry(),
): RecordingHost {
  return recordingOwner(registry);
}

/** An output that is already closed, as an unconnected socket's. */
export function closedOutput(): Writable {
  const output = new Writable({ write: (_chunk, _encoding, done) => done() });
  output.destroy();
  return output;
}

/** A context on a closed test medium that claims a remote address. */
export function fakeContext(
  host: RecordingHost,
  remote = '203.0.113.9',
  port = 5000,
): ConnectionContext {
  return testConnection({
    owner: host,
    medium: new TestMedium(closedOutput(), remote, port),
  }).ctx;
}
