import {
  Injectable,
  Logger,
  type OnModuleDestroy,
  Optional,
} from '@nestjs/common';
import { BlockList, isIP } from 'node:net';
import { type Observable, Subject } from 'rxjs';
import { BlockListError } from '../errors/block-list.error.js';
import type {
  SharedBan,
  SharedBanChange,
} from '../cluster/cluster.interfaces.js';
// Value imports (not `import type`): the constructor's design:paramtypes
// metadata must name the classes for Nest to inject them.
import { EarwaxAdapter } from '../cluster/earwax.adapter.js';
import { ConnectionRegistry } from '../registry/connection.registry.js';

import type {
  BanEntry,
  BanOptions,
  BlockListChange,
} from '../interfaces/block-list.interface.js';

// Re-exported: they were declared here, and are still importable from here.
export { BlockListError };
export type { BanEntry, BanOptions, BlockListChange };

/** The longest delay `setTimeout` honours (about 24.8 days). */
const MAX_TIMER_DELAY = 2 ** 31 - 1;
const IPV4_MAPPED = '::ffff:';

type Family = BanEntry['family'];

/** A target parsed and normalised. */
interface Rule {
  /** The normalised target, as {@link BanEntry.target}. */
  readonly target: string;
  readonly family: Family;
  /** The network address (the address itself for a single address). */
  readonly network: string;
  /** The prefix length; 32 or 128 for a single address. */
  readonly prefix: number;
}

/** What the service keeps for each ban. */
interface Ban {
  readonly entry: BanEntry;
  readonly rule: Rule;
  /** A list with only this ban's rule: tells which ban matches an address. */
  readonly only: BlockList;
  /** Whether it kicked the connections it matched (shared with the cluster). */
  readonly kick: boolean;
}

/**
 * The server's IP block list: single addresses and CIDR ranges, IPv4 and
 * IPv6, permanent or temporary. Every `EarwaxTransport` checks it on the
 * accept path, before the `ConnectionGuard` (refusing with reason
 * `blocked`), and again just before admitting a connection whose guard
 * answered late; ban and unban from admin commands, from any service.
 *
 * Checks go through one Node `net.BlockList`, so they cost the same however
 * many bans there are. `net.BlockList` cannot remove a rule, so the list is
 * rebuilt from the bans when one is lifted or expires: bans are rare, checks
 * are not.
 *
 * IPv4-mapped IPv6 addresses (`::ffff:203.0.113.9`) are the IPv4 address they
 * map, both as targets and as checked addresses.
 *
 * Temporary bans end on time with a single unref'd timer armed for the
 * earliest expiry (so it never keeps the process alive); an expired ban is
 * never reported, even when that timer runs late.
 *
 * With a cluster adapter (`RedisAdapter`), the list is shared: a ban, unban
 * or clear made on one process applies on every process at once (and kicks
 * there), each still checking its own local copy, so the accept path never
 * waits for the network; a temporary ban ends everywhere at its expiry.
 *
 * @example
 * ```ts
 * @Injectable()
 * export class AdminService {
 *   constructor(private readonly blockList: BlockListService) {}
 *   tempBan(target: string, minutes: number) {
 *     // Kicks the live connections it matches, with reason 'kicked'.
 *     return this.blockList.ban(target, {
 *       duration: minutes * 60_000,
 *       reason: 'flood',
 *     });
 *   }
 * }
 * ```
 *
 * @publicApi
 */
@Injectable()
export class BlockListService implements OnModuleDestroy {
  /**
   * Every change to the list, emitted once the list has changed (a check
   * made from a subscriber already sees it). Completes on module destroy.
   */
  readonly changes$: Observable<BlockListChange>;

  private readonly logger = new Logger('BlockList');
  private readonly changes = new Subject<BlockListChange>();
  /** The bans by normalised target, oldest first. */
  private readonly byTarget = new Map<string, Ban>();
  /** All the bans' rules, in one list: what checks use. */
  private blockList = new BlockList();
  private timer: NodeJS.Timeout | undefined;
  /** The earliest expiry of any ban, if any ban is temporary. */
  private nextExpiry: number | undefined;
  private destroyed = false;

  /**
   * @param registry The live connections, which a ban kicks when it matches
   *   them. Without it (outside `EarwaxModule`), bans kick nobody.
   * @param adapter Shares the list with the other processes of a cluster;
   *   without it, the list is this process's.
   */
  constructor(
    @Optional() private readonly registry?: ConnectionRegistry,
    @Optional() private readonly adapter?: EarwaxAdapter,
  ) {
    this.changes$ = this.changes.asObservable();
  }

  /** How many bans are in force. */
  get size(): number {
    this.expireIfDue();
    return this.byTarget.size;
  }

  /**
   * Bans an address or CIDR range. Banning a target that is already banned
   * replaces its ban (new reason, new expiry, new `createdAt`). Unless
   * `kick` is `false`, the live connections the ban matches are disconnected
   * with reason `'kicked'`.
   *
   * @param target An IPv4 or IPv6 address, or a CIDR range
   *   (`'203.0.113.9'`, `'10.0.0.0/8'`, `'2001:db8::/32'`).
   * @param options How long, why, and whether to kick.
   * @returns The ban, with its target normalised.
   * @throws {BlockListError} If `target` is not an address or CIDR range.
   * @throws {RangeError} If `duration` is given and is not a positive finite
   *   number.
   */
  ban(target: string, options: BanOptions = {}): BanEntry {
    const rule = parseTarget(target);
    const { duration, reason, kick = true } = options;
    if (
      duration !== undefined &&
      (typeof duration !== 'number' ||
        !Number.isFinite(duration) ||
        duration <= 0)
    ) {
      throw new RangeError(
        `Ban duration must be a positive finite number of ms; got ${String(duration)}.`,
      );
    }
    // Let a stale ban of the same target report its expiry before the new one.
    this.expireIfDue();

    const createdAt = Date.now();
    const entry = makeEntry(
      rule,
      reason,
      createdAt,
      duration === undefined ? undefined : createdAt + duration,
    );
    this.put(entry, rule, kick, '');
    this.adapter?.banChanged({ type: 'ban', ban: { entry, kick } });
    return entry;
  }

  /**
   * Lifts the ban of a target, written in any form `ban()` accepts (it is
   * normalised the same way). Bans of other targets that cover it stay.
   *
   * @param target The banned address or CIDR range.
   * @returns Whether it was banned.
   * @throws {BlockListError} If `target` is not an address or CIDR range.
   */
  unban(target: string): boolean {
    const rule = parseTarget(target);
    this.expireIfDue();
    const ban = this.byTarget.get(rule.target);
    if (!ban) return false;
    this.remove(ban, 'unban', '');
    this.adapter?.banChanged({ type: 'unban', entry: ban.entry });
    return true;
  }

  /**
   * Whether a ban in force covers an address. Cheap whatever the number of
   * bans: made for the accept path. Never throws.
   *
   * @param address An IPv4, IPv6 or IPv4-mapped IPv6 address, such as
   *   `ConnectionContext.hostname`. A zone (`fe80::1%eth0`) is ignored.
   * @returns `true` if banned; `false` otherwise, and for anything that is
   *   not an IP address.
   */
  isBlocked(address: string): boolean {
    // The usual case, a server with no bans, costs one comparison.
    if (this.byTarget.size === 0) return false;
    try {
      const checkable = toCheckable(address);
      if (!checkable) return false;
      this.expireIfDue();
      return this.blockList.check(checkable[0], checkable[1]);
    } catch {
      return false;
    }
  }

  /**
   * The ban that blocks an address: the most specific one, with the longest
   * prefix (an IPv4 prefix counts 96 bits more, IPv4 being `::ffff:0:0/96`):
   * `10.1.0.0/16` before `10.0.0.0/8`, and both before `::/0`. Two bans
   * cannot tie: equal prefixes that both match are the same target. Slower than {@link BlockListService.isBlocked} (it tries
   * each ban in turn once the address is known to be blocked): for logs and
   * admin commands, not the accept path. Never throws.
   *
   * @param address As for {@link BlockListService.isBlocked}.
   * @returns The ban, or `undefined` if the address is not blocked or not an
   *   IP address.
   */
  match(address: string): BanEntry | undefined {
    try {
      const checkable = toCheckable(address);
      if (!checkable) return undefined;
      this.expireIfDue();
      const [ip, family] = checkable;
      if (!this.blockList.check(ip, family)) return undefined;
      let best: Ban | undefined;
      for (const ban of this.byTarget.values()) {
        if (
          ban.only.check(ip, family) &&
          (!best || specificity(ban.rule) > specificity(best.rule))
        ) {
          best = ban;
        }
      }
      return best?.entry;
    } catch {
      return undefined;
    }
  }

  /** The bans in force, oldest first (a re-ban counts as new). */
  list(): BanEntry[] {
    this.expireIfDue();
    return Array.from(this.byTarget.values(), (ban) => ban.entry);
  }

  /** Lifts every ban, emitting an `'unban'` change for each. */
  clear(): void {
    this.clearHere('');
    // Sent even when this list was empty: another process's may not be.
    this.adapter?.banChanged({ type: 'clear' });
  }

  /**
   * @internal Applies a change made on another process of the cluster,
   * without sending it back. A ban whose target cannot be parsed throws
   * `BlockListError`, and changes nothing.
   */
  applyBanChange(change: SharedBanChange): void {
    const from = ' (from the cluster)';
    this.expireIfDue();
    switch (change.type) {
      case 'ban': {
        const { entry, kick } = change.ban;
        const rule = parseTarget(entry.target);
        // Already over (the message travelled long, or a clock is ahead).
        if (entry.expiresAt !== undefined && entry.expiresAt <= Date.now()) {
          return;
        }
        this.put(
          makeEntry(rule, entry.reason, entry.createdAt, entry.expiresAt),
          rule,
          kick,
          from,
        );
        return;
      }
      case 'unban':
      case 'expire': {
        const ban = this.byTarget.get(parseTarget(change.entry.target).target);
        if (!ban) return;
        // An expiry ends only the ban that expired, not a newer one.
        if (
          change.type === 'expire' &&
          ban.entry.createdAt !== change.entry.createdAt
        ) {
          return;
        }
        this.remove(ban, change.type, from);
        return;
      }
      case 'clear':
        this.clearHere(from);
        return;
    }
  }

  /** @internal The bans in force, as the cluster shares them. */
  bans(): SharedBan[] {
    this.expireIfDue();
    return Array.from(this.byTarget.values(), ({ entry, kick }) => ({
      entry,
      kick,
    }));
  }

  /**
   * @internal Makes the list exactly `bans` (the cluster's, after an
   * outage): bans that are new or differ are applied (kicking as they say),
   * bans not among them are lifted. Entries whose target cannot be parsed
   * are skipped and logged.
   */
  replaceBans(bans: readonly SharedBan[]): void {
    this.expireIfDue();
    const from = ' (cluster resync)';
    const keep = new Set<string>();
    for (const { entry, kick } of bans) {
      let rule: Rule;
      try {
        rule = parseTarget(entry.target);
      } catch (err) {
        this.logger.warn(`Skipped a shared ban: ${(err as Error).message}`);
        continue;
      }
      if (entry.expiresAt !== undefined && entry.expiresAt <= Date.now()) {
        continue;
      }
      keep.add(rule.target);
      const current = this.byTarget.get(rule.target)?.entry;
      if (
        current !== undefined &&
        current.createdAt === entry.createdAt &&
        current.expiresAt === entry.expiresAt &&
        current.reason === entry.reason
      ) {
        continue;
      }
      this.put(
        makeEntry(rule, entry.reason, entry.createdAt, entry.expiresAt),
        rule,
        kick,
        from,
      );
    }
    for (const ban of [...this.byTarget.values()]) {
      if (!keep.has(ban.rule.target)) this.remove(ban, 'unban', from);
    }
  }

  /**
   * Stops the expiry timer and completes {@link BlockListService.changes$}.
   * The list still works afterwards; temporary bans then end only when next
   * looked at, and without a change being emitted.
   */
  onModuleDestroy(): void {
    this.destroyed = true;
    clearTimeout(this.timer);
    this.timer = undefined;
    this.changes.complete();
  }

  /** Disconnects the live connections whose address `only` blocks. */
  private kick(only: BlockList): number {
    if (!this.registry) return 0;
    // Collected first: a disconnect takes the connection out of the registry.
    const matches = this.registry.filter((ctx) => {
      const checkable = toCheckable(ctx.hostname);
      return !!checkable && only.check(checkable[0], checkable[1]);
    });
    let kicked = 0;
    for (const ctx of matches) {
      try {
        ctx.disconnect('kicked');
        kicked++;
      } catch (err) {
        // One failed kick must not stop the others (the ban is made already).
        this.logger.error(`Could not kick ${ctx.toString()}`, err);
      }
    }
    return kicked;
  }

  /** Removes the expired bans if the earliest expiry has passed. */
  private expireIfDue(): void {
    // Only a number comparison unless a ban is due: cheap on the hot path.
    if (this.nextExpiry !== undefined && Date.now() >= this.nextExpiry) {
      this.expire();
    }
  }

  /** Removes the expired bans, then emits an `'expire'` change for each. */
  private expire(): void {
    const now = Date.now();
    const expired: BanEntry[] = [];
    for (const [target, ban] of this.byTarget) {
      if (ban.entry.expiresAt !== undefined && ban.entry.expiresAt <= now) {
        this.byTarget.delete(target);
        expired.push(ban.entry);
      }
    }
    if (expired.length > 0) this.rebuild();
    this.arm();
    for (const entry of expired) {
      this.logger.log(`Ban of ${entry.target} expired`);
      this.changes.next({ type: 'expire', entry });
      this.adapter?.banChanged({ type: 'expire', entry });
    }
  }

  /**
   * Puts a ban in force (replacing one of the same target), emits the
   * change, kicks if asked, and logs it (`from` says where it came from).
   */
  private put(entry: BanEntry, rule: Rule, kick: boolean, from: string) {
    const only = new BlockList();
    addRule(only, rule);
    const replaced = this.byTarget.delete(rule.target);
    // Re-inserted so that the map stays in `createdAt` order.
    this.byTarget.set(rule.target, { entry, rule, only, kick });
    // A replaced ban has the same rule: the combined list needs no rebuild.
    if (!replaced) addRule(this.blockList, rule);
    this.arm();
    this.changes.next({ type: 'ban', entry });

    const kicked = kick ? this.kick(only) : 0;
    this.logger.log(
      `Banned ${describeBan(entry)}${from}` +
        (kick ? `; kicked ${kicked} connection(s)` : ''),
    );
  }

  /** Lifts one ban and emits the change. */
  private remove(ban: Ban, type: 'unban' | 'expire', from: string): void {
    this.byTarget.delete(ban.rule.target);
    this.rebuild();
    this.arm();
    this.changes.next({ type, entry: ban.entry });
    this.logger.log(
      type === 'unban'
        ? `Unbanned ${ban.rule.target}${from}`
        : `Ban of ${ban.rule.target} expired${from}`,
    );
  }

  /** Lifts every ban here; returns how many. */
  private clearHere(from: string): number {
    this.expireIfDue();
    const lifted = Array.from(this.byTarget.values(), (ban) => ban.entry);
    if (lifted.length === 0) return 0;
    this.byTarget.clear();
    this.rebuild();
    this.arm();
    for (const entry of lifted) this.changes.next({ type: 'unban', entry });
    this.logger.log(`Cleared ${lifted.length} ban(s)${from}`);
    return lifted.length;
  }

  /** Builds the combined list again from the bans (it has no removal). */
  private rebuild(): void {
    const blockList = new BlockList();
    for (const ban of this.byTarget.values()) addRule(blockList, ban.rule);
    this.blockList = blockList;
  }

  /** (Re)arms the one expiry timer for the earliest expiry, if any. */
  private arm(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    let next: number | undefined;
    for (const { entry } of this.byTarget.values()) {
      if (
        entry.expiresAt !== undefined &&
        (next === undefined || entry.expiresAt < next)
      ) {
        next = entry.expiresAt;
      }
    }
    this.nextExpiry = next;
    if (next === undefined || this.destroyed) return;
    // Capped: a longer delay would fire at once. A capped timer finds nothing
    // due and re-arms itself.
    const delay = Math.min(Math.max(next - Date.now(), 0), MAX_TIMER_DELAY);
    this.timer = setTimeout(() => this.expire(), delay);
    // Bans must not keep the process alive.
    this.timer.unref();
  }
}

/**
 * Adds an address or CIDR range to a `net.BlockList`, parsed and normalised
 * as a ban target is (an IPv4-mapped form counts as IPv4): for other lists
 * of addresses, such as trusted proxies.
 *
 * @throws {BlockListError} If `target` is not an address or CIDR range.
 * @internal
 */
export function addAddressOrRange(blockList: BlockList, target: string): void {
  addRule(blockList, parseTarget(target));
}

/** Adds a rule to a `net.BlockList`. */
function addRule(blockList: BlockList, rule: Rule): void {
  if (rule.prefix === fullPrefix(rule.family)) {
    blockList.addAddress(rule.network, rule.family);
  } else {
    blockList.addSubnet(rule.network, rule.prefix, rule.family);
  }
}

function fullPrefix(family: Family): number {
  return family === 'ipv4' ? 32 : 128;
}

/** A rule's prefix length in IPv6 terms (IPv4 lives in `::ffff:0:0/96`). */
function specificity(rule: Rule): number {
  return rule.family === 'ipv4' ? rule.prefix + 96 : rule.prefix;
}

/** A frozen entry, with its target and family from the parsed rule. */
function makeEntry(
  rule: Rule,
  reason: string | undefined,
  createdAt: number,
  expiresAt: number | undefined,
): BanEntry {
  return Object.freeze({
    target: rule.target,
    family: rule.family,
    ...(reason !== undefined && { reason }),
    createdAt,
    ...(expiresAt !== undefined && { expiresAt }),
  });
}

function describeBan(entry: BanEntry): string {
  let text = entry.target;
  if (entry.expiresAt !== undefined) {
    text += ` until ${new Date(entry.expiresAt).toISOString()}`;
  }
  if (entry.reason !== undefined) text += ` (${entry.reason})`;
  return text;
}

/**
 * An address to check, with IPv4-mapped IPv6 turned into IPv4 and any zone
 * dropped; `undefined` if it is not an IP address.
 */
function toCheckable(address: unknown): [string, Family] | undefined {
  if (typeof address !== 'string') return undefined;
  let ip = address;
  const zone = ip.indexOf('%');
  if (zone !== -1) ip = ip.slice(0, zone);
  const version = isIP(ip);
  if (version === 4) return [ip, 'ipv4'];
  if (version !== 6) return undefined;
  if (ip.length > IPV4_MAPPED.length) {
    const head = ip.slice(0, IPV4_MAPPED.length).toLowerCase();
    const tail = ip.slice(IPV4_MAPPED.length);
    if (head === IPV4_MAPPED && isIP(tail) === 4) return [tail, 'ipv4'];
  }
  return [ip, 'ipv6'];
}

const ACCEPTED =
  'expected an IPv4 or IPv6 address or CIDR range, such as 203.0.113.9, ' +
  '10.0.0.0/8, ::1 or 2001:db8::/32';

function invalid(target: unknown, problem: string): BlockListError {
  const shown =
    typeof target === 'string'
      ? JSON.stringify(target)
      : target === null
        ? 'null'
        : `(a ${typeof target})`;
  return new BlockListError(
    target,
    `Invalid block list target ${shown}: ${problem}; ${ACCEPTED}.`,
  );
}

/**
 * Parses and normalises a ban target.
 *
 * @throws {BlockListError} If it is not an address or CIDR range.
 */
function parseTarget(target: unknown): Rule {
  if (typeof target !== 'string') throw invalid(target, 'not a string');
  if (target === '') throw invalid(target, 'empty');
  const slash = target.indexOf('/');
  const address = slash === -1 ? target : target.slice(0, slash);
  if (address.includes('%')) {
    throw invalid(target, 'an IPv6 zone is not allowed');
  }
  const version = isIP(address);
  if (version === 0) throw invalid(target, 'not an IP address');
  const max = version === 4 ? 32 : 128;
  let prefix = max;
  if (slash !== -1) {
    const text = target.slice(slash + 1);
    if (!/^\d{1,3}$/.test(text) || Number(text) > max) {
      throw invalid(
        target,
        `the prefix length must be a whole number from 0 to ${max}`,
      );
    }
    prefix = Number(text);
  }
  if (version === 4) return ipv4Rule(parseIPv4(address), prefix);

  const groups = parseIPv6(address);
  // An IPv4-mapped range (::ffff:0:0/96 or narrower) is an IPv4 range.
  if (prefix >= 96 && isMapped(groups)) {
    return ipv4Rule(((groups[6] << 16) | groups[7]) >>> 0, prefix - 96);
  }
  const network = groups.map((group, i) => {
    const bits = Math.min(Math.max(prefix - 16 * i, 0), 16);
    return group & ((0xffff << (16 - bits)) & 0xffff);
  });
  const text = formatIPv6(network);
  return {
    target: prefix === 128 ? text : `${text}/${prefix}`,
    family: 'ipv6',
    network: text,
    prefix,
  };
}

function ipv4Rule(address: number, prefix: number): Rule {
  const mask = prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
  const network = formatIPv4((address & mask) >>> 0);
  return {
    target: prefix === 32 ? network : `${network}/${prefix}`,
    family: 'ipv4',
    network,
    prefix,
  };
}

/** A dotted-quad address (valid per `isIP`) as an unsigned 32-bit number. */
function parseIPv4(text: string): number {
  return text
    .split('.')
    .reduce((value, part) => ((value << 8) | Number(part)) >>> 0, 0);
}

function formatIPv4(value: number): string {
  return [
    value >>> 24,
    (value >>> 16) & 0xff,
    (value >>> 8) & 0xff,
    value & 0xff,
  ].join('.');
}

/** An IPv6 address (valid per `isIP`, without a zone) as its eight groups. */
function parseIPv6(text: string): number[] {
  let head = text;
  const tail: number[] = [];
  const lastColon = text.lastIndexOf(':');
  if (text.includes('.', lastColon)) {
    // Embedded IPv4 (`::ffff:1.2.3.4`): the last two groups.
    const v4 = parseIPv4(text.slice(lastColon + 1));
    tail.push(v4 >>> 16, v4 & 0xffff);
    // Keep the `::` of `::1.2.3.4`, drop the lone `:` of `::ffff:1.2.3.4`.
    head = text.endsWith('::', lastColon + 1)
      ? text.slice(0, lastColon + 1)
      : text.slice(0, lastColon);
  }
  const hex = (part: string) =>
    part === '' ? [] : part.split(':').map((group) => parseInt(group, 16));
  const gap = head.indexOf('::');
  if (gap === -1) return [...hex(head), ...tail];
  const left = hex(head.slice(0, gap));
  const right = [...hex(head.slice(gap + 2)), ...tail];
  const zeros: number[] = new Array<number>(
    8 - left.length - right.length,
  ).fill(0);
  return [...left, ...zeros, ...right];
}

/** RFC 5952 text: lower case, the longest run of zero groups as `::`. */
function formatIPv6(groups: number[]): string {
  let bestStart = -1;
  let bestLength = 1; // a single zero group is not shortened
  for (let i = 0; i < groups.length;) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let end = i;
    while (end < groups.length && groups[end] === 0) end++;
    if (end - i > bestLength) {
      bestStart = i;
      bestLength = end - i;
    }
    i = end;
  }
  const hex = groups.map((group) => group.toString(16));
  if (bestStart === -1) return hex.join(':');
  return (
    hex.slice(0, bestStart).join(':') +
    '::' +
    hex.slice(bestStart + bestLength).join(':')
  );
}

function isMapped(groups: number[]): boolean {
  return (
    groups.slice(0, 5).every((group) => group === 0) && groups[5] === 0xffff
  );
}
