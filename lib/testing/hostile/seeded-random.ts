/**
 * The bytes of the random-bytes attack: a stream of chunks of random sizes
 * (1 to `maxChunkBytes`) and random content, the same for the same seed, so
 * a failure can be replayed and a test can frame the same bytes itself.
 *
 * The generator is mulberry32, written out here: Node's `crypto` cannot be
 * seeded, `Math.random` neither, and a dependency for ten lines of
 * well-known arithmetic would be more to audit than the lines themselves.
 * It is not cryptographic, and need not be.
 *
 * @param seed Any integer.
 * @param totalBytes How many bytes in all.
 * @param maxChunkBytes The largest chunk.
 * @internal
 */
export function* seededChunks(
  seed: number,
  totalBytes: number,
  maxChunkBytes: number,
): Generator<Buffer> {
  const next = mulberry32(seed);
  let left = totalBytes;
  while (left > 0) {
    const size = Math.min(left, 1 + (next() % maxChunkBytes));
    const chunk = Buffer.allocUnsafe(size);
    let i = 0;
    for (; i + 4 <= size; i += 4) chunk.writeUInt32LE(next(), i);
    for (let word = next(); i < size; i++, word >>>= 8) chunk[i] = word & 0xff;
    left -= size;
    yield chunk;
  }
}

/** mulberry32: 32 bits of state, full period, good enough for test data. */
function mulberry32(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  };
}
