import {
  STATUS_CODES,
  type IncomingMessage,
  type Server as HttpServer,
  type ServerResponse,
} from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type WebSocket } from 'ws';
import type { WebSocketSubprotocol } from '../interfaces/websocket.interface.js';
import {
  chooseSubprotocol,
  originAllowed,
  type WebSocketSettings,
} from './websocket-settings.js';
import { WebSocketMedium, type WebSocketHost } from './websocket.medium.js';

/**
 * The WebSocket side of a listener: checks each HTTP upgrade request (path,
 * handshake headers, `Origin`, subprotocol) and hands the ones that pass to
 * admission as a {@link WebSocketMedium}, still HTTP; admission completes
 * the handshake through {@link WebSocketGate.upgrade} only for the
 * connections it admits. Pings every open one at `pingInterval`.
 *
 * @internal
 */
export class WebSocketGate implements WebSocketHost {
  goingAway = false;
  private readonly wss: WebSocketServer;
  private readonly open = new Set<WebSocketMedium>();
  private pinger: NodeJS.Timeout | undefined = undefined;

  constructor(
    private readonly settings: () => WebSocketSettings,
    server: HttpServer,
    private readonly arrived: (medium: WebSocketMedium) => void,
  ) {
    const { maxPayload, perMessageDeflate } = settings();
    this.wss = new WebSocketServer({
      noServer: true,
      clientTracking: false,
      maxPayload,
      // The inflated size is bounded by maxPayload too (ws checks it while
      // inflating), so a compression bomb is closed with 1009.
      perMessageDeflate,
      // Chosen before admission; ws only writes it into the 101 answer.
      handleProtocols: (_offered, request) =>
        (request as ChosenRequest)[kChosen] ?? false,
    });
    server.on('upgrade', (request: IncomingMessage, socket: Duplex, head) =>
      this.request(request, socket as Socket, head as Buffer),
    );
    server.on('request', answerPlainRequest);
  }

  upgrade(medium: WebSocketMedium, done: (ws: WebSocket) => void): void {
    (medium.request as ChosenRequest)[kChosen] = medium.subprotocol;
    this.wss.handleUpgrade(medium.request, medium.raw, medium.head, done);
  }

  opened(medium: WebSocketMedium): void {
    this.open.add(medium);
    const interval = this.settings().pingInterval;
    if (this.pinger === undefined && interval > 0) {
      this.pinger = setInterval(() => this.ping(), interval);
      this.pinger.unref();
    }
  }

  closed(medium: WebSocketMedium): void {
    this.open.delete(medium);
    if (this.open.size === 0 && this.pinger !== undefined) {
      clearInterval(this.pinger);
      this.pinger = undefined;
    }
  }

  /** Stops the pings (the listener is closing). */
  stop(): void {
    clearInterval(this.pinger);
    this.pinger = undefined;
  }

  /** A peer that did not answer the last ping is dropped; others pinged. */
  private ping(): void {
    for (const medium of this.open) {
      if (!medium.alive) {
        medium.abort();
        continue;
      }
      medium.alive = false;
      medium.ws?.ping();
    }
  }

  private request(request: IncomingMessage, socket: Socket, head: Buffer) {
    const settings = this.settings();
    const headers = request.headers;
    const path = settings.path;
    if (path !== null && pathOf(request.url) !== path) {
      answer(socket, 404, `No WebSocket at ${pathOf(request.url)}.`);
      return;
    }
    if (
      request.method !== 'GET' ||
      headers.upgrade?.toLowerCase() !== 'websocket' ||
      headers['sec-websocket-key'] === undefined ||
      headers['sec-websocket-version'] !== '13'
    ) {
      answer(socket, 400, 'Not a WebSocket handshake (RFC 6455, version 13).');
      return;
    }
    if (!originAllowed(settings, headers.origin)) {
      answer(socket, 403, `Origin ${String(headers.origin)} is not allowed.`);
      return;
    }
    const subprotocol: WebSocketSubprotocol | null = chooseSubprotocol(
      settings,
      headers['sec-websocket-protocol'],
    );
    if (subprotocol === null) {
      answer(
        socket,
        400,
        `No supported subprotocol offered; this server speaks ${settings.subprotocols.join(', ')}.`,
      );
      return;
    }
    this.arrived(new WebSocketMedium(socket, request, head, subprotocol, this));
  }
}

const kChosen = Symbol('earwax:subprotocol');
type ChosenRequest = IncomingMessage & { [kChosen]?: WebSocketSubprotocol };

function pathOf(url: string | undefined): string {
  const query = url?.indexOf('?') ?? -1;
  return url === undefined ? '/' : query === -1 ? url : url.slice(0, query);
}

/** An HTTP error for a request that never becomes a connection. */
function answer(socket: Socket, status: number, reason: string): void {
  socket.on('error', ignore);
  const body = Buffer.from(`${reason}\r\n`);
  socket.end(
    `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ''}\r\n` +
      'Connection: close\r\n' +
      'Content-Type: text/plain; charset=utf-8\r\n' +
      `Content-Length: ${body.length}\r\n\r\n` +
      body.toString(),
  );
  // Closed whatever the client does (a client that never reads).
  socket.destroySoon();
}

/** A request that is not an upgrade: this port serves WebSocket only. */
function answerPlainRequest(
  _request: IncomingMessage,
  response: ServerResponse,
): void {
  response.writeHead(426, {
    'Content-Type': 'text/plain; charset=utf-8',
    Upgrade: 'websocket',
    Connection: 'Upgrade',
  });
  response.end('This port serves WebSocket connections only.\r\n');
}

function ignore(): void {
  // A client gone before its refusal was read.
}
