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
import { createServer as createHttpServer } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { ListenerInfo } from '../connection/connection-settings.js';
import type { WebSocketSubprotocol } from '../interfaces/websocket.interface.js';
import type { TelnetSettings } from '../telnet/telnet-session.js';
import { WebSocketGate } from '../websocket/websocket-gate.js';
import { resolveWebSocket } from '../websocket/websocket-settings.js';
import type { WebSocketMedium } from '../websocket/websocket.medium.js';
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
  /**
   * A WebSocket upgrade request passed the listener's own checks (path,
   * origin, subprotocol); it is answered once admission decides.
   */
  arrived(medium: WebSocketMedium, listener: ListenerInfo): void;
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
  /** A WebSocket listener's upgrade handling; `undefined` for TCP. */
  readonly gate: WebSocketGate | undefined;

  constructor(
    public settings: ResolvedListener,
    sink: ListenerSink,
  ) {
    if (settings.websocket !== null) {
      // HTTP(S) accepts and, for wss, runs the TLS handshake; admission
      // runs on the upgrade request, before the HTTP 101 answer.
      // An upgrade request has no body: its headers get the TLS
      // handshake's deadline, not Node's minute (a slowloris on the
      // request holds a socket, not a connection's place).
      const http = {
        headersTimeout: HANDSHAKE_TIMEOUT,
        requestTimeout: HANDSHAKE_TIMEOUT,
      };
      const server =
        settings.tls === null
          ? createHttpServer(http)
          : createHttpsServer({
              handshakeTimeout: HANDSHAKE_TIMEOUT,
              ...settings.tls,
              ...http,
            });
      this.server = server;
      this.gate = new WebSocketGate(
        () => this.settings.websocket ?? NO_WEBSOCKET,
        server,
        (medium) => sink.arrived(medium, this.viewFor(medium.subprotocol)),
      );
      return;
    }
    this.gate = undefined;
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
    return this.tlsEngine !== undefined || this.settings.tls !== null;
  }

  /** Whether this is a WebSocket listener. */
  get isWebSocket(): boolean {
    return this.gate !== undefined;
  }

  /**
   * What a WebSocket connection knows of this listener: its name, no TLS
   * handshake of its own (HTTPS ran it), and telnet only for the telnet
   * subprotocol, without MCCP2 (a WebSocket compresses with
   * permessage-deflate, if at all).
   */
  private viewFor(subprotocol: WebSocketSubprotocol): ListenerInfo {
    const telnet = this.settings.telnet;
    return {
      name: this.settings.name,
      isTls: false,
      telnet:
        subprotocol !== 'telnet.mudstandards.org' || telnet === null
          ? null
          : { ...telnet, mccp2: false },
    };
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
    if (this.gate !== undefined) {
      // Close frames from now on say 1001 (going away).
      this.gate.goingAway = true;
      this.gate.stop();
    }
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
    if (this.tlsEngine !== undefined) {
      this.tlsEngine.setSecureContext(options);
    } else if (this.gate !== undefined && this.settings.tls !== null) {
      (this.server as TlsServer).setSecureContext(options);
    }
  }
}

const NO_WEBSOCKET = resolveWebSocket({}, 'websocket');

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
