import type { HeldCounts } from './cluster-message.js';

/**
 * The sockets held per IP address, for a `maxConnectionsPerIp` that counts
 * every process: this process's own counts (what it writes to Redis, and
 * which of them changed since the last write), and a cache of the other
 * processes' counts, which the accept path reads synchronously.
 *
 * The cache is fed two ways. Each process publishes its changed counts
 * (absolute values, so a repeated or reordered write settles on the truth)
 * on the cluster channel, which keeps the caches within one pub/sub hop of
 * each other; and every heartbeat rereads all the live processes' hashes,
 * which repairs what pub/sub lost (an outage, a subscriber reconnecting)
 * and forgets a process that crashed once it leaves the list of processes.
 *
 * @internal
 */
export class SharedHeldCounts {
  private readonly local = new Map<string, number>();
  /** Local counts changed since the last write (absolute values). */
  private readonly changed = new Map<string, number>();
  private readonly remote = new Map<string, Map<string, number>>();
  /** The other processes' counts summed per address. */
  private readonly totals = new Map<string, number>();
  /**
   * Messages applied per process: a full read replaces a process's counts
   * only if none of its messages arrived meanwhile (that message may be
   * newer than what the read saw).
   */
  private readonly generations = new Map<string, number>();

  /** Whether this process holds no socket at all. */
  get idle(): boolean {
    return this.local.size === 0;
  }

  /** This process holds one more (1) or one fewer (-1) socket of `address`. */
  change(address: string, delta: number): void {
    const count = Math.max(0, (this.local.get(address) ?? 0) + delta);
    if (count > 0) this.local.set(address, count);
    else this.local.delete(address);
    this.changed.set(address, count);
  }

  /** The counts changed since the last call (0: none left), and forgets them. */
  takeChanges(): HeldCounts | undefined {
    if (this.changed.size === 0) return undefined;
    const changes = Object.fromEntries(this.changed);
    this.changed.clear();
    return changes;
  }

  /** Every count of this process, for a full write (and forgets changes). */
  takeAll(): HeldCounts {
    this.changed.clear();
    return Object.fromEntries(this.local);
  }

  /** Sockets of `address` the other processes hold, as last heard. */
  elsewhere(address: string): number {
    return this.totals.get(address) ?? 0;
  }

  /**
   * Applies another process's published counts. A count that is not a
   * whole number at least 0 is skipped (the decoder refuses such a message
   * already): no total can become `NaN` or negative.
   */
  apply(node: string, counts: HeldCounts, reset: boolean): void {
    this.generations.set(node, (this.generations.get(node) ?? 0) + 1);
    if (reset) this.forget(node);
    let own = this.remote.get(node);
    for (const [address, count] of Object.entries(counts)) {
      if (!Number.isSafeInteger(count) || count < 0) continue;
      const before = own?.get(address) ?? 0;
      if (count === before) continue;
      if (count > 0) {
        if (!own) this.remote.set(node, (own = new Map()));
        own.set(address, count);
      } else {
        own?.delete(address);
      }
      this.addTotal(address, count - before);
    }
    if (own?.size === 0) this.remote.delete(node);
  }

  /** A mark to pass to {@link replace} with what a full read found. */
  mark(): ReadonlyMap<string, number> {
    return new Map(this.generations);
  }

  /**
   * Replaces the cache with a full read of the live processes (begun at
   * `mark`): a process missing from it has left or crashed.
   */
  replace(
    read: ReadonlyMap<string, HeldCounts>,
    mark: ReadonlyMap<string, number>,
  ) {
    const nodes = new Set([...this.remote.keys(), ...read.keys()]);
    for (const node of nodes) {
      if ((this.generations.get(node) ?? 0) !== (mark.get(node) ?? 0)) {
        continue; // it published since the read began: its message is newer
      }
      this.apply(node, read.get(node) ?? {}, true);
    }
    // Keep the marks of live processes only.
    for (const node of this.generations.keys()) {
      if (!read.has(node) && !this.remote.has(node)) {
        this.generations.delete(node);
      }
    }
  }

  /** Forgets the other processes (on close). */
  clearRemote(): void {
    this.remote.clear();
    this.totals.clear();
    this.generations.clear();
  }

  private forget(node: string): void {
    const own = this.remote.get(node);
    if (!own) return;
    this.remote.delete(node);
    for (const [address, count] of own) this.addTotal(address, -count);
  }

  private addTotal(address: string, delta: number): void {
    const total = (this.totals.get(address) ?? 0) + delta;
    if (total > 0) this.totals.set(address, total);
    else this.totals.delete(address);
  }
}
