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
 * - `turn-one`: each line is answered with five (a game's turn: the
 *   `TURN_LINES` and a prompt), joined into one string and written with one
 *   `socket.write`: the least a server can do per turn.
 * - `turn-lines`: the same five lines, each with its own `socket.write`.
 * - `room`: `join <room>`, then each `say <text>` is answered with three
 *   lines to the sender and one to each other member of the room. Output is
 *   coalesced by hand, as a server tuned for it would: every connection has
 *   an array of chunks, flushed by one `setImmediate` for the whole server
 *   per event-loop turn, with one `socket.write` per connection that has
 *   output; the line said to the room is encoded once and shared.
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
  ROOM_BROADCAST_PREFIX,
  ROOM_HEARD,
  TURN_LINES,
  serve,
  serverArgs,
  turnPrompt,
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

/** One turn as one string: the five lines, each with its `\r\n`. */
const TURN_HEAD = TURN_LINES.map((line) => line + '\r\n').join('');

function turnOne(socket: Socket): void {
  let turn = 0;
  onLines(socket, () => {
    socket.write(TURN_HEAD + turnPrompt(++turn) + '\r\n');
  });
}

function turnLines(socket: Socket): void {
  let turn = 0;
  onLines(socket, () => {
    for (const line of TURN_LINES) socket.write(line + '\r\n');
    socket.write(turnPrompt(++turn) + '\r\n');
  });
}

/** A connection of the `room` mode. */
interface Player {
  socket: Socket;
  name: string;
  /** The members of its room (itself included), once it has joined. */
  room: Set<Player> | null;
  turn: number;
  /** Output not yet written: flushed once per event-loop turn. */
  out: Buffer[];
}

const rooms = new Map<string, Set<Player>>();
let players = 0;
/** Players with output, in the order they got it; one flush for all. */
let dirty: Player[] = [];
let flushScheduled = false;

function queue(player: Player, chunk: Buffer): void {
  if (player.out.length === 0) {
    dirty.push(player);
    if (!flushScheduled) {
      flushScheduled = true;
      setImmediate(flush);
    }
  }
  player.out.push(chunk);
}

function flush(): void {
  flushScheduled = false;
  const flushing = dirty;
  dirty = [];
  for (const player of flushing) {
    const { out } = player;
    const chunk = out.length === 1 ? out[0] : Buffer.concat(out);
    out.length = 0;
    if (!player.socket.destroyed) player.socket.write(chunk);
  }
}

function room(socket: Socket): void {
  const player: Player = { socket, name: '', room: null, turn: 0, out: [] };
  socket.on('close', () => player.room?.delete(player));
  onLines(socket, (line) => {
    if (player.room === null) {
      if (!line.startsWith('join ')) return;
      const name = line.slice(5);
      let members = rooms.get(name);
      if (!members) rooms.set(name, (members = new Set()));
      members.add(player);
      player.room = members;
      player.name = `player${++players}`;
      queue(player, Buffer.from(`You join room ${name}.\r\n`));
      return;
    }
    const text = line.startsWith('say ') ? line.slice(4) : line;
    queue(player, Buffer.from(`You say, '${text}'\r\n`));
    queue(player, Buffer.from(ROOM_HEARD + '\r\n'));
    queue(player, Buffer.from(turnPrompt(++player.turn) + '\r\n'));
    // Encoded once, queued to every other member.
    const said = Buffer.from(
      `${ROOM_BROADCAST_PREFIX}${player.name} says, '${text}'\r\n`,
    );
    for (const other of player.room) {
      if (other !== player) queue(other, said);
    }
  });
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
  'turn-one': turnOne,
  'turn-lines': turnLines,
  room,
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
