import type { BanEntry } from '../interfaces/block-list.interface.js';
import type { DisconnectReason } from '../interfaces/connection.interface.js';

/**
 * A value that survives `JSON.stringify` and `JSON.parse` unchanged: what
 * crosses between processes (shared presence state, server-side events).
 *
 * @publicApi
 */
export type JsonValue =
  string | number | boolean | null | JsonValue[] | { [key: string]: JsonValue };

/**
 * The state of a connection its application chose to share with the whole
 * cluster (`ConnectionRegistry.share()`): a player's name, level, zone.
 *
 * @publicApi
 */
export type SharedState = { readonly [key: string]: JsonValue };

/**
 * One live connection as every process of the cluster sees it: what
 * `ConnectionRegistry.fetchConnections()` lists.
 *
 * @publicApi
 */
export interface ConnectionPresence {
  /** The connection's `ConnectionContext.id`. */
  readonly id: string;
  /** The process (adapter node) that holds the connection. */
  readonly node: string;
  /** The client's IP address (`ConnectionContext.hostname`). */
  readonly address: string;
  /** The client's port. */
  readonly port: number;
  /** When the connection was accepted (ms since the epoch). */
  readonly connectedAt: number;
  /** The rooms it is in. */
  readonly rooms: readonly string[];
  /** What the application shared of it, if anything. */
  readonly shared?: SharedState;
}

/**
 * Which connections a cluster-wide query covers.
 *
 * @publicApi
 */
export interface PresenceFilter {
  /** Only the members of this room. */
  readonly room?: string;
}

/**
 * A broadcast as it travels to the other processes of a cluster: each
 * delivers it to its own connections.
 *
 * @publicApi
 */
export interface ClusterBroadcast {
  /** The line without its terminator: text, or bytes sent as they are. */
  readonly data: string | Uint8Array;
  /** Only the members of this room. */
  readonly room?: string;
  /** Ids of connections to leave out. */
  readonly except?: readonly string[];
  /** How to encode text; without it, each connection's own encoding. */
  readonly encoding?: BufferEncoding;
}

/**
 * Something to do to one connection, wherever in the cluster it is.
 *
 * @publicApi
 */
export type RemoteCommand =
  | {
      readonly type: 'join' | 'leave';
      /** The connection's id. */
      readonly id: string;
      readonly room: string;
    }
  | {
      readonly type: 'disconnect';
      /** The connection's id. */
      readonly id: string;
      readonly reason: DisconnectReason;
    };

/**
 * An event one process sent the others with
 * `ConnectionRegistry.serverSideEmit()`, for game logic that spans processes
 * (a world event, a server-wide announcement, a cache to drop).
 *
 * @publicApi
 */
export interface ServerSideEvent {
  /** The event's name. */
  readonly event: string;
  /** Its data, as sent (JSON). */
  readonly data: JsonValue;
  /** The process that sent it. */
  readonly node: string;
}

/**
 * A ban as the cluster shares it: the entry, and whether it kicks the live
 * connections it matches.
 *
 * @publicApi
 */
export interface SharedBan {
  readonly entry: BanEntry;
  readonly kick: boolean;
}

/**
 * A change to the block list made on one process, for the others to apply.
 *
 * @publicApi
 */
export type SharedBanChange =
  | { readonly type: 'ban'; readonly ban: SharedBan }
  | { readonly type: 'unban' | 'expire'; readonly entry: BanEntry }
  | { readonly type: 'clear' };

/**
 * What an adapter may ask of the application it serves: deliver what other
 * processes sent, and read or apply this process's state.
 *
 * @publicApi
 */
export interface EarwaxAdapterHost {
  /**
   * Delivers a broadcast sent by another process to this one's connections.
   *
   * @returns How many connections it was queued to.
   */
  deliver(broadcast: ClusterBroadcast): number;
  /**
   * Runs a command for a connection of this process.
   *
   * @returns Whether the connection is here (and the command was run).
   */
  execute(command: RemoteCommand): boolean;
  /** This process's live connections. */
  presence(): ConnectionPresence[];
  /** Passes on a server-side event sent by another process. */
  receive(event: ServerSideEvent): void;
  /** Applies a block list change made on another process (not sent back). */
  applyBanChange(change: SharedBanChange): void;
  /** The bans in force here. */
  bans(): SharedBan[];
  /**
   * Makes the block list exactly `bans` (after an outage): adds and replaces
   * what differs, lifts what is not in it.
   */
  replaceBans(bans: readonly SharedBan[]): void;
  /**
   * Counts a message from another process (or a record of another process
   * read back from the adapter's store) that the adapter dropped as
   * malformed, in `EarwaxMetrics` (`clusterMessagesRejected`,
   * `earwax_cluster_messages_rejected_total`). An adapter checks every
   * field of what it receives before anything of it is applied, and calls
   * this once for each it drops.
   */
  messageRejected(): void;
}
