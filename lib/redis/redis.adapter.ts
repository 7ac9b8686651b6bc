import { Logger } from '@nestjs/common';
import { randomBytes, randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import { CLUSTER_LIMITS } from '../cluster/cluster-limits.js';
import { ClusterUnavailableError } from '../errors/cluster-unavailable.error.js';
import type {
  ClusterBroadcast,
  ConnectionPresence,
  EarwaxAdapterHost,
  JsonValue,
  PresenceFilter,
  RemoteCommand,
  SharedBan,
  SharedBanChange,
} from '../cluster/cluster.interfaces.js';
import { EarwaxAdapter } from '../cluster/earwax.adapter.js';
import { LogThrottle } from '../limits/log-throttle.js';
import {
  type ClusterMessage,
  decodeBan,
  decodeHeldCounts,
  decodeMessage,
  decodeNodeId,
  decodePresence,
  encodeBan,
  encodeMessage,
  encodePresence,
  type HeldCounts,
} from './cluster-message.js';
import { ClusterMessageError } from '../errors/cluster-message.error.js';
import { shown } from './cluster-schema.js';
import type { RedisAdapterOptions } from './redis-adapter-options.interface.js';
import {
  createClients,
  type RedisClient,
  scanKeys,
} from './redis-connection.js';
import { RedisKeys } from './redis-keys.js';
import { SharedHeldCounts } from './shared-held-counts.js';
import {
  SharedConnectionRate,
  type SharedConnectionRateOptions,
} from './shared-connection-rate.js';
import { describeError } from '../utils/describe-error.js';

/** Bounds of the clean-up at close, so a stalled Redis cannot hold it up. */
const CLOSE_TIMEOUT_MS = 2000;
/** Keys deleted per DEL when the block list is cleared. */
const DEL_BATCH = 500;
/** Malformed messages of one kind are logged once per this window. */
const REJECTION_LOG_INTERVAL_MS = 10_000;

interface PendingRequest {
  readonly resolve: (ok: boolean) => void;
  readonly reject: (err: Error) => void;
  readonly timer: NodeJS.Timeout;
}

/**
 * An {@link EarwaxAdapter} over Redis (through `ioredis`), for a game that
 * runs in several processes (Node `cluster`, several hosts behind a TCP
 * load balancer): broadcasts, rooms, kicks and server-side events travel by
 * Redis pub/sub; presence lives in one hash per process, renewed by a
 * heartbeat so a crashed process's entries expire; bans are keys of their
 * own (a temporary one expires in Redis at its end), applied by every
 * process to its local block list as they are published.
 *
 * Nothing waits for Redis on the paths that serve players: the accept path
 * checks the local block list, a broadcast is delivered locally first, and
 * presence writes are fire-and-forget (batched by ioredis's auto-pipelining).
 *
 * `maxConnectionsPerIp` counts an address's sockets on every process: each
 * process keeps its held counts per address in a hash of its own (written
 * in the background, once per turn of the event loop however many sockets
 * came and went, and expiring with its heartbeat) and publishes the counts
 * that changed; every process keeps the others' counts in memory, from
 * those messages and from a full reread at each heartbeat, and the accept
 * path adds them to its own count without waiting. So the limit holds
 * within a consistency window: sockets accepted on different processes at
 * nearly the same moment (before each other's counts arrive, about one
 * Redis round trip; at worst one heartbeat if a message was lost) are not
 * yet counted, and a burst spread over N processes can exceed the limit by
 * up to N - 1 times it until the caches catch up. Sockets already admitted
 * stay; later ones are refused. While Redis is down each process counts
 * alone.
 *
 * Nothing from Redis is trusted as it comes: every message, presence entry,
 * stored ban, held count and process id is checked field by field against
 * its definition (types, ranges, known kinds and reasons, bounded lengths);
 * what does not match is dropped whole, counted in the application's
 * metrics (`earwax_cluster_messages_rejected_total`), and logged once per
 * kind every 10 s, with the rest summed up.
 *
 * When Redis goes away, each process keeps serving its own players and
 * local broadcasts, logs the outage once, and does not queue: cluster
 * broadcasts and server-side events are dropped (and counted), cluster-wide
 * queries and commands reject with `ClusterUnavailableError`, presence
 * changes are skipped, and ban changes are remembered as the state of their
 * targets (at most one per target). When Redis answers again, the process
 * rewrites its presence, writes the ban changes it made meanwhile, then
 * takes the cluster's bans as they now are, and logs what it resynced.
 *
 * @example
 * ```ts
 * EarwaxModule.forRoot({
 *   adapter: new RedisAdapter({ redis: 'redis://10.0.0.7:6379', prefix: 'mud' }),
 * });
 * ```
 *
 * @publicApi
 */
export class RedisAdapter extends EarwaxAdapter {
  readonly nodeId: string;

  private readonly logger = new Logger('RedisAdapter');
  private readonly keys: RedisKeys;
  private readonly heartbeatInterval: number;
  private readonly presenceTtl: number;
  private readonly requestTimeout: number;
  private readonly connectTimeout: number;
  private client: RedisClient | undefined;
  private subscriber: RedisClient | undefined;
  private host: EarwaxAdapterHost | undefined;
  /** Whether presence and bans in Redis are this process's (after a sync). */
  private phase: 'down' | 'syncing' | 'up' = 'down';
  private syncAgain = false;
  private subscribed = false;
  private heartbeat: NodeJS.Timeout | undefined;
  private closed = false;
  /** Whether this process has been in the cluster (outages come after). */
  private joinedOnce = false;
  /** The outage is logged once; set until the cluster is reachable again. */
  private outageLogged = false;
  private outageSince: number | undefined;
  /** Cluster messages not sent during the current outage. */
  private dropped = 0;
  /** Ban changes made while Redis was down, the latest per target. */
  private readonly pendingBans = new Map<string, SharedBanChange>();
  private clearPending = false;
  /** Ban writes, one after another (a clear must not overtake a ban). */
  private banWrites: Promise<void> = Promise.resolve();
  private readonly requests = new Map<string, PendingRequest>();
  private onAvailable: (() => void) | undefined;
  /** Held sockets per address: this process's, and the others' as heard. */
  private readonly held = new SharedHeldCounts();
  /** The write of changed held counts, once per turn of the event loop. */
  private heldFlush: NodeJS.Immediate | undefined;
  /** Whether a full read of the others' held counts is under way. */
  private readingHeld = false;
  /** Logs malformed input once per kind and window; sums up the rest. */
  private readonly rejections = new LogThrottle(
    REJECTION_LOG_INTERVAL_MS,
    (kind, held) =>
      this.logger.warn(
        `Dropped ${held} more ${kind} in the last ${REJECTION_LOG_INTERVAL_MS / 1000} s.`,
      ),
  );

  /**
   * @param options Where Redis is, the key prefix, and the timings.
   * @throws {TypeError} For a prefix that cannot be a hash tag, or timings
   *   that are not positive (or a TTL under two heartbeats).
   */
  constructor(private readonly options: RedisAdapterOptions = {}) {
    super();
    this.keys = new RedisKeys(options.prefix ?? 'earwax');
    this.nodeId =
      options.nodeId ??
      `${hostname()}/${process.pid}/${randomBytes(3).toString('hex')}`;
    this.heartbeatInterval = positiveMs(
      options.heartbeatInterval,
      5000,
      'heartbeatInterval',
    );
    this.presenceTtl = positiveMs(options.presenceTtl, 15_000, 'presenceTtl');
    this.requestTimeout = positiveMs(
      options.requestTimeout,
      5000,
      'requestTimeout',
    );
    this.connectTimeout = positiveMs(
      options.connectTimeout,
      5000,
      'connectTimeout',
    );
    if (this.presenceTtl < 2 * this.heartbeatInterval) {
      throw new TypeError(
        `RedisAdapter: "presenceTtl" (${this.presenceTtl} ms) must be at least twice "heartbeatInterval" (${this.heartbeatInterval} ms), or a live process would drop out between beats.`,
      );
    }
  }

  /**
   * Whether the other processes can be reached now: Redis is connected, this
   * process's subscriptions are in place, and its state is written.
   */
  get available(): boolean {
    return this.phase === 'up' && this.subscribed && !this.closed;
  }

  /**
   * Connects to Redis and joins the cluster: subscribes, writes this
   * process's presence, and takes the cluster's bans. Waits for that up to
   * `connectTimeout`; past it, the application starts anyway and joins once
   * Redis answers.
   */
  async init(host: EarwaxAdapterHost): Promise<void> {
    if (this.host && !this.closed) {
      throw new Error(
        'RedisAdapter: this adapter already serves a running application; give each application its own (forRootAsync with a factory makes one per application).',
      );
    }
    // Started again after close() (a test suite booting its module twice).
    this.reset();
    this.host = host;
    const { client, subscriber } = createClients(
      this.options.redis,
      // CLIENT SETNAME takes no spaces.
      `earwax:${this.nodeId.replace(/\s/g, '_')}`,
    );
    this.client = client;
    this.subscriber = subscriber;
    client.on('ready', () => this.requestSync());
    client.on('close', () => this.lost('the connection closed'));
    client.on('error', (err: Error) => this.failed(err));
    subscriber.on('ready', () => void this.subscribe());
    subscriber.on('close', () => {
      this.subscribed = false;
      this.lost('the subscriber connection closed');
    });
    subscriber.on('error', (err: Error) => this.failed(err));
    subscriber.on('message', (channel: string, text: string) =>
      this.onMessage(channel, text),
    );
    this.heartbeat = setInterval(() => this.beat(), this.heartbeatInterval);
    this.heartbeat.unref();

    if (this.available) return;
    let timer: NodeJS.Timeout | undefined;
    const joined = await Promise.race([
      new Promise<true>((resolve) => (this.onAvailable = () => resolve(true))),
      new Promise<false>(
        (resolve) => (timer = setTimeout(resolve, this.connectTimeout, false)),
      ),
    ]);
    clearTimeout(timer);
    this.onAvailable = undefined;
    if (!joined && !this.closed) {
      this.outageLogged = true;
      this.outageSince = Date.now();
      this.logger.warn(
        `Redis did not answer within ${this.connectTimeout} ms: serving this process's players only; it joins the cluster when Redis answers.`,
      );
    }
  }

  /** Back to the state of a new adapter, for a start after `close()`. */
  private reset(): void {
    this.closed = false;
    this.phase = 'down';
    this.syncAgain = false;
    this.subscribed = false;
    this.joinedOnce = false;
    this.outageLogged = false;
    this.outageSince = undefined;
    this.dropped = 0;
    this.held.clearRemote();
    // Pending ban changes stay: bans made before the start (the transport's
    // `blockList` option) are the cluster's too.
    this.banWrites = Promise.resolve();
  }

  /**
   * Leaves the cluster: removes this process's presence, stops its
   * heartbeat and closes both connections. Commands still waiting for
   * another process reject.
   */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.heartbeat);
    this.rejections.flush();
    clearImmediate(this.heldFlush);
    this.heldFlush = undefined;
    this.held.clearRemote();
    for (const [id, request] of this.requests) {
      clearTimeout(request.timer);
      request.reject(
        new ClusterUnavailableError(
          'a command for another process',
          new Error('the adapter is closing'),
        ),
      );
      this.requests.delete(id);
    }
    const client = this.client;
    const subscriber = this.subscriber;
    if (!client || !subscriber) return;
    if (client.status === 'ready') {
      try {
        await bounded(
          Promise.all([
            this.banWrites,
            client
              .multi()
              .del(this.keys.presence(this.nodeId))
              .del(this.keys.held(this.nodeId))
              .zrem(this.keys.nodes, this.nodeId)
              // The others forget this process's counts at once.
              .publish(this.keys.all, this.heldMessage({}, true))
              .exec(),
          ]),
          CLOSE_TIMEOUT_MS,
        );
      } catch (err) {
        this.logger.warn(
          `Could not remove this process's presence from Redis (it expires in ${this.presenceTtl} ms): ${describeError(err)}`,
        );
      }
    }
    await Promise.all([quit(client), quit(subscriber)]);
  }

  /**
   * A connection-rate limiter whose per-address counts are shared by every
   * process through this adapter's Redis, for the transport's
   * `connectionRate` option. The accept path does not wait for Redis: see
   * {@link SharedConnectionRate}.
   *
   * @example
   * ```ts
   * const adapter = new RedisAdapter({ redis: process.env.REDIS_URL });
   * EarwaxModule.forRoot({
   *   adapter,
   *   transport: { connectionRate: adapter.connectionRate({ limit: 30 }) },
   * });
   * ```
   *
   * @param options The limit per address, and the window.
   * @throws {TypeError} For a limit that is not a positive whole number, or
   *   a window that is not whole seconds.
   */
  connectionRate(options: SharedConnectionRateOptions): SharedConnectionRate {
    return new SharedConnectionRate(options, () => this.client, this.keys.rate);
  }

  /** Writes a connection's presence (skipped while Redis is down). */
  presenceChanged(presence: ConnectionPresence): void {
    const client = this.writable();
    if (!client) return;
    const key = this.keys.presence(this.nodeId);
    // The TTL goes with every write: a hash created between heartbeats must
    // still expire if this process dies before the next one.
    client
      .hset(key, presence.id, encodePresence(presence))
      .catch((err: unknown) => this.writeFailed(err));
    client
      .pexpire(key, this.presenceTtl)
      .catch((err: unknown) => this.writeFailed(err));
  }

  /**
   * Counts a held socket of `address` (or one fewer), written to Redis and
   * published in the background with the other changes of this turn of the
   * event loop.
   */
  override heldChanged(address: string, delta: 1 | -1): void {
    this.held.change(address, delta);
    if (this.heldFlush === undefined && !this.closed) {
      this.heldFlush = setImmediate(() => this.flushHeld());
    }
  }

  /**
   * Sockets of `address` the other processes hold, from memory: as their
   * last published counts (or the last heartbeat's read) say. 0 while the
   * cluster cannot be reached.
   */
  override heldElsewhere(address: string): number {
    return this.available ? this.held.elsewhere(address) : 0;
  }

  /** Removes a connection's presence (skipped while Redis is down). */
  presenceRemoved(id: string): void {
    this.writable()
      ?.hdel(this.keys.presence(this.nodeId), id)
      .catch((err: unknown) => this.writeFailed(err));
  }

  /**
   * Stores a local ban change and tells the other processes; while Redis is
   * down, remembers it for the next sync. Expiries need nothing: a
   * temporary ban's key expires in Redis, and each process ends its own
   * copy on time.
   */
  banChanged(change: SharedBanChange): void {
    if (change.type === 'expire') return;
    if (this.phase !== 'up' || this.closed) {
      this.remember(change);
      // A sync running now may have passed its pending bans already.
      if (this.phase === 'syncing') this.syncAgain = true;
      return;
    }
    this.banWrites = this.banWrites.then(() =>
      this.writeBan(change).catch((err: unknown) => {
        this.remember(change);
        this.writeFailed(err);
      }),
    );
  }

  /** Publishes a broadcast to the other processes (dropped while down). */
  broadcast(broadcast: ClusterBroadcast): void {
    this.publish({ kind: 'broadcast', from: this.nodeId, broadcast });
  }

  /** Publishes a server-side event to the other processes. */
  serverSideEmit(event: string, data: JsonValue): boolean {
    return this.publish({ kind: 'event', from: this.nodeId, event, data });
  }

  /** The connections of the other live processes, from their presence. */
  async fetchRemote(filter: PresenceFilter): Promise<ConnectionPresence[]> {
    const client = this.connected('fetchConnections');
    try {
      const nodes = await this.otherNodes(client);
      if (nodes.length === 0) return [];
      const pipeline = client.pipeline();
      for (const node of nodes) pipeline.hvals(this.keys.presence(node));
      const results = (await pipeline.exec()) ?? [];
      const found: ConnectionPresence[] = [];
      for (const [i, [err, values]] of results.entries()) {
        if (err) throw err;
        for (const text of values as string[]) {
          const presence = this.readPresence(nodes[i], text);
          if (
            presence !== undefined &&
            (filter.room === undefined || presence.rooms.includes(filter.room))
          ) {
            found.push(presence);
          }
        }
      }
      return found;
    } catch (err) {
      throw unavailable('fetchConnections', err);
    }
  }

  /** How many connections the other live processes hold. */
  async countRemote(filter: PresenceFilter): Promise<number> {
    if (filter.room !== undefined) {
      return (await this.fetchRemote(filter)).length;
    }
    const client = this.connected('countConnections');
    try {
      const nodes = await this.otherNodes(client);
      if (nodes.length === 0) return 0;
      const pipeline = client.pipeline();
      for (const node of nodes) pipeline.hlen(this.keys.presence(node));
      let count = 0;
      for (const [err, length] of (await pipeline.exec()) ?? []) {
        if (err) throw err;
        count += length as number;
      }
      return count;
    } catch (err) {
      throw unavailable('countConnections', err);
    }
  }

  /**
   * Finds the process that holds the connection (from presence) and asks it
   * to run the command, waiting up to `requestTimeout` for its answer.
   */
  async commandRemote(command: RemoteCommand): Promise<boolean> {
    const operation = `${command.type}ById`;
    const client = this.connected(operation);
    let owner: string | undefined;
    try {
      const nodes = await this.otherNodes(client);
      if (nodes.length === 0) return false;
      const pipeline = client.pipeline();
      for (const node of nodes) {
        pipeline.hexists(this.keys.presence(node), command.id);
      }
      const results = (await pipeline.exec()) ?? [];
      results.forEach(([err, exists], i) => {
        if (err) throw err;
        if (exists === 1 && owner === undefined) owner = nodes[i];
      });
    } catch (err) {
      throw unavailable(operation, err);
    }
    if (owner === undefined) return false;
    return this.request(client, owner, command, operation);
  }

  private request(
    client: RedisClient,
    owner: string,
    command: RemoteCommand,
    operation: string,
  ): Promise<boolean> {
    const id = randomUUID();
    return new Promise<boolean>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.requests.delete(id);
        reject(
          new ClusterUnavailableError(
            operation,
            new Error(
              `process ${owner} did not answer within ${this.requestTimeout} ms`,
            ),
          ),
        );
      }, this.requestTimeout);
      this.requests.set(id, { resolve, reject, timer });
      const message = encodeMessage({
        kind: 'request',
        from: this.nodeId,
        id,
        command,
      });
      client.publish(this.keys.node(owner), message).catch((err: unknown) => {
        clearTimeout(timer);
        this.requests.delete(id);
        reject(unavailable(operation, err));
      });
    });
  }

  /**
   * Handles a message from the cluster. A malformed one is dropped whole
   * before anything of it is applied, and counted.
   */
  private onMessage(channel: string, text: string): void {
    let message: ClusterMessage;
    try {
      message = decodeMessage(text);
    } catch (err) {
      this.rejected(
        `malformed messages on ${channel}`,
        `a malformed message on ${channel}`,
        err,
      );
      return;
    }
    // Our own publications come back on the shared channel.
    if (message.from === this.nodeId) return;
    const host = this.host;
    if (!host || this.closed) return;
    try {
      switch (message.kind) {
        case 'broadcast':
          host.deliver(message.broadcast);
          return;
        case 'event':
          host.receive({
            event: message.event,
            data: message.data,
            node: message.from,
          });
          return;
        case 'bans':
          host.applyBanChange(message.change);
          return;
        case 'request':
          this.answer(message.from, message.id, host.execute(message.command));
          return;
        case 'reply': {
          const request = this.requests.get(message.id);
          if (!request) return; // timed out already
          this.requests.delete(message.id);
          clearTimeout(request.timer);
          request.resolve(message.ok);
          return;
        }
        case 'held':
          this.held.apply(message.from, message.counts, message.reset);
          return;
      }
    } catch (err) {
      if (this.rejections.allow('messages that could not be applied')) {
        this.logger.error(
          `Could not apply a ${message.kind} message from ${message.from}: ${describeError(err)}`,
        );
      }
    }
  }

  /**
   * Something malformed from another process was dropped: counted in the
   * application's metrics, and logged once per `kind` and window.
   */
  private rejected(kind: string, what: string, err: unknown): void {
    this.host?.messageRejected();
    if (this.rejections.allow(kind)) {
      this.logger.warn(`Dropped ${what}: ${describeError(err)}`);
    }
  }

  private answer(to: string, id: string, ok: boolean): void {
    this.client
      ?.publish(
        this.keys.node(to),
        encodeMessage({ kind: 'reply', from: this.nodeId, id, ok }),
      )
      .catch((err: unknown) =>
        this.logger.debug(`Could not answer ${to}: ${describeError(err)}`),
      );
  }

  /** Publishes to every process; counts it as dropped when it cannot. */
  private publish(message: ClusterMessage): boolean {
    const client = this.client;
    // Both connections, or none: once the outage is declared (either one
    // lost), nothing is sent until Redis is back.
    if (
      !client ||
      client.status !== 'ready' ||
      this.subscriber?.status !== 'ready' ||
      this.closed
    ) {
      this.dropped++;
      return false;
    }
    const text = encodeMessage(message);
    if (text.length > CLUSTER_LIMITS.messageLength) {
      // The others would drop it: it is not sent.
      if (this.rejections.allow('messages too long to send')) {
        this.logger.warn(
          `Did not send a ${message.kind} message of ${text.length} characters: the other processes take at most ${CLUSTER_LIMITS.messageLength}.`,
        );
      }
      return false;
    }
    client.publish(this.keys.all, text).catch(() => {
      this.dropped++;
    });
    return true;
  }

  private async subscribe(): Promise<void> {
    const subscriber = this.subscriber;
    if (!subscriber || this.closed) return;
    try {
      await subscriber.subscribe(this.keys.all, this.keys.node(this.nodeId));
      this.subscribed = true;
      this.requestSync();
    } catch (err) {
      this.logger.debug(`Subscribing failed: ${describeError(err)}`);
    }
  }

  /** Runs a sync now, or once more after the one running. */
  private requestSync(): void {
    if (this.closed) return;
    if (this.phase === 'syncing') {
      this.syncAgain = true;
      return;
    }
    void this.sync();
  }

  private async sync(): Promise<void> {
    this.phase = 'syncing';
    let synced: { connections: number; bans: number } | undefined;
    do {
      this.syncAgain = false;
      try {
        synced = await this.syncOnce();
      } catch (err) {
        // A later 'ready' (or the heartbeat, if the connection stayed up)
        // tries again.
        this.phase = 'down';
        this.logger.debug(`Sync with Redis failed: ${describeError(err)}`);
        return;
      }
    } while (this.syncAgain && !this.closed);
    this.phase = 'up';
    this.reachable(synced);
  }

  /**
   * Makes Redis hold this process's presence, writes the ban changes made
   * while it was down (and, if Redis lost its data, every ban held here),
   * then applies the cluster's bans here.
   */
  private async syncOnce(): Promise<{ connections: number; bans: number }> {
    const client = this.client;
    const host = this.host;
    if (!client || !host || client.status !== 'ready') {
      throw new Error('not connected');
    }
    // No list of processes: Redis has lost its data (a restart without
    // persistence) or every process was away longer than the TTL. Then the
    // bans this process holds are written back (the cluster's union), so a
    // Redis restart does not lift them; otherwise Redis has the truth.
    const fresh = (await client.exists(this.keys.nodes)) === 0;
    // The bans first, the list of processes after: a process that finds
    // the list has its bans to read.
    if (fresh) {
      for (const ban of host.bans()) {
        if (!this.pendingBans.has(ban.entry.target)) {
          // Each ban is published once, by the first process to restore it.
          await this.writeBan({ type: 'ban', ban }, true);
        }
      }
    }
    if (this.clearPending) {
      await this.writeBan({ type: 'clear' });
      this.clearPending = false;
    }
    for (const [target, change] of [...this.pendingBans]) {
      await this.writeBan(change);
      if (this.pendingBans.get(target) === change) {
        this.pendingBans.delete(target);
      }
    }

    const key = this.keys.presence(this.nodeId);
    const entries = host.presence();
    const now = Date.now();
    const transaction = client.multi().del(key);
    if (entries.length > 0) {
      transaction
        .hset(
          key,
          Object.fromEntries(entries.map((p) => [p.id, encodePresence(p)])),
        )
        .pexpire(key, this.presenceTtl);
    }
    // Held counts: all of them, as Redis may have lost or missed some.
    const heldKey = this.keys.held(this.nodeId);
    const held = this.held.takeAll();
    transaction.del(heldKey);
    if (Object.keys(held).length > 0) {
      transaction.hset(heldKey, held).pexpire(heldKey, this.presenceTtl);
    }
    transaction
      .zadd(this.keys.nodes, now + this.presenceTtl, this.nodeId)
      .pexpire(this.keys.nodes, this.presenceTtl)
      .publish(this.keys.all, this.heldMessage(held, true));
    for (const [err] of (await transaction.exec()) ?? []) {
      if (err) throw err;
    }
    // And the others' counts, which pub/sub may have lost meanwhile.
    await this.readHeld(client);

    const banKeys = await scanKeys(client, this.keys.banPattern);
    const bans: SharedBan[] = [];
    if (banKeys.length > 0) {
      const values = await client.mget(...banKeys);
      values.forEach((text, i) => {
        if (text === null) return; // expired since the scan
        try {
          const ban = decodeBan(text);
          if (this.keys.ban(ban.entry.target) !== banKeys[i]) {
            throw new ClusterMessageError(
              `ban.entry.target ${shown(ban.entry.target)} is not the target its key names`,
            );
          }
          bans.push(ban);
        } catch (err) {
          this.rejected(
            'malformed stored bans',
            `the malformed ban stored under ${shown(banKeys[i])}`,
            err,
          );
        }
      });
    }
    host.replaceBans(bans);
    return { connections: entries.length, bans: bans.length };
  }

  /**
   * Writes one ban change to Redis, then publishes it. With `restore`, a
   * ban is written (and published) only if no process has written its
   * target yet.
   */
  private async writeBan(
    change: SharedBanChange,
    restore = false,
  ): Promise<void> {
    const client = this.client;
    if (!client || client.status !== 'ready') throw new Error('not connected');
    switch (change.type) {
      case 'ban': {
        const { entry } = change.ban;
        const key = this.keys.ban(entry.target);
        const value = encodeBan(change.ban);
        let written: 'OK' | null;
        if (entry.expiresAt === undefined) {
          written = restore
            ? await client.set(key, value, 'NX')
            : await client.set(key, value);
        } else {
          const left = entry.expiresAt - Date.now();
          if (left <= 0) return;
          written = restore
            ? await client.set(key, value, 'PX', left, 'NX')
            : await client.set(key, value, 'PX', left);
        }
        if (written === null) return;
        break;
      }
      case 'unban':
        await client.del(this.keys.ban(change.entry.target));
        break;
      case 'clear': {
        const keys = await scanKeys(client, this.keys.banPattern);
        for (let i = 0; i < keys.length; i += DEL_BATCH) {
          await client.del(...keys.slice(i, i + DEL_BATCH));
        }
        break;
      }
      case 'expire':
        return;
    }
    await client.publish(
      this.keys.all,
      encodeMessage({ kind: 'bans', from: this.nodeId, change }),
    );
  }

  /** Keeps a ban change for the next sync: the latest state per target. */
  private remember(change: SharedBanChange): void {
    if (change.type === 'clear') {
      this.pendingBans.clear();
      this.clearPending = true;
      return;
    }
    if (change.type === 'expire') return;
    const target =
      change.type === 'ban' ? change.ban.entry.target : change.entry.target;
    this.pendingBans.delete(target);
    this.pendingBans.set(target, change);
  }

  /** Renews this process's presence, and drops processes that stopped. */
  private beat(): void {
    if (this.closed) return;
    const client = this.client;
    if (this.phase !== 'up') {
      // A sync that failed on a live connection is retried here.
      if (this.phase === 'down' && client?.status === 'ready') {
        this.requestSync();
      }
      return;
    }
    if (!client) return;
    const now = Date.now();
    client
      .multi()
      .zadd(this.keys.nodes, now + this.presenceTtl, this.nodeId)
      .pexpire(this.keys.nodes, this.presenceTtl)
      .pexpire(this.keys.presence(this.nodeId), this.presenceTtl)
      .pexpire(this.keys.held(this.nodeId), this.presenceTtl)
      // Processes whose presence expired (crashed, or cut off from Redis).
      .zremrangebyscore(this.keys.nodes, '-inf', now)
      .exec()
      .catch((err: unknown) => this.writeFailed(err));
    this.refreshHeld(client);
  }

  /** Writes and publishes the held counts changed since the last write. */
  private flushHeld(): void {
    this.heldFlush = undefined;
    const changes = this.held.takeChanges();
    // Not up: the next sync writes every count.
    const client = this.writable();
    if (!client || changes === undefined) return;
    const key = this.keys.held(this.nodeId);
    const transaction = client.multi();
    if (this.held.idle) {
      // No key is left behind by a process that holds nothing.
      transaction.del(key);
    } else {
      const entries = Object.entries(changes);
      const counts = entries.filter(([, count]) => count > 0);
      const gone = entries.filter(([, count]) => count === 0);
      if (counts.length > 0) transaction.hset(key, Object.fromEntries(counts));
      if (gone.length > 0) transaction.hdel(key, ...gone.map(([a]) => a));
      transaction.pexpire(key, this.presenceTtl);
    }
    transaction
      .publish(this.keys.all, this.heldMessage(changes, false))
      .exec()
      .then((results) => {
        for (const [err] of results ?? []) if (err) throw err;
      })
      .catch((err: unknown) => this.writeFailed(err));
  }

  private heldMessage(counts: HeldCounts, reset: boolean): string {
    return encodeMessage({ kind: 'held', from: this.nodeId, counts, reset });
  }

  /** Rereads the others' held counts (at a heartbeat), one read at a time. */
  private refreshHeld(client: RedisClient): void {
    if (this.readingHeld) return;
    this.readingHeld = true;
    this.readHeld(client)
      .catch((err: unknown) =>
        this.logger.debug(
          `Reading the held counts failed: ${describeError(err)}`,
        ),
      )
      .finally(() => (this.readingHeld = false));
  }

  /**
   * Replaces the cache of the other processes' held counts with what their
   * hashes hold now; a process no longer in the list (crashed, left) drops
   * out of it.
   */
  private async readHeld(client: RedisClient): Promise<void> {
    const mark = this.held.mark();
    const nodes = await this.otherNodes(client);
    const read = new Map<string, HeldCounts>();
    if (nodes.length > 0) {
      const pipeline = client.pipeline();
      for (const node of nodes) pipeline.hgetall(this.keys.held(node));
      const results = (await pipeline.exec()) ?? [];
      results.forEach(([err, value], i) => {
        if (err) throw err;
        try {
          read.set(nodes[i], decodeHeldCounts(value));
        } catch (cause) {
          this.rejected(
            'malformed held counts',
            `the malformed held counts of ${nodes[i]}`,
            cause,
          );
        }
      });
    }
    if (!this.closed) this.held.replace(read, mark);
  }

  /**
   * The other processes whose presence has not expired (a malformed id in
   * the list is dropped and counted).
   */
  private async otherNodes(client: RedisClient): Promise<string[]> {
    const nodes = await client.zrangebyscore(
      this.keys.nodes,
      Date.now(),
      '+inf',
    );
    return nodes.filter((node) => {
      if (node === this.nodeId) return false;
      try {
        decodeNodeId(node);
        return true;
      } catch (err) {
        this.rejected(
          'malformed process ids',
          `a malformed process id in ${this.keys.nodes}`,
          err,
        );
        return false;
      }
    });
  }

  private readPresence(
    node: string,
    text: string,
  ): ConnectionPresence | undefined {
    try {
      return decodePresence(text);
    } catch (err) {
      this.rejected(
        'malformed presence entries',
        `a malformed presence entry of ${node}`,
        err,
      );
      return undefined;
    }
  }

  /** The client for a cluster-wide query, or the error saying why not. */
  private connected(operation: string): RedisClient {
    const client = this.client;
    if (!client || client.status !== 'ready' || this.closed) {
      throw new ClusterUnavailableError(
        operation,
        new Error(
          this.closed ? 'the adapter is closed' : 'Redis is not connected',
        ),
      );
    }
    return client;
  }

  /** The client for a presence write, when this process's state is synced. */
  private writable(): RedisClient | undefined {
    if (this.phase === 'up' && !this.closed) return this.client;
    // A change during a sync may have missed it: sync once more after.
    if (this.phase === 'syncing') this.syncAgain = true;
    return undefined;
  }

  /** A write failed: Redis is in doubt until the next sync. */
  private writeFailed(err: unknown): void {
    if (this.closed) return;
    if (this.phase === 'up') this.phase = 'down';
    this.lost(describeError(err));
  }

  private lost(reason: string): void {
    if (this.closed) return;
    if (this.phase === 'up') this.phase = 'down';
    // Before the first join, init() reports a Redis that does not answer.
    if (!this.joinedOnce || this.outageLogged) return;
    this.outageLogged = true;
    this.outageSince = Date.now();
    this.dropped = 0;
    this.logger.warn(
      `Lost Redis (${reason}): serving this process's ${this.host?.presence().length ?? 0} connection(s) only. Until it is back, broadcasts and server-side events stay on this process, cluster-wide queries fail, and presence and bans are resynced on return.`,
    );
  }

  private failed(err: Error): void {
    // ioredis reports every failed reconnection attempt: the outage is
    // logged once (in lost()), the attempts at debug level.
    this.logger.debug(`Redis: ${err.message}`);
    this.lost(err.message);
  }

  /** The cluster is reachable: log a recovery, wake init(). */
  private reachable(synced: { connections: number; bans: number } | undefined) {
    if (!this.available) return;
    const first = !this.joinedOnce;
    this.joinedOnce = true;
    if (first) {
      this.logger.log(
        `Joined the cluster as ${this.nodeId}` +
          (this.outageSince === undefined
            ? ''
            : ` (Redis answered after ${seconds(this.outageSince)} s)`) +
          `: ${synced?.connections ?? 0} connection(s), ${synced?.bans ?? 0} shared ban(s).`,
      );
      this.outageLogged = false;
      this.outageSince = undefined;
      this.dropped = 0;
    } else if (this.outageLogged) {
      this.logger.log(
        `Redis is back after ${seconds(this.outageSince ?? Date.now())} s: resynced ${synced?.connections ?? 0} connection(s) and ${synced?.bans ?? 0} ban(s); ${this.dropped} cluster message(s) were not sent meanwhile.`,
      );
      this.outageLogged = false;
      this.outageSince = undefined;
      this.dropped = 0;
    }
    this.onAvailable?.();
  }
}

/** Seconds since `since`, to one decimal. */
function seconds(since: number): string {
  return ((Date.now() - since) / 1000).toFixed(1);
}

/**
 * A duration option: a positive finite number of ms (not necessarily
 * whole), or `fallback` when it is left out.
 *
 * @throws {TypeError} Otherwise.
 */
function positiveMs(
  value: number | undefined,
  fallback: number,
  name: string,
): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0) {
    throw new TypeError(
      `RedisAdapter: "${name}" must be a positive number of ms; got ${String(value)}.`,
    );
  }
  return value;
}

function unavailable(operation: string, err: unknown): ClusterUnavailableError {
  return err instanceof ClusterUnavailableError
    ? err
    : new ClusterUnavailableError(operation, err);
}

/** Rejects if `promise` has not settled within `ms`. */
async function bounded<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_, reject) => {
        timer = setTimeout(
          () => reject(new Error(`no answer within ${ms} ms`)),
          ms,
        );
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** Closes a connection politely if it can, and stops its reconnecting. */
async function quit(client: RedisClient): Promise<void> {
  if (client.status === 'ready') {
    await bounded(client.quit(), CLOSE_TIMEOUT_MS).catch(() => undefined);
  }
  client.disconnect();
}
