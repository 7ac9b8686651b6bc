import type {
  ClusterBroadcast,
  ConnectionPresence,
  EarwaxAdapterHost,
  JsonValue,
  PresenceFilter,
  RemoteCommand,
  SharedBanChange,
} from './cluster.interfaces.js';

/**
 * What connects one process's `ConnectionRegistry` and `BlockListService` to
 * the other processes of a game: the same idea as a Socket.IO adapter. A TCP
 * connection lives on the process that accepted it; the adapter carries
 * broadcasts, room changes, kicks, presence, server-side events and bans
 * between processes.
 *
 * The registry does everything local itself (a broadcast is still encoded
 * once and written from one shared Buffer) and asks the adapter only about
 * the other processes. Without an adapter, `InMemoryAdapter`, a cluster of
 * one, answers: a single process behaves exactly as before. `RedisAdapter`
 * (`nestjs-earwax/redis`) spans processes and hosts.
 *
 * It is also the injection token: provide it through
 * `EarwaxModule.forRoot({ adapter })` or `forRootAsync({ adapter })`.
 *
 * The mirror methods (`presenceChanged`, `presenceRemoved`,
 * `banChanged`, `heldChanged`) are called synchronously on the paths that change local
 * state: they must return at once and never throw.
 *
 * @publicApi
 */
export abstract class EarwaxAdapter {
  /** This process's id in the cluster (the `node` of its presence). */
  abstract readonly nodeId: string;

  /**
   * Whether the other processes can be reached now. `InMemoryAdapter` has
   * none, and is always available.
   */
  abstract readonly available: boolean;

  /**
   * Starts the adapter, with what it may ask of the application. Called once,
   * when the application initialises; it should not wait longer than its
   * own startup bound, and should not throw when the cluster is
   * unreachable: the application serves its own players meanwhile.
   */
  abstract init(host: EarwaxAdapterHost): Promise<void>;

  /**
   * Stops the adapter and removes what it stored for this process. Called
   * when the application shuts down, after its transports have closed.
   */
  abstract close(): Promise<void>;

  /** A local connection was admitted, or its rooms or shared state changed. */
  abstract presenceChanged(presence: ConnectionPresence): void;

  /** A local connection left. */
  abstract presenceRemoved(id: string): void;

  /**
   * A transport of this process holds one more (`delta` 1) or one fewer
   * (`-1`) socket of `address`, for a `maxConnectionsPerIp` that counts
   * every process's sockets. A mirror method: it must return at once and
   * never throw. The default ignores it (each process counts alone).
   *
   * @param _address The client's IP address.
   * @param _delta `1` or `-1`.
   */
  // eslint-disable-next-line @typescript-eslint/no-unused-vars
  heldChanged(_address: string, _delta: 1 | -1): void {}

  /**
   * How many sockets of `address` the other processes hold, as this process
   * last heard: read synchronously on the accept path, so it must answer
   * from memory and never wait. The default (and any adapter while the
   * other processes cannot be reached) answers 0.
   *
   * @param _address The client's IP address.
   */
  // eslint-disable-next-line @typescript-eslint/no-unused-vars
  heldElsewhere(_address: string): number {
    return 0;
  }

  /** The local block list changed (not by `applyBanChange`). */
  abstract banChanged(change: SharedBanChange): void;

  /** Sends a broadcast to the other processes (this one has delivered it). */
  abstract broadcast(broadcast: ClusterBroadcast): void;

  /**
   * The connections of the other processes.
   *
   * @throws {ClusterUnavailableError} When they cannot be reached.
   */
  abstract fetchRemote(filter: PresenceFilter): Promise<ConnectionPresence[]>;

  /**
   * How many connections the other processes hold.
   *
   * @throws {ClusterUnavailableError} When they cannot be reached.
   */
  abstract countRemote(filter: PresenceFilter): Promise<number>;

  /**
   * Runs a command for a connection that is not on this process.
   *
   * @returns Whether the process holding it ran it (`false` when no process
   *   holds it).
   * @throws {ClusterUnavailableError} When the cluster cannot be reached.
   */
  abstract commandRemote(command: RemoteCommand): Promise<boolean>;

  /**
   * Sends a server-side event to the other processes.
   *
   * @returns Whether it was sent (`false` while they cannot be reached: it
   *   is dropped, not queued).
   */
  abstract serverSideEmit(event: string, data: JsonValue): boolean;
}
