import { randomFillSync } from 'node:crypto';

/**
 * Random bytes for this many ids are drawn at a time (16 KiB): a draw costs
 * tens of microseconds however small, so it is shared by many connections.
 */
const BATCH = 1024;
const random = Buffer.alloc(16 * BATCH);
let next = BATCH;
/** The text of the id being made: hex digits written in place. */
const text = Buffer.from('00000000-0000-4000-8000-000000000000', 'latin1');
/** Where each of the 16 bytes' two hex digits go in `text`. */
const AT = [0, 2, 4, 6, 9, 11, 14, 16, 19, 21, 24, 26, 28, 30, 32, 34];
const HEX = Buffer.from('0123456789abcdef', 'latin1');

/**
 * A new connection id: a random (version 4) UUID, in lower case, as
 * `crypto.randomUUID()` makes it, from the same cryptographic source.
 *
 * Written here because `randomUUID()` builds its text by concatenating 20
 * pieces: a tree of 14 cons strings (about 480 bytes) that lives as long as
 * the connection, and more garbage on the way. This writes the digits into
 * one buffer and makes one flat 36-character string of it (56 bytes).
 *
 * @internal
 */
export function connectionId(): string {
  if (next === BATCH) {
    randomFillSync(random);
    next = 0;
  }
  const at = 16 * next++;
  // RFC 9562: version 4 in the high nibble of byte 6, variant 10 in the
  // high bits of byte 8.
  random[at + 6] = (random[at + 6] & 0x0f) | 0x40;
  random[at + 8] = (random[at + 8] & 0x3f) | 0x80;
  for (let i = 0; i < 16; i++) {
    const byte = random[at + i];
    const to = AT[i];
    text[to] = HEX[byte >> 4];
    text[to + 1] = HEX[byte & 0x0f];
  }
  return text.toString('latin1');
}
