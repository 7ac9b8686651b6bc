import { isIP } from 'node:net';
import { CLUSTER_LIMITS } from '../cluster/cluster-limits.js';
import type {
  ClusterBroadcast,
  ConnectionPresence,
  JsonValue,
  RemoteCommand,
  SharedBan,
  SharedBanChange,
} from '../cluster/cluster.interfaces.js';
import { DISCONNECT_REASONS } from '../interfaces/connection.interface.js';
import {
  boolean,
  check,
  dictionary,
  fail,
  type Field,
  integer,
  json,
  list,
  map,
  number,
  object,
  oneOf,
  optional,
  parseJson,
  shown,
  text,
  variant,
} from './cluster-schema.js';

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

// What crosses between processes, field by field. Every reader below is
// built from these definitions (cluster-schema.ts): a message that does not
// match its kind's definition exactly is refused whole.

const {
  messageLength,
  nameLength,
  addressLength,
  reasonLength,
  entries,
  jsonDepth,
} = CLUSTER_LIMITS;

/** An id (of a process, a connection, a request) or an event's name. */
const name = text(nameLength, 1);
/** A room's name (the registry takes any string, the empty one too). */
const room = text(nameLength);
/** A client's address: an IP address (or '' for a socket that had none). */
const address = check(text(addressLength), (value) =>
  value === '' || isIP(value) !== 0
    ? undefined
    : `is not an IP address: ${shown(value)}`,
);
/** A time, in ms since the epoch (as far as a `Date` goes). */
const timestamp = number(0, 8.64e15);
/** A count of sockets. */
const count = integer(0);
/** A count of sockets as a Redis hash holds it: decimal digits. */
const storedCount: Field<number> = map(
  check(text(16, 1), (value) =>
    /^\d+$/.test(value) && Number.isSafeInteger(Number(value))
      ? undefined
      : `is not a whole number: ${shown(value)}`,
  ),
  Number,
);

const encoding: Field<BufferEncoding> = map(
  check(text(16, 1), (value) =>
    Buffer.isEncoding(value)
      ? undefined
      : `is not a Buffer encoding: ${shown(value)}`,
  ),
  (value) => value as BufferEncoding,
);
/**
 * Bytes as base64, decoded. Checked without a pass of its own: a character
 * outside base64 makes the decoded bytes fewer than the length promises.
 */
const base64: Field<Buffer> = (value, at) => {
  const encoded = text(messageLength)(value, at);
  const bytes = Buffer.from(encoded, 'base64');
  const padding = encoded.endsWith('==') ? 2 : encoded.endsWith('=') ? 1 : 0;
  if (
    encoded.length % 4 !== 0 ||
    bytes.length !== (encoded.length / 4) * 3 - padding
  ) {
    fail(at, `is not base64: ${shown(encoded)}`);
  }
  return bytes;
};

/** A ban's target: an address, or a network as `address/prefix`. */
const banTarget = check(text(addressLength, 1), (value) =>
  targetFamily(value) === undefined
    ? `is not an IP address or CIDR range: ${shown(value)}`
    : undefined,
);
const banEntry = check(
  object({
    target: banTarget,
    family: oneOf(['ipv4', 'ipv6'], 'ipv4 or ipv6'),
    reason: optional(text(reasonLength)),
    createdAt: timestamp,
    expiresAt: optional(timestamp),
  }),
  (entry) =>
    targetFamily(entry.target) === entry.family
      ? undefined
      : `has a target that is not ${entry.family}: ${shown(entry.target)}`,
);
const sharedBan = object({ entry: banEntry, kick: boolean });
const banChange = variant('type', 'a known ban change', {
  ban: { ban: sharedBan },
  unban: { entry: banEntry },
  expire: { entry: banEntry },
  clear: {},
});

const command = variant('type', 'a known command', {
  join: { id: name, room },
  leave: { id: name, room },
  disconnect: {
    id: name,
    reason: oneOf(DISCONNECT_REASONS, 'a disconnect reason'),
  },
});

/** A broadcast as it travels: text, or bytes as base64. */
const broadcast = check(
  object({
    text: optional(text(messageLength)),
    bytes: optional(base64),
    room: optional(room),
    except: optional(list(text(nameLength), entries)),
    encoding: optional(encoding),
  }),
  (wire) =>
    (wire.text === undefined) === (wire.bytes === undefined)
      ? 'has both or neither of "text" and "bytes"'
      : undefined,
);

const heldCounts = dictionary(address, count, entries);
const storedHeldCounts = dictionary(address, storedCount, entries);

/** The version of the format: another one is refused, however it looks. */
const version: Field<typeof VERSION> = (value, at) =>
  value === VERSION
    ? VERSION
    : fail(
        at,
        `is an unsupported message version ${shown(value)} (this process speaks ${VERSION})`,
      );
/** What every message carries, whatever its kind. */
const envelope = { v: version, from: name };
/** Every message, by kind. */
const message = variant('kind', 'a known message kind', {
  broadcast: { ...envelope, broadcast },
  event: { ...envelope, event: name, data: json(jsonDepth) },
  bans: { ...envelope, change: banChange },
  request: { ...envelope, id: name, command },
  reply: { ...envelope, id: name, ok: boolean },
  held: { ...envelope, counts: heldCounts, reset: boolean },
});

const presence = object({
  id: name,
  node: name,
  address,
  port: integer(0, 65_535),
  connectedAt: timestamp,
  rooms: list(room, entries),
  shared: optional(json(jsonDepth, true)),
});

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
 * Reads a message published by another process: every field is checked
 * against the definition of its kind, and the whole is refused at the
 * first that does not match.
 *
 * @throws {ClusterMessageError} Saying what is wrong with it.
 * @internal
 */
export function decodeMessage(text: string): ClusterMessage {
  const { v, ...read } = message(
    parseJson(text, messageLength, 'message'),
    'message',
  );
  void v;
  if (read.kind !== 'broadcast') return read;
  const { text: line, bytes, ...rest } = read.broadcast;
  return {
    kind: 'broadcast',
    from: read.from,
    broadcast: { ...rest, data: line ?? bytes ?? '' },
  };
}

/**
 * Reads the held counts of a process as `HGETALL` gives its hash: an IP
 * address (or '') to a count, in decimal digits.
 *
 * @throws {ClusterMessageError} Unless every address is one, and every
 *   count a whole number, at least 0.
 * @internal
 */
export function decodeHeldCounts(value: unknown): HeldCounts {
  return storedHeldCounts(value, 'counts');
}

/**
 * Checks a process id as read from the list of processes.
 *
 * @throws {ClusterMessageError} Unless it is a string of 1 to
 *   `CLUSTER_LIMITS.nameLength` characters.
 * @internal
 */
export function decodeNodeId(value: unknown): string {
  return name(value, 'node');
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
  return presence(parseJson(text, messageLength, 'presence entry'), 'presence');
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
  return sharedBan(parseJson(text, messageLength, 'stored ban'), 'ban');
}

/**
 * The family of a ban target (`'ipv4'`, `'ipv6'`), or `undefined` if it is
 * neither an address nor `address/prefix` with a prefix the family allows.
 */
function targetFamily(target: string): 'ipv4' | 'ipv6' | undefined {
  const slash = target.indexOf('/');
  const ip = slash === -1 ? target : target.slice(0, slash);
  const version = isIP(ip);
  // A zone (fe80::1%eth0) is an address of one host's link, never banned.
  if (version === 0 || ip.includes('%')) return undefined;
  if (slash !== -1) {
    const prefix = target.slice(slash + 1);
    if (
      !/^\d{1,3}$/.test(prefix) ||
      Number(prefix) > (version === 4 ? 32 : 128)
    ) {
      return undefined;
    }
  }
  return version === 4 ? 'ipv4' : 'ipv6';
}
