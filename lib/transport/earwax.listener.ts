import {
  createServer,
  type AddressInfo,
  type Server as NetServer,
  type Socket,
} from 'node:net';
import {
  createServer as createTlsServer,
  type SecureContextOptions,
  type Server as TlsServer,
  type TLSSocket,
} from 'node:tls';
import type { ListenerInfo } from '../connection/connection-settings.js';
import type { TelnetSettings } from '../telnet/telnet-session.js';
import type { ResolvedListener } from './transport-settings.js';

/** A TLS handshake's deadline unless the `tls` options set one. */
const HANDSHAKE_TIMEOUT = 10_000;

/**
 * Where a listener hands what it accepts (the transport's admission).
 *
 * @internal
 */
export interface ListenerSink {
  /** A TCP connection was accepted (paused; nothing read from it yet). */
  accepted(socket: Socket, listener: EarwaxListener): void;
  /** A TLS handshake finished on a socket handed to `handshake()`. */
  secured(tls: TLSSocket, raw: Socket | undefined): void;
  /** A TLS handshake failed or timed out. */
  handshakeFailed(err: Error, tls: TLSSocket, raw: Socket | undefined): void;
}

/**
 * One listening socket of an `EarwaxTransport`: a `net.Server`, and for a
 * TLS listener a `tls.Server` that never listens but runs handshakes on
 * sockets the transport hands it once they are admitted. Accepting plain
 * TCP first is what lets the cheap admission checks (block list, limits)
 * and a cleartext PROXY header come before any handshake work.
 *
 * @internal
 */
export class EarwaxListener implements ListenerInfo {
  readonly server: NetServer;
  private readonly tlsEngine: TlsServer | undefined;

  constructor(
    public settings: ResolvedListener,
    sink: ListenerSink,
  ) {
    this.server = createServer(
      { allowHalfOpen: true, pauseOnConnect: true },
      (socket) => sink.accepted(socket, this),
    );
    if (settings.tls !== null) {
      const engine = createTlsServer({
        handshakeTimeout: HANDSHAKE_TIMEOUT,
        ...settings.tls,
        allowHalfOpen: true,
      });
      engine.on('secureConnection', (tls: TLSSocket) =>
        sink.secured(tls, rawSocketOf(tls)),
      );
      engine.on('tlsClientError', (err: Error, tls: TLSSocket) =>
        sink.handshakeFailed(err, tls, rawSocketOf(tls)),
      );
      this.tlsEngine = engine;
    }
  }

  get name(): string {
    return this.settings.name;
  }

  get telnet(): TelnetSettings | null {
    return this.settings.telnet;
  }

  get isTls(): boolean {
    return this.tlsEngine !== undefined;
  }

  get listening(): boolean {
    return this.server.listening;
  }

  address(): AddressInfo | null {
    const address = this.server.address();
    return typeof address === 'object' ? address : null;
  }

  /** Binds; rejects with the bind error (`EADDRINUSE`, a bad port, ...). */
  listen(): Promise<AddressInfo | null> {
    const { host, port, backlog, ipv6Only, reusePort } = this.settings;
    const server = this.server;
    return new Promise((resolve, reject) => {
      const onError = (err: Error) => {
        server.off('listening', onListening);
        reject(err);
      };
      const onListening = () => {
        server.off('error', onError);
        resolve(this.address());
      };
      server.once('error', onError);
      server.once('listening', onListening);
      try {
        server.listen({ host, port, backlog, ipv6Only, reusePort });
      } catch (err) {
        // A bad port is thrown, not emitted.
        server.off('error', onError);
        server.off('listening', onListening);
        reject(err as Error);
      }
    });
  }

  /** Stops accepting; resolves once the server is closed. */
  close(): Promise<void> {
    return new Promise((resolve) => {
      if (!this.server.listening) return resolve();
      this.server.close(() => resolve());
    });
  }

  /** Starts the TLS handshake on an admitted socket. */
  handshake(socket: Socket): void {
    // The tls.Server's own connection handler wraps the socket with the
    // server's options (SNI, client certificates, session tickets, the
    // handshake timeout), exactly as for a socket it accepted itself; bytes
    // already read and unshifted (after a PROXY header) are fed to it first.
    this.tlsEngine?.emit('connection', socket);
  }

  setSecureContext(options: SecureContextOptions): void {
    this.tlsEngine?.setSecureContext(options);
  }
}

/**
 * The TCP socket a server-side TLS socket wraps. Node keeps it as
 * `_parent` (undocumented, and there since TLSSocket could wrap a socket);
 * the tests of TLS listeners fail loudly if that ever changes.
 */
function rawSocketOf(tls: TLSSocket): Socket | undefined {
  const parent = (tls as { _parent?: unknown })._parent;
  return typeof parent === 'object' && parent !== null
    ? (parent as Socket)
    : undefined;
}
