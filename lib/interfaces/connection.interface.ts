import type { PeerCertificate } from 'node:tls';

/**
 * Why a connection ended; passed to `on_disconnect` as its payload and kept
 * on `ConnectionContext.disconnectReason`.
 *
 * - `client_closed`: the client closed its side cleanly.
 * - `reset`: the connection broke (reset, timeout, network error).
 * - `quit`: the player asked to leave: `ctx.disconnect('quit')` from a quit
 *   command.
 * - `kicked`: `ctx.disconnect()` was called, by the connection's own handler or
 *   by anyone else, or a new ban matched the connection.
 * - `idle`: no input for `idleTimeout`, or nothing at all within
 *   `firstInputTimeout` of connecting.
 * - `flood`: the client kept sending past its `inputRate`.
 * - `protocol`: the client spoke another protocol: an HTTP request (a
 *   browser pointed at the game port) or a TLS handshake on a plain port.
 * - `line_too_long`: a line passed `maxLineLength` under the `'disconnect'`
 *   policy.
 * - `slow_consumer`: the client stopped reading: its output passed
 *   `maxOutputBuffer`, or did not drain within `writeTimeout`.
 * - `server_shutdown`: the transport is closing.
 * - `error`: a handler threw under the `'disconnect'` handler-error policy.
 *
 * @publicApi
 */
export type DisconnectReason = (typeof DISCONNECT_REASONS)[number];

/**
 * Every {@link DisconnectReason}, in the order the metrics list them. What
 * comes from outside the process (a message of another process of the
 * cluster) is checked against this list before it is used.
 *
 * @publicApi
 */
export const DISCONNECT_REASONS = [
  'client_closed',
  'reset',
  'quit',
  'kicked',
  'idle',
  'flood',
  'protocol',
  'line_too_long',
  'slow_consumer',
  'server_shutdown',
  'error',
] as const;

/**
 * Why a connection was refused; passed to `on_block` as its payload. The
 * checks run in this order, and the first that fails gives the reason.
 *
 * - `server_full`: `maxConnections` connections are already held.
 * - `blocked`: the address is on the block list (`BlockListService`).
 * - `too_many_connections`: the address already holds
 *   `maxConnectionsPerIp` connections.
 * - `rate_limited`: the address opened more than `connectionRate` allows.
 * - `refused`: the `ConnectionGuard` returned (or resolved) `false`.
 * - `guard_error`: the guard threw or rejected; the connection is refused
 *   (fail closed) and the error logged.
 *
 * @publicApi
 */
export type BlockReason = (typeof BLOCK_REASONS)[number];

/**
 * Every {@link BlockReason}, in the order the checks run.
 *
 * @publicApi
 */
export const BLOCK_REASONS = [
  'server_full',
  'blocked',
  'too_many_connections',
  'rate_limited',
  'refused',
  'guard_error',
] as const;

/**
 * Where a connection is in its life.
 *
 * - `pending`: accepted by the kernel, waiting for the `ConnectionGuard` (or
 *   refused and being closed after `on_block`).
 * - `open`: admitted; in the registry; events flow.
 * - `closing`: out of the registry; `on_disconnect` is queued or running.
 * - `closed`: `on_disconnect` has run; nothing more happens.
 *
 * @publicApi
 */
export type ConnectionState = 'pending' | 'open' | 'closing' | 'closed';

/**
 * The remote end of a connection.
 *
 * @publicApi
 */
export interface ConnectionAddress {
  /** The address as the socket reports it (`::ffff:127.0.0.1` stays as is). */
  readonly address: string;
  /** The remote port. */
  readonly port: number;
  /** The socket's address family. */
  readonly family: 'IPv4' | 'IPv6';
}

/**
 * The TLS side of a connection on a TLS listener (`ctx.tls`).
 *
 * @publicApi
 */
export interface TlsDetails {
  /** The negotiated protocol version (`TLSv1.3`). */
  readonly protocol?: string;
  /** The cipher suite's name. */
  readonly cipher?: string;
  /** The server name the client asked for (SNI), if any. */
  readonly servername?: string;
  /** Whether the client's certificate was verified (with `requestCert`). */
  readonly authorized: boolean;
  /** Why it was not, if the client sent one. */
  readonly authorizationError?: string;
  /** The client's certificate, when `requestCert` asked for one and it sent it. */
  readonly peerCertificate?: PeerCertificate;
}
