/**
 * The baseline: what a competent hand-written `node:net` server does, with
 * no framework. Every figure of the benchmark is also given as a ratio to
 * this one, measured in the same run.
 *
 * Modes (`--mode`):
 * - `echo`: split input on `\n`, strip `\r`, write the line back + `\r\n`.
 * - `broadcast`: a line from any connection is written, as one shared
 *   Buffer, to every other connection.
 * - `churn`: check the peer against a ban list, greet it; nothing else.
 * - `flood`: a connection that sends `flood` gets lines written to it for
 *   `--flood-ms`, naively (no backpressure, no output cap), as most
 *   hand-written servers do.
 */
import { createServer, type Socket } from 'node:net';
import {
  BANNED_HOSTS,
  FLOOD_TEXT,
  FLOOD_TICK_MS,
  GREETING,
  serve,
  serverArgs,
} from './control.js';

const LF = 0x0a;
const CR = 0x0d;

const args = serverArgs();
const sockets = new Set<Socket>();
const extras = { floods: 0, floodMaxBuffered: 0 };

/**
 * A hand-written line splitter: split on `\n` (a byte that never occurs
 * inside a multi-byte UTF-8 character, so splitting bytes is safe), strip a
 * trailing `\r`, decode each line. It holds nothing per connection but this
 * closure and, between reads, the unterminated rest, so the idle-memory
 * baseline is as lean as a hand-written server gets (`setEncoding()` would
 * add a StringDecoder and its buffer to every socket).
 */
function onLines(socket: Socket, onLine: (line: string) => void): void {
  let pending: Buffer | null = null;
  socket.on('data', (chunk: Buffer) => {
    const data: Buffer = pending ? Buffer.concat([pending, chunk]) : chunk;
    let start = 0;
    let nl: number;
    while ((nl = data.indexOf(LF, start)) !== -1) {
      const end = nl > start && data[nl - 1] === CR ? nl - 1 : nl;
      onLine(data.toString('utf8', start, end));
      start = nl + 1;
    }
    pending = start < data.length ? data.subarray(start) : null;
  });
}

function echo(socket: Socket): void {
  onLines(socket, (line) => socket.write(line + '\r\n'));
}

function broadcast(socket: Socket): void {
  onLines(socket, (line) => {
    // Encoded once, written to everyone: the cheapest possible fan-out.
    const buffer = Buffer.from(line + '\r\n');
    for (const other of sockets) {
      if (other !== socket) other.write(buffer);
    }
  });
}

function churn(socket: Socket): void {
  if (BANNED_HOSTS.has(socket.remoteAddress ?? '')) {
    socket.destroy();
    return;
  }
  socket.write(GREETING + '\r\n');
}

function flood(socket: Socket): void {
  onLines(socket, (line) => {
    if (line !== 'flood') return;
    extras.floods++;
    const text = FLOOD_TEXT + '\r\n';
    const until = Date.now() + args.floodMs;
    const timer = setInterval(() => {
      if (socket.destroyed || Date.now() >= until) {
        clearInterval(timer);
        return;
      }
      for (let i = 0; i < args.floodLines; i++) socket.write(text);
      extras.floodMaxBuffered = Math.max(
        extras.floodMaxBuffered,
        socket.writableLength,
      );
    }, FLOOD_TICK_MS);
  });
}

const modes: Record<string, (socket: Socket) => void> = {
  echo,
  broadcast,
  churn,
  flood,
};
const handle = modes[args.mode];
if (!handle) throw new Error(`plain server: unknown mode ${args.mode}`);

// No Nagle delay, as the earwax transport (noDelay defaults to true).
const server = createServer({ noDelay: true }, (socket) => {
  sockets.add(socket);
  socket.on('close', () => sockets.delete(socket));
  // A reset peer must not crash the server.
  socket.on('error', () => {});
  handle(socket);
});

await serve(
  {
    listen: (port) =>
      new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen({ host: '127.0.0.1', port, backlog: 511 }, resolve);
      }),
    connections: () => sockets.size,
    extras: () => ({ ...extras }),
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  },
  args.port,
);
