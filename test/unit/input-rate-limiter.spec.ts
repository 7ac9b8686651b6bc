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

function takeMany(limiter: InputRateLimiter, n: number, size = 1) {
  const verdicts: RateVerdict[] = [];
  for (let i = 0; i < n; i++) verdicts.push(limiter.take(size));
  return verdicts;
}

describe('InputRateLimiter', () => {
  it('passes a burst, warns on the first drop, then drops, then floods', () => {
    const limiter = new InputRateLimiter(rate, 0);
    expect(takeMany(limiter, 6)).toEqual([
      'pass',
      'pass',
      'pass',
      'warn',
      'drop',
      'flood',
    ]);
  });

  it('refills lines at their rate, up to the burst', () => {
    const limiter = new InputRateLimiter(rate, 0);
    takeMany(limiter, 3);
    limiter.refill(100); // 10 lines/s: one line per 100 ms
    expect(takeMany(limiter, 2)).toEqual(['pass', 'warn']);
    limiter.refill(100_000);
    expect(takeMany(limiter, 4)).toEqual(['pass', 'pass', 'pass', 'warn']);
  });

  it('charges bytes: a line larger than the bytes left is dropped', () => {
    const limiter = new InputRateLimiter(rate, 0);
    expect(limiter.take(40)).toBe('pass');
    expect(limiter.take(20)).toBe('warn');
    expect(limiter.take(10)).toBe('pass');
    limiter.refill(200); // 100 bytes/s: 20 bytes in 200 ms
    expect(limiter.take(20)).toBe('pass');
  });

  it('starts a new episode once the line bucket is full again', () => {
    const limiter = new InputRateLimiter(rate, 0);
    expect(takeMany(limiter, 5)).toEqual([
      'pass',
      'pass',
      'pass',
      'warn',
      'drop',
    ]);
    limiter.refill(100); // partly refilled: same episode
    expect(takeMany(limiter, 2)).toEqual(['pass', 'flood']);
    const calm = new InputRateLimiter(rate, 0);
    takeMany(calm, 5);
    calm.refill(1000); // full again: counted from zero, warned again
    expect(takeMany(calm, 5)).toEqual(['pass', 'pass', 'pass', 'warn', 'drop']);
  });

  it('floods at the first drop when no drops are allowed', () => {
    const strict = new InputRateLimiter(
      { ...rate, dropsBeforeDisconnect: 0 },
      0,
    );
    expect(takeMany(strict, 4)).toEqual(['pass', 'pass', 'pass', 'flood']);
  });

  it('ignores a clock that goes backwards', () => {
    const limiter = new InputRateLimiter(rate, 1000);
    takeMany(limiter, 3);
    limiter.refill(500);
    expect(limiter.take(1)).toBe('warn');
  });
});
