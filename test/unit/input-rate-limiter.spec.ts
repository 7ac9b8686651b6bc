import { describe, expect, it } from '@jest/globals';
import {
  InputRateLimiter,
  type InputRate,
  type RateVerdict,
} from '../../lib/limits/input-rate-limiter.js';

const rate: InputRate = {
  linesPerMs: 10 / 1000,
  lineBurst: 3,
  bytesPerMs: 100 / 1000,
  byteBurst: 50,
  dropsBeforeDisconnect: 2,
};

function takeMany(limiter: InputRateLimiter, n: number) {
  const verdicts: RateVerdict[] = [];
  for (let i = 0; i < n; i++) verdicts.push(limiter.take());
  return verdicts;
}

describe('InputRateLimiter', () => {
  it('passes a burst of events, warns on the first drop, then drops, then floods', () => {
    const limiter = new InputRateLimiter(rate, 0);
    expect(limiter.takeChunk(10, 0)).toBe('pass');
    expect(takeMany(limiter, 6)).toEqual([
      'pass',
      'pass',
      'pass',
      'warn',
      'drop',
      'flood',
    ]);
  });

  it('refills events at their rate, up to the burst', () => {
    const limiter = new InputRateLimiter(rate, 0);
    takeMany(limiter, 3);
    limiter.takeChunk(0, 100); // 10 events/s: one per 100 ms
    expect(takeMany(limiter, 2)).toEqual(['pass', 'warn']);
    limiter.takeChunk(0, 100_000);
    expect(takeMany(limiter, 4)).toEqual(['pass', 'pass', 'pass', 'warn']);
  });

  it('charges every byte of every chunk, whatever its events', () => {
    const limiter = new InputRateLimiter(rate, 0);
    // 40 bytes that hold no event at all (telnet protocol, a partial line).
    expect(limiter.takeChunk(40, 0)).toBe('pass');
    expect(limiter.takeChunk(10, 0)).toBe('pass');
    // The bucket is empty: the next byte is over.
    expect(limiter.takeChunk(1, 0)).toBe('warn');
    // 100 bytes/s: 20 bytes in 200 ms pay the debt of 1 and 19 more.
    expect(limiter.takeChunk(19, 200)).toBe('pass');
    expect(limiter.take()).toBe('pass');
  });

  it('drops every event of a chunk over the byte rate, counting the chunk once', () => {
    const limiter = new InputRateLimiter(rate, 0);
    expect(limiter.takeChunk(60, 0)).toBe('warn');
    // Event tokens are left, but the chunk is over: its events drop quietly.
    expect(takeMany(limiter, 5)).toEqual(['drop', 'drop', 'drop', 'drop', 'drop']); // prettier-ignore
    // The debt of 10 bytes is paid after 100 ms; a chunk still in debt is
    // one more drop, and the one after that floods.
    expect(limiter.takeChunk(1, 50)).toBe('drop');
    expect(limiter.takeChunk(1, 60)).toBe('flood');
  });

  it('keeps the debt: a chunk far over the rate is paid for before input passes again', () => {
    const limiter = new InputRateLimiter({ ...rate, dropsBeforeDisconnect: 100 }, 0); // prettier-ignore
    expect(limiter.takeChunk(550, 0)).toBe('warn'); // 500 bytes in debt
    expect(limiter.takeChunk(0, 4_000)).toBe('drop'); // 100 still owed
    expect(limiter.take()).toBe('drop');
    expect(limiter.takeChunk(0, 5_000)).toBe('pass');
    expect(limiter.take()).toBe('pass');
  });

  it('starts a new episode once both buckets are full again', () => {
    const limiter = new InputRateLimiter(rate, 0);
    expect(takeMany(limiter, 5)).toEqual([
      'pass',
      'pass',
      'pass',
      'warn',
      'drop',
    ]);
    limiter.takeChunk(0, 100); // partly refilled: same episode
    expect(takeMany(limiter, 2)).toEqual(['pass', 'flood']);

    const calm = new InputRateLimiter(rate, 0);
    takeMany(calm, 5);
    calm.takeChunk(0, 1000); // full again: counted from zero, warned again
    expect(takeMany(calm, 5)).toEqual(['pass', 'pass', 'pass', 'warn', 'drop']);

    // Event tokens full but bytes still in debt: the same episode.
    const owing = new InputRateLimiter(rate, 0);
    expect(owing.takeChunk(100, 0)).toBe('warn');
    expect(owing.takeChunk(0, 400)).toBe('drop'); // events full, 10 owed
    expect(owing.takeChunk(0, 500)).toBe('pass'); // bytes at 0, not full
    expect(takeMany(owing, 4)).toEqual(['pass', 'pass', 'pass', 'flood']);
  });

  it('floods at the first drop when no drops are allowed', () => {
    const strict = new InputRateLimiter(
      { ...rate, dropsBeforeDisconnect: 0 },
      0,
    );
    expect(takeMany(strict, 4)).toEqual(['pass', 'pass', 'pass', 'flood']);
    const bytes = new InputRateLimiter({ ...rate, dropsBeforeDisconnect: 0 }, 0); // prettier-ignore
    expect(bytes.takeChunk(51, 0)).toBe('flood');
  });

  it('ignores a clock that goes backwards', () => {
    const limiter = new InputRateLimiter(rate, 1000);
    takeMany(limiter, 3);
    limiter.takeChunk(0, 500);
    expect(limiter.take()).toBe('warn');
  });
});
