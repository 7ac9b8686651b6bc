/**
 * Options of {@link BlockListService.ban}.
 *
 * @publicApi
 */
export interface BanOptions {
  /** How long the ban lasts, in ms; leave out for a permanent ban. */
  duration?: number;
  /** Why (shown in `list()` and in logs). */
  reason?: string;
  /**
   * Disconnect the live connections the new ban matches, with reason
   * `'kicked'`.
   * @default true
   */
  kick?: boolean;
}

/**
 * One ban on the block list.
 *
 * @publicApi
 */
export interface BanEntry {
  /**
   * What is banned, normalised: a single address (`'203.0.113.9'`, `'::1'`)
   * or a network with its host bits cleared (`'10.0.0.0/8'`,
   * `'2001:db8::/32'`). IPv6 is in its short lower-case form; a full-length
   * prefix (`/32`, `/128`) is given as the single address; IPv4-mapped IPv6
   * is given as IPv4 (`'::ffff:1.2.3.4'` is `'1.2.3.4'`,
   * `'::ffff:10.0.0.0/104'` is `'10.0.0.0/8'`).
   */
  readonly target: string;
  /** The address family of {@link BanEntry.target}. */
  readonly family: 'ipv4' | 'ipv6';
  /** Why, if the ban was given a reason. */
  readonly reason?: string;
  /** When the ban was made (`Date.now()`). */
  readonly createdAt: number;
  /** When a temporary ban ends (`Date.now()` based); absent if permanent. */
  readonly expiresAt?: number;
}

/**
 * A change to the block list, as {@link BlockListService.changes$} emits it:
 * a ban made (or replaced), lifted (`unban()` or `clear()`), or expired.
 *
 * @publicApi
 */
export type BlockListChange = {
  readonly type: 'ban' | 'unban' | 'expire';
  readonly entry: BanEntry;
};
