import { randomBytes, scrypt, timingSafeEqual } from 'node:crypto';

/** The scrypt cost parameters a hash is made with. */
export interface ScryptParams {
  /** log2 of the CPU/memory cost N. */
  readonly ln: number;
  /** The block size r. */
  readonly r: number;
  /** The parallelism p. */
  readonly p: number;
}

/**
 * The parameters new hashes get: Node's own scrypt defaults (N = 2^14,
 * r = 8, p = 1, 16 MiB). They are written into every hash, so raising them
 * later leaves old hashes checkable, and `needsRehash` says which to redo.
 */
export const SCRYPT_PARAMS: ScryptParams = { ln: 14, r: 8, p: 1 };

const SALT_BYTES = 16;
const KEY_BYTES = 32;
/** What a stored hash looks like: the PHC string format, base64 unpadded. */
const FORMAT =
  /^\$scrypt\$ln=(\d{1,2}),r=(\d{1,3}),p=(\d{1,3})\$([A-Za-z0-9+/]+)\$([A-Za-z0-9+/]+)$/;

/** A stored hash, read back. */
interface ParsedHash {
  readonly params: ScryptParams;
  readonly salt: Buffer;
  readonly key: Buffer;
}

/**
 * Hashes a password with scrypt and a fresh random salt, as a PHC string:
 * `$scrypt$ln=14,r=8,p=1$<salt>$<key>`. The password itself is not kept.
 */
export async function hashPassword(
  password: string,
  params: ScryptParams = SCRYPT_PARAMS,
): Promise<string> {
  const salt = randomBytes(SALT_BYTES);
  const key = await derive(password, salt, params, KEY_BYTES);
  return `$scrypt$ln=${params.ln},r=${params.r},p=${params.p}$${b64(salt)}$${b64(key)}`;
}

/**
 * Whether a password is the one a stored hash was made from, compared in
 * constant time, with the parameters written in that hash. A hash that is
 * not in the format matches nothing.
 */
export async function verifyPassword(
  password: string,
  stored: string,
): Promise<boolean> {
  const parsed = parseHash(stored);
  if (parsed === undefined) return false;
  const key = await derive(
    password,
    parsed.salt,
    parsed.params,
    parsed.key.length,
  );
  return timingSafeEqual(key, parsed.key);
}

/** Whether a stored hash was made with other parameters than `params`. */
export function needsRehash(
  stored: string,
  params: ScryptParams = SCRYPT_PARAMS,
): boolean {
  const parsed = parseHash(stored);
  return (
    parsed === undefined ||
    parsed.params.ln !== params.ln ||
    parsed.params.r !== params.r ||
    parsed.params.p !== params.p ||
    parsed.key.length !== KEY_BYTES
  );
}

function parseHash(stored: string): ParsedHash | undefined {
  const match = FORMAT.exec(stored);
  if (match === null) return undefined;
  const [, ln, r, p, salt, key] = match;
  return {
    params: { ln: Number(ln), r: Number(r), p: Number(p) },
    salt: Buffer.from(salt, 'base64'),
    key: Buffer.from(key, 'base64'),
  };
}

/** Async scrypt, so hashing never blocks the other players. */
function derive(
  password: string,
  salt: Buffer,
  { ln, r, p }: ScryptParams,
  length: number,
): Promise<Buffer> {
  const N = 2 ** ln;
  // Room for larger parameters than Node's 32 MiB default allows.
  const maxmem = 256 * N * r;
  return new Promise((resolve, reject) => {
    scrypt(password, salt, length, { N, r, p, maxmem }, (err, key) =>
      err === null ? resolve(key) : reject(err),
    );
  });
}

function b64(bytes: Buffer): string {
  return bytes.toString('base64').replace(/=+$/, '');
}
