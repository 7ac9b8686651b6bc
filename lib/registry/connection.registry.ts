import { Injectable, Optional } from '@nestjs/common';
import { type Observable, Subject } from 'rxjs';
import type {
  ClusterBroadcast,
  ConnectionPresence,
  JsonValue,
  PresenceFilter,
  RemoteCommand,
  ServerSideEvent,
  SharedState,
} from '../cluster/cluster.interfaces.js';
// Value imports: the constructor's design:paramtypes metadata names the
// adapter class for Nest to inject it, and the registry checks for the
// default.
import { CLUSTER_LIMITS, FORBIDDEN_KEY } from '../cluster/cluster-limits.js';
import { EarwaxAdapter } from '../cluster/earwax.adapter.js';
import { InMemoryAdapter } from '../cluster/in-memory.adapter.js';
import {
  ConnectionContext,
  connectionOf,
  type AnyConnectionContext,
} from '../connection/connection-context.js';
import { withCrlf } from '../connection/outbox.js';
import type { DisconnectReason } from '../interfaces/connection.interface.js';
import { assertData, assertEncoding } from '../utils/send-arguments.js';

/**
 * Options of {@link ConnectionRegistry.broadcast}.
 *
 * @publicApi
 */
export interface BroadcastOptions {
  /** Send only to the members of this room. */
  room?: string;
  /**
   * A connection (or several) to leave out, usually the sender: contexts, or
   * connection ids (which may be of connections on other processes).
   */
  except?:
    AnyConnectionContext | string | Iterable<AnyConnectionContext | string>;
  /**
   * How to encode a string. Without it, each connection gets the text in
   * its own encoding (`ctx.encoding`: the transport's, or what a telnet
   * client agreed to), encoded once per encoding.
   */
  encoding?: BufferEncoding;
  /**
   * Only this process's connections, even with a cluster adapter.
   * @default false
   */
  local?: boolean;
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
 * Across processes (Node `cluster`, several hosts), an {@link EarwaxAdapter}
 * such as `RedisAdapter` makes `broadcast()` reach every process's
 * connections, and the `...ById()` methods, `fetchConnections()`,
 * `countConnections()` and `serverSideEmit()` work cluster-wide. The
 * synchronous methods (`size`, `get()`, `members()`, iteration) always
 * describe this process's own connections. Without an adapter the cluster
 * is this one process, and everything behaves as it always has.
 *
 * @publicApi
 */
@Injectable()
export class ConnectionRegistry implements Iterable<ConnectionContext> {
  /**
   * Server-side events sent by the other processes of the cluster with
   * {@link ConnectionRegistry.serverSideEmit} (never this process's own).
   * Completes when the application shuts down.
   */
  readonly serverEvents$: Observable<ServerSideEvent>;

  /** The live connections, in the order they were admitted. */
  private readonly connections = new Set<ConnectionContext>();
  /**
   * The same by id, made on the first lookup by id: a connection's id is
   * made when first asked for, and many servers never look one up.
   */
  private byId: Map<string, ConnectionContext> | null = null;
  private readonly roomMembers = new Map<string, Set<AnyConnectionContext>>();
  private readonly adapter: EarwaxAdapter;
  /**
   * The adapter when it spans processes; `null` for the in-memory default,
   * so the hot paths (add, delete, join, leave, broadcast) test one field and
   * a single process pays nothing more.
   */
  private readonly peers: EarwaxAdapter | null;
  /** What the application shared of each connection (`share()`). */
  private readonly sharedStates = new WeakMap<
    AnyConnectionContext,
    SharedState
  >();
  private readonly serverEvents = new Subject<ServerSideEvent>();

  /**
   * @param adapter What connects this registry to the other processes of a
   *   cluster; the in-memory default (a cluster of one) without it.
   */
  constructor(@Optional() adapter?: EarwaxAdapter) {
    this.adapter = adapter ?? new InMemoryAdapter();
    this.peers =
      adapter === undefined || adapter instanceof InMemoryAdapter
        ? null
        : adapter;
    this.serverEvents$ = this.serverEvents.asObservable();
  }

  /** This process's id in the cluster (`ConnectionPresence.node`). */
  get nodeId(): string {
    return this.adapter.nodeId;
  }

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
    return this.index().get(id);
  }

  /**
   * Whether a connection with this id is live.
   *
   * @param id A `ConnectionContext.id`.
   */
  has(id: string): boolean {
    return this.index().has(id);
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
    if (!this.connections.has(ctx as ConnectionContext)) return false;
    const connection = connectionOf(ctx);
    const rooms = (connection.rooms ??= new Set());
    if (rooms.has(room)) return false;
    rooms.add(room);
    let members = this.roomMembers.get(room);
    if (!members) this.roomMembers.set(room, (members = new Set()));
    members.add(ctx);
    if (this.peers !== null) this.peers.presenceChanged(this.presenceOf(ctx));
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
    if (!connectionOf(ctx).rooms?.delete(room)) return false;
    const members = this.roomMembers.get(room);
    if (members) {
      members.delete(ctx);
      if (members.size === 0) this.roomMembers.delete(room);
    }
    if (this.peers !== null) this.peers.presenceChanged(this.presenceOf(ctx));
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
   * With a cluster adapter the line also goes to the other processes, each
   * of which delivers it to its own connections the same way (unless
   * `local` is set); while they cannot be reached, only this process's
   * connections get it.
   *
   * @param data The line, without its terminator: text, or bytes sent as
   *   they are.
   * @param options `room`: only its members; `except`: connections to leave
   *   out, usually the sender; `encoding`: how to encode text (default:
   *   each connection's own); `local`: this process only.
   * @returns How many connections of this process it was queued to.
   * @throws TypeError if `data` is neither text nor bytes, or `encoding` is
   *   not one `Buffer` knows (before anything is sent).
   */
  broadcast(data: string | Uint8Array, options: BroadcastOptions = {}): number {
    const { room, except, encoding } = options;
    assertData('broadcast', data);
    assertEncoding('broadcast', encoding);
    const skip = excluded(except);
    const sent = this.deliverHere(data, room, skip, encoding);
    if (this.peers !== null && options.local !== true) {
      this.peers.broadcast({
        data,
        ...(room !== undefined && { room }),
        ...(skip !== undefined && { except: idsOf(skip) }),
        ...(encoding !== undefined && { encoding }),
      });
    }
    return sent;
  }

  /**
   * The live connections of the whole cluster (every process's), or of one
   * room, as presence entries. Without a cluster adapter, this process's.
   *
   * @param filter `room`: only its members.
   * @throws {ClusterUnavailableError} When the other processes cannot be
   *   reached (this process's connections are still in `values()`).
   */
  async fetchConnections(
    filter: PresenceFilter = {},
  ): Promise<ConnectionPresence[]> {
    const here = this.presence(filter);
    if (this.peers === null) return here;
    return [...here, ...(await this.peers.fetchRemote(filter))];
  }

  /**
   * How many connections the whole cluster holds, or one room of it.
   * Without a cluster adapter, `size` (or `roomSize(room)`).
   *
   * @param filter `room`: only its members.
   * @throws {ClusterUnavailableError} When the other processes cannot be
   *   reached.
   */
  async countConnections(filter: PresenceFilter = {}): Promise<number> {
    const here =
      filter.room === undefined ? this.size : this.roomSize(filter.room);
    if (this.peers === null) return here;
    return here + (await this.peers.countRemote(filter));
  }

  /**
   * Puts a connection in a room, on whichever process of the cluster holds
   * it.
   *
   * @param id The connection's id.
   * @param room The room's name.
   * @returns Whether it joined: `false` if no process holds it or it was
   *   already a member.
   * @throws {ClusterUnavailableError} When it is not here and the other
   *   processes cannot be reached.
   */
  async joinById(id: string, room: string): Promise<boolean> {
    return this.run({ type: 'join', id, room: checkRoom(room) });
  }

  /**
   * Takes a connection out of a room, on whichever process holds it.
   *
   * @param id The connection's id.
   * @param room The room's name.
   * @returns Whether it was a member (`false` if no process holds it).
   * @throws {ClusterUnavailableError} As for `joinById`.
   */
  async leaveById(id: string, room: string): Promise<boolean> {
    return this.run({ type: 'leave', id, room: checkRoom(room) });
  }

  /**
   * Disconnects a connection, on whichever process holds it, as
   * `ctx.disconnect(reason)` does there: "kick player 42".
   *
   * @param id The connection's id.
   * @param reason Why; `kicked` unless given.
   * @returns Whether a process held it (and disconnected it).
   * @throws {ClusterUnavailableError} As for `joinById`.
   */
  async disconnectById(
    id: string,
    reason: DisconnectReason = 'kicked',
  ): Promise<boolean> {
    return this.run({ type: 'disconnect', id, reason });
  }

  /**
   * Shares some of a connection's state with the whole cluster: it appears
   * as `shared` in its presence (`fetchConnections()`), on every process.
   * Nothing of `ctx.data` is shared unless given here; call it again when
   * the state changes, with `undefined` to stop sharing.
   *
   * @param ctx A live connection of this process.
   * @param state JSON: a player's name, level, zone.
   * @returns Whether it was shared (`false` if `ctx` is not live here).
   * @throws {TypeError} If `state` is not a plain object of JSON values.
   */
  share(ctx: AnyConnectionContext, state: SharedState | undefined): boolean {
    if (!this.connections.has(ctx as ConnectionContext)) return false;
    if (state === undefined) {
      this.sharedStates.delete(ctx);
    } else {
      this.sharedStates.set(ctx, toSharedState(state));
    }
    if (this.peers !== null) this.peers.presenceChanged(this.presenceOf(ctx));
    return true;
  }

  /**
   * What is shared of a connection (see `share()`).
   *
   * @param ctx A connection of this process.
   */
  sharedState(ctx: AnyConnectionContext): SharedState | undefined {
    return this.sharedStates.get(ctx);
  }

  /**
   * Sends an event to the other processes of the cluster, whose
   * `serverEvents$` emit it (this process's does not). Fire and forget:
   * nothing is queued while they cannot be reached.
   *
   * @param event The event's name.
   * @param data JSON data.
   * @returns Whether it was sent (`false` while the other processes cannot
   *   be reached). Always `true` without a cluster adapter (there is no
   *   other process).
   * @throws {TypeError} If `event` is empty or `data` is not JSON.
   */
  serverSideEmit(event: string, data: JsonValue = null): boolean {
    if (typeof event !== 'string' || event.length === 0) {
      throw new TypeError(
        'serverSideEmit(): the event name must be a non-empty string.',
      );
    }
    assertJson(data, 'serverSideEmit() data');
    return this.adapter.serverSideEmit(event, data);
  }

  /**
   * How many sockets of `address` the other processes of the cluster hold,
   * as this process last heard from them: what `maxConnectionsPerIp` adds
   * to this process's own count. Answered from memory, at once; it lags the
   * other processes by the adapter's propagation delay (with `RedisAdapter`,
   * one pub/sub message, or at worst one heartbeat).
   *
   * @param address An IP address (`ConnectionContext.hostname`).
   * @returns 0 without a cluster adapter, or while the other processes
   *   cannot be reached.
   */
  heldElsewhere(address: string): number {
    return this.peers === null ? 0 : this.peers.heldElsewhere(address);
  }

  /**
   * @internal A transport of this process holds one more or one fewer
   * socket of `address` (only transports with `maxConnectionsPerIp` say so).
   */
  heldChanged(address: string, delta: 1 | -1): void {
    if (this.peers !== null) this.peers.heldChanged(address, delta);
  }

  /**
   * @internal Delivers a broadcast from another process to this one's
   * connections.
   */
  deliver(broadcast: ClusterBroadcast): number {
    const except = broadcast.except;
    const skip =
      except === undefined || except.length === 0
        ? undefined
        : except.length === 1
          ? except[0]
          : new Set(except);
    return this.deliverHere(
      broadcast.data,
      broadcast.room,
      skip,
      broadcast.encoding,
    );
  }

  /** @internal Runs a command for a connection of this process. */
  execute(command: RemoteCommand): boolean {
    const ctx = this.get(command.id);
    if (ctx === undefined) return false;
    switch (command.type) {
      case 'join':
        return this.join(ctx, command.room);
      case 'leave':
        return this.leave(ctx, command.room);
      case 'disconnect':
        ctx.disconnect(command.reason);
        return true;
    }
  }

  /** @internal This process's connections as presence entries. */
  presence(filter: PresenceFilter = {}): ConnectionPresence[] {
    const targets =
      filter.room === undefined
        ? this.connections.values()
        : (this.roomMembers.get(filter.room) ?? []);
    return Array.from(targets, (ctx) => this.presenceOf(ctx));
  }

  /** @internal A server-side event from another process. */
  receive(event: ServerSideEvent): void {
    this.serverEvents.next(event);
  }

  /** @internal The application is shutting down. */
  detach(): void {
    this.serverEvents.complete();
  }

  /** The live connections by id, indexed on first need. */
  private index(): Map<string, ConnectionContext> {
    if (this.byId === null) {
      this.byId = new Map();
      for (const ctx of this.connections) this.byId.set(ctx.id, ctx);
    }
    return this.byId;
  }

  /** Runs a command here if the connection is here, else on its process. */
  private async run(command: RemoteCommand): Promise<boolean> {
    if (this.has(command.id)) return this.execute(command);
    if (this.peers === null) return false;
    return this.peers.commandRemote(command);
  }

  private presenceOf(ctx: AnyConnectionContext): ConnectionPresence {
    const shared = this.sharedStates.get(ctx);
    return {
      id: ctx.id,
      node: this.adapter.nodeId,
      address: ctx.hostname,
      port: ctx.port,
      connectedAt: ctx.connectedAt,
      rooms: [...ctx.rooms],
      ...(shared !== undefined && { shared }),
    };
  }

  /** The local half of a broadcast: one encode, one shared Buffer. */
  private deliverHere(
    data: string | Uint8Array,
    room: string | undefined,
    skip: Skip | undefined,
    encoding: BufferEncoding | undefined,
  ): number {
    const targets: Iterable<AnyConnectionContext> | undefined =
      room === undefined
        ? this.connections.values()
        : this.roomMembers.get(room);
    if (!targets) return 0;
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
    this.connections.add(ctx as ConnectionContext);
    this.byId?.set(ctx.id, ctx as ConnectionContext);
    if (this.peers !== null) this.peers.presenceChanged(this.presenceOf(ctx));
  }

  /** @internal Removes a connection, and takes it out of every room. */
  delete(ctx: AnyConnectionContext): void {
    if (this.connections.delete(ctx as ConnectionContext)) {
      this.byId?.delete(ctx.id);
      if (this.peers !== null) this.peers.presenceRemoved(ctx.id);
    }
    const rooms = connectionOf(ctx).rooms;
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

/**
 * Who a broadcast leaves out: one context (compared by identity, the usual
 * case: the sender), one id, or a set of ids.
 */
type Skip = AnyConnectionContext | string | ReadonlySet<string>;

function excluded(except: BroadcastOptions['except']): Skip | undefined {
  if (
    except === undefined ||
    typeof except === 'string' ||
    except instanceof ConnectionContext
  ) {
    return except;
  }
  const ids = new Set<string>();
  for (const item of except) {
    ids.add(typeof item === 'string' ? item : item.id);
  }
  return ids;
}

function isIn(skip: Skip, ctx: AnyConnectionContext): boolean {
  return typeof skip === 'string'
    ? skip === ctx.id
    : skip instanceof Set && skip.has(ctx.id);
}

function idsOf(skip: Skip): string[] {
  if (typeof skip === 'string') return [skip];
  if (skip instanceof Set) return [...skip];
  return [(skip as AnyConnectionContext).id];
}

function checkRoom(room: unknown): string {
  if (typeof room !== 'string') {
    throw new TypeError(`A room name must be a string; got ${typeof room}.`);
  }
  return room;
}

/** A copy of `state` as JSON makes it, checked to be a plain object. */
function toSharedState(state: unknown): SharedState {
  if (state === null || typeof state !== 'object' || Array.isArray(state)) {
    throw new TypeError(
      'share(): the state must be a plain object of JSON values, such as { name: "Alice" }.',
    );
  }
  assertJson(state, 'share() state');
  return Object.freeze(JSON.parse(JSON.stringify(state)) as SharedState);
}

/**
 * Throws a clear TypeError if `value` does not survive JSON (a function, a
 * symbol, `undefined`, a BigInt, a non-finite number, a cycle), or would be
 * refused by the other processes of a cluster: a key `__proto__`, or nesting
 * deeper than `CLUSTER_LIMITS.jsonDepth`.
 */
function assertJson(value: unknown, what: string): void {
  const problem = jsonProblem(value, new Set());
  if (problem !== undefined) {
    throw new TypeError(`${what} must be JSON: ${problem}.`);
  }
}

function jsonProblem(
  value: unknown,
  seen: Set<object>,
  path = '',
  depth = 0,
): string | undefined {
  const at = path === '' ? 'the value' : path;
  switch (typeof value) {
    case 'string':
    case 'boolean':
      return undefined;
    case 'number':
      return Number.isFinite(value) ? undefined : `${at} is ${value}`;
    case 'object': {
      if (value === null) return undefined;
      if (seen.has(value)) return `${at} is circular`;
      if (depth >= CLUSTER_LIMITS.jsonDepth) {
        return `${at} nests deeper than ${CLUSTER_LIMITS.jsonDepth} levels`;
      }
      seen.add(value);
      if (Array.isArray(value)) {
        for (let i = 0; i < value.length; i++) {
          const problem = jsonProblem(
            value[i],
            seen,
            `${path}[${i}]`,
            depth + 1,
          );
          if (problem !== undefined) return problem;
        }
      } else {
        const proto = Object.getPrototypeOf(value) as object | null;
        if (proto !== Object.prototype && proto !== null) {
          return `${at} is a ${value.constructor?.name ?? 'class instance'}, not a plain object`;
        }
        for (const [key, item] of Object.entries(value)) {
          const where = path === '' ? key : `${path}.${key}`;
          if (key === FORBIDDEN_KEY) return `${where} is a forbidden key`;
          const problem = jsonProblem(item, seen, where, depth + 1);
          if (problem !== undefined) return problem;
        }
      }
      seen.delete(value);
      return undefined;
    }
    default:
      return `${at} is ${typeof value === 'undefined' ? 'undefined' : `a ${typeof value}`}`;
  }
}
