import type {
  ClusterBroadcast,
  ConnectionPresence,
  JsonValue,
  RemoteCommand,
  SharedBan,
  SharedBanChange,
} from '../adapters/cluster.interfaces.js';
import type { BanEntry } from '../block-list.service.js';
import type { DisconnectReason } from '../interfaces/connection.interface.js';

/** The version of the message format; a message of another is refused. */
const VERSION = 1;

/**
 * What one process publishes to the others over Redis pub/sub, as JSON.
 *
 * @internal
 */
export type ClusterMessage =
  | {
      readonly kind: 'broadcast';
      readonly from: string;
      readonly broadcast: ClusterBroadcast;
    }
  | {
      readonly kind: 'event';
      readonly from: string;
      readonly event: string;
      readonly data: JsonValue;
    }
  | {
      readonly kind: 'bans';
      readonly from: string;
      readonly change: SharedBanChange;
    }
  | {
      readonly kind: 'request';
      readonly from: string;
      readonly id: string;
      readonly command: RemoteCommand;
    }
  | {
      readonly kind: 'reply';
      readonly from: string;
      readonly id: string;
      readonly ok: boolean;
    }
  | {
      /**
       * How many sockets the sender now holds per address, for the
       * addresses that changed (0: none left). With `reset`, these are all
       * its counts (it resynced, or left with `{}`).
       */
      readonly kind: 'held';
      readonly from: string;
      readonly counts: HeldCounts;
      readonly reset: boolean;
    };

/**
 * Sockets held per IP address by one process.
 *
 * @internal
 */
export type HeldCounts = Readonly<Record<string, number>>;

/**
 * A message, a presence entry or a stored ban read from Redis is not what
 * this version writes. It is dropped (and logged); nothing else is affected.
 *
 * @publicApi
 */
export class ClusterMessageError extends Error {
  override readonly name = 'ClusterMessageError';
}

/**
 * A message as JSON. Bytes travel as base64.
 *
 * @internal
 */
export function encodeMessage(message: ClusterMessage): string {
  if (message.kind !== 'broadcast') {
    return JSON.stringify({ v: VERSION, ...message });
  }
  const { data, ...rest } = message.broadcast;
  return JSON.stringify({
    v: VERSION,
    kind: 'broadcast',
    from: message.from,
    broadcast: {
      ...rest,
      ...(typeof data === 'string'
        ? { text: data }
        : { bytes: Buffer.from(data).toString('base64') }),
    },
  });
}

/**
 * Reads a message published by another process.
 *
 * @throws {ClusterMessageError} Saying what is wrong with it.
 * @internal
 */
export function decodeMessage(text: string): ClusterMessage {
  const raw = record(parseJson(text, 'message'), 'the message');
  if (raw.v !== VERSION) {
    throw new ClusterMessageError(
      `unsupported message version ${JSON.stringify(raw.v)} (this process speaks ${VERSION})`,
    );
  }
  const from = nonEmpty(raw.from, 'from');
  switch (raw.kind) {
    case 'broadcast':
      return {
        kind: 'broadcast',
        from,
        broadcast: broadcastOf(record(raw.broadcast, 'broadcast')),
      };
    case 'event':
      if (!('data' in raw)) throw new ClusterMessageError('event without data');
      return {
        kind: 'event',
        from,
        event: nonEmpty(raw.event, 'event'),
        data: raw.data as JsonValue,
      };
    case 'bans':
      return { kind: 'bans', from, change: banChangeOf(raw.change) };
    case 'request':
      return {
        kind: 'request',
        from,
        id: nonEmpty(raw.id, 'id'),
        command: commandOf(record(raw.command, 'command')),
      };
    case 'reply':
      if (typeof raw.ok !== 'boolean') {
        throw new ClusterMessageError('reply without a boolean "ok"');
      }
      return { kind: 'reply', from, id: nonEmpty(raw.id, 'id'), ok: raw.ok };
    case 'held':
      if (typeof raw.reset !== 'boolean') {
        throw new ClusterMessageError('held counts without a boolean "reset"');
      }
      return {
        kind: 'held',
        from,
        counts: decodeHeldCounts(raw.counts),
        reset: raw.reset,
      };
    default:
      throw new ClusterMessageError(
        `unknown message kind ${JSON.stringify(raw.kind)}`,
      );
  }
}

/**
 * Reads held counts (a message's, or a process's hash as `HGETALL` gives
 * it, with the numbers as strings).
 *
 * @throws {ClusterMessageError} Unless every count is a whole number, at
 *   least 0.
 * @internal
 */
export function decodeHeldCounts(value: unknown): HeldCounts {
  const raw = record(value, 'held counts');
  // No prototype: an address is only ever a key here.
  const counts = Object.create(null) as Record<string, number>;
  for (const [address, count] of Object.entries(raw)) {
    const n =
      typeof count === 'string' && /^\d+$/.test(count) ? Number(count) : count;
    if (typeof n !== 'number' || !Number.isSafeInteger(n) || n < 0) {
      throw new ClusterMessageError(
        `held count of ${JSON.stringify(address)} is not a whole number: ${JSON.stringify(count)}`,
      );
    }
    counts[address] = n;
  }
  return counts;
}

/**
 * A presence entry as stored in a node's presence hash.
 *
 * @internal
 */
export function encodePresence(presence: ConnectionPresence): string {
  return JSON.stringify(presence);
}

/**
 * Reads a presence entry.
 *
 * @throws {ClusterMessageError} Saying what is wrong with it.
 * @internal
 */
export function decodePresence(text: string): ConnectionPresence {
  const raw = record(parseJson(text, 'presence entry'), 'a presence entry');
  const rooms = raw.rooms;
  if (!Array.isArray(rooms) || !rooms.every((r) => typeof r === 'string')) {
    throw new ClusterMessageError('presence "rooms" is not a list of names');
  }
  if (raw.shared !== undefined) record(raw.shared, 'presence "shared"');
  return {
    id: nonEmpty(raw.id, 'id'),
    node: nonEmpty(raw.node, 'node'),
    address: string(raw.address, 'address'),
    port: number(raw.port, 'port'),
    connectedAt: number(raw.connectedAt, 'connectedAt'),
    rooms: rooms as string[],
    ...(raw.shared !== undefined && {
      shared: raw.shared as ConnectionPresence['shared'] & object,
    }),
  };
}

/**
 * A ban as stored under its own key.
 *
 * @internal
 */
export function encodeBan(ban: SharedBan): string {
  return JSON.stringify({ entry: ban.entry, kick: ban.kick });
}

/**
 * Reads a stored ban.
 *
 * @throws {ClusterMessageError} Saying what is wrong with it.
 * @internal
 */
export function decodeBan(text: string): SharedBan {
  return banOf(parseJson(text, 'stored ban'));
}

function parseJson(text: string, what: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch (err) {
    throw new ClusterMessageError(
      `${what} is not JSON (${(err as Error).message})`,
    );
  }
}

function record(value: unknown, what: string): Record<string, unknown> {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new ClusterMessageError(`${what} is not an object`);
  }
  return value as Record<string, unknown>;
}

function string(value: unknown, field: string): string {
  if (typeof value !== 'string') {
    throw new ClusterMessageError(`"${field}" is not a string`);
  }
  return value;
}

function nonEmpty(value: unknown, field: string): string {
  const text = string(value, field);
  if (text.length === 0) throw new ClusterMessageError(`"${field}" is empty`);
  return text;
}

function number(value: unknown, field: string): number {
  if (typeof value !== 'number' || !Number.isFinite(value)) {
    throw new ClusterMessageError(`"${field}" is not a finite number`);
  }
  return value;
}

function optional<T>(
  value: unknown,
  read: (value: unknown, field: string) => T,
  field: string,
): T | undefined {
  return value === undefined ? undefined : read(value, field);
}

function broadcastOf(raw: Record<string, unknown>): ClusterBroadcast {
  let data: string | Buffer;
  if (typeof raw.text === 'string') {
    data = raw.text;
  } else if (typeof raw.bytes === 'string') {
    data = Buffer.from(raw.bytes, 'base64');
  } else {
    throw new ClusterMessageError('broadcast without "text" or "bytes"');
  }
  const room = optional(raw.room, string, 'room');
  const except = raw.except;
  if (
    except !== undefined &&
    (!Array.isArray(except) || !except.every((id) => typeof id === 'string'))
  ) {
    throw new ClusterMessageError('broadcast "except" is not a list of ids');
  }
  const encoding = raw.encoding;
  if (
    encoding !== undefined &&
    (typeof encoding !== 'string' || !Buffer.isEncoding(encoding))
  ) {
    throw new ClusterMessageError(
      `broadcast "encoding" ${JSON.stringify(encoding)} is not a Buffer encoding`,
    );
  }
  return {
    data,
    ...(room !== undefined && { room }),
    ...(except !== undefined && { except: except as string[] }),
    ...(encoding !== undefined && { encoding: encoding as BufferEncoding }),
  };
}

function commandOf(raw: Record<string, unknown>): RemoteCommand {
  const id = nonEmpty(raw.id, 'command id');
  switch (raw.type) {
    case 'join':
    case 'leave':
      return { type: raw.type, id, room: string(raw.room, 'room') };
    case 'disconnect':
      return {
        type: 'disconnect',
        id,
        // Sent by a process of the same application: a reason it knows.
        reason: nonEmpty(raw.reason, 'reason') as DisconnectReason,
      };
    default:
      throw new ClusterMessageError(
        `unknown command ${JSON.stringify(raw.type)}`,
      );
  }
}

function entryOf(value: unknown): BanEntry {
  const raw = record(value, 'a ban entry');
  const family = raw.family;
  if (family !== 'ipv4' && family !== 'ipv6') {
    throw new ClusterMessageError('ban "family" is not ipv4 or ipv6');
  }
  const reason = optional(raw.reason, string, 'reason');
  const expiresAt = optional(raw.expiresAt, number, 'expiresAt');
  return {
    target: nonEmpty(raw.target, 'target'),
    family,
    ...(reason !== undefined && { reason }),
    createdAt: number(raw.createdAt, 'createdAt'),
    ...(expiresAt !== undefined && { expiresAt }),
  };
}

function banOf(value: unknown): SharedBan {
  const raw = record(value, 'a ban');
  if (typeof raw.kick !== 'boolean') {
    throw new ClusterMessageError('ban without a boolean "kick"');
  }
  return { entry: entryOf(raw.entry), kick: raw.kick };
}

function banChangeOf(value: unknown): SharedBanChange {
  const raw = record(value, 'a ban change');
  switch (raw.type) {
    case 'ban':
      return { type: 'ban', ban: banOf(raw.ban) };
    case 'unban':
    case 'expire':
      return { type: raw.type, entry: entryOf(raw.entry) };
    case 'clear':
      return { type: 'clear' };
    default:
      throw new ClusterMessageError(
        `unknown ban change ${JSON.stringify(raw.type)}`,
      );
  }
}
