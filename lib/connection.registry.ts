import { Injectable } from '@nestjs/common';
import {
  ConnectionContext,
  type AnyConnectionContext,
  withCrlf,
} from './connection-context.js';

/**
 * Options of {@link ConnectionRegistry.broadcast}.
 *
 * @publicApi
 */
export interface BroadcastOptions {
  /** Send only to the members of this room. */
  room?: string;
  /** A connection (or several) to leave out, usually the sender. */
  except?: AnyConnectionContext | Iterable<AnyConnectionContext>;
  /**
   * How to encode a string. Without it, each connection gets the text in
   * its own encoding (`ctx.encoding`: the transport's, or what a telnet
   * client agreed to), encoded once per encoding.
   */
  encoding?: BufferEncoding;
}

/**
 * The live (admitted, not yet disconnecting) connections and their rooms:
 * the NestJS form of `earwax_server.Server.connections`, without a mutable
 * array to corrupt. Inject it anywhere (a service, a scheduler, an HTTP
 * controller of a hybrid app). A connection is in it before `on_connect`
 * runs and out of it, and of every room, before `on_disconnect` runs.
 *
 * Rooms are named groups (a zone, a channel, a party): a room exists while
 * it has members.
 *
 * @publicApi
 */
@Injectable()
export class ConnectionRegistry implements Iterable<ConnectionContext> {
  private readonly connections = new Map<string, ConnectionContext>();
  private readonly roomMembers = new Map<string, Set<AnyConnectionContext>>();

  /** How many connections are live. */
  get size(): number {
    return this.connections.size;
  }

  /**
   * The live connection with this id.
   *
   * @param id A `ConnectionContext.id`.
   */
  get(id: string): ConnectionContext | undefined {
    return this.connections.get(id);
  }

  /**
   * Whether a connection with this id is live.
   *
   * @param id A `ConnectionContext.id`.
   */
  has(id: string): boolean {
    return this.connections.has(id);
  }

  /** The live connections, in the order they were admitted. */
  values(): IterableIterator<ConnectionContext> {
    return this.connections.values();
  }

  /** The live connections, in the order they were admitted. */
  [Symbol.iterator](): IterableIterator<ConnectionContext> {
    return this.connections.values();
  }

  /**
   * The live connections that satisfy `predicate`.
   *
   * @param predicate The test.
   */
  filter(predicate: (ctx: ConnectionContext) => boolean): ConnectionContext[] {
    const matches: ConnectionContext[] = [];
    for (const ctx of this.connections.values()) {
      if (predicate(ctx)) matches.push(ctx);
    }
    return matches;
  }

  /**
   * Puts a live connection in a room (creating the room).
   *
   * @param ctx The connection.
   * @param room The room's name.
   * @returns Whether it joined: `false` if it was already a member, or is
   *   not live.
   */
  join(ctx: AnyConnectionContext, room: string): boolean {
    if (this.connections.get(ctx.id) !== ctx) return false;
    const rooms = (ctx.roomSet ??= new Set());
    if (rooms.has(room)) return false;
    rooms.add(room);
    let members = this.roomMembers.get(room);
    if (!members) this.roomMembers.set(room, (members = new Set()));
    members.add(ctx);
    return true;
  }

  /**
   * Takes a connection out of a room (removing the room when it empties).
   *
   * @param ctx The connection.
   * @param room The room's name.
   * @returns Whether it was a member.
   */
  leave(ctx: AnyConnectionContext, room: string): boolean {
    if (!ctx.roomSet?.delete(room)) return false;
    const members = this.roomMembers.get(room);
    if (members) {
      members.delete(ctx);
      if (members.size === 0) this.roomMembers.delete(room);
    }
    return true;
  }

  /** The rooms that have members, in the order they were created. */
  rooms(): string[] {
    return [...this.roomMembers.keys()];
  }

  /**
   * The members of a room, in the order they joined.
   *
   * @param room The room's name.
   * @returns An empty array for a room without members.
   */
  members(room: string): ConnectionContext[] {
    const members = this.roomMembers.get(room);
    return members ? ([...members] as ConnectionContext[]) : [];
  }

  /**
   * How many connections are in a room.
   *
   * @param room The room's name.
   */
  roomSize(room: string): number {
    return this.roomMembers.get(room)?.size ?? 0;
  }

  /**
   * Sends one line to every live connection, or to a room's members, but
   * `except`. The line is encoded once and the same bytes are queued to
   * every connection, so a broadcast to 10,000 players costs one encode and
   * holds one copy in memory. Sends never block: a connection that does not
   * read is dropped by its own output limit, and one that is gone is
   * skipped; nothing throws.
   *
   * @param data The line, without its terminator: text, or bytes sent as
   *   they are.
   * @param options `room`: only its members; `except`: connections to leave
   *   out, usually the sender; `encoding`: how to encode text (default:
   *   each connection's own).
   * @returns How many connections it was queued to.
   */
  broadcast(data: string | Uint8Array, options: BroadcastOptions = {}): number {
    const { room, except, encoding } = options;
    const targets: Iterable<AnyConnectionContext> | undefined =
      room === undefined
        ? this.connections.values()
        : this.roomMembers.get(room);
    if (!targets) return 0;
    const skip = excluded(except);
    let sent = 0;
    if (typeof data !== 'string' || encoding !== undefined) {
      const line = toLine(data, encoding ?? 'utf8');
      for (const ctx of targets) {
        if (skip !== undefined && (skip === ctx || isIn(skip, ctx))) continue;
        if (ctx.sendRaw(line)) sent++;
      }
      return sent;
    }
    // Text without an explicit encoding goes out in each connection's own
    // (a telnet client may have agreed to latin-1): still one encode per
    // encoding, not per connection.
    const lines = new Map<BufferEncoding, Buffer>();
    for (const ctx of targets) {
      if (skip !== undefined && (skip === ctx || isIn(skip, ctx))) continue;
      const own = ctx.encoding;
      let line = lines.get(own);
      if (line === undefined) lines.set(own, (line = toLine(data, own)));
      if (ctx.sendRaw(line)) sent++;
    }
    return sent;
  }

  /** @internal */
  add(ctx: AnyConnectionContext): void {
    this.connections.set(ctx.id, ctx as ConnectionContext);
  }

  /** @internal Removes a connection, and takes it out of every room. */
  delete(ctx: AnyConnectionContext): void {
    this.connections.delete(ctx.id);
    const rooms = ctx.roomSet;
    if (rooms === null) return;
    for (const room of rooms) {
      const members = this.roomMembers.get(room);
      if (!members) continue;
      members.delete(ctx);
      if (members.size === 0) this.roomMembers.delete(room);
    }
    // The set stays readable (`ctx.rooms` in on_disconnect shows where the
    // player was) but is detached from the registry.
  }
}

/** A line's bytes: the text (or bytes) and CR LF. */
function toLine(data: string | Uint8Array, encoding: BufferEncoding): Buffer {
  return withCrlf(
    typeof data === 'string' ? Buffer.from(data, encoding) : data,
  );
}

function excluded(
  except: BroadcastOptions['except'],
): AnyConnectionContext | ReadonlySet<AnyConnectionContext> | undefined {
  if (except === undefined || except instanceof ConnectionContext) {
    return except;
  }
  return new Set(except);
}

function isIn(
  skip: AnyConnectionContext | ReadonlySet<AnyConnectionContext>,
  ctx: AnyConnectionContext,
): boolean {
  return skip instanceof Set && skip.has(ctx);
}
