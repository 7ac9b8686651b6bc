import { afterEach, describe, expect, it, jest } from '@jest/globals';
import { Logger } from '@nestjs/common';
import { RateLimiterMemory } from 'rate-limiter-flexible';
import { ConnectionLimits } from '../../lib/limits/connection-limits.js';
import { ConnectionRate } from '../../lib/limits/connection-rate.js';

afterEach(() => {
  jest.useRealTimers();
});

describe('ConnectionRate', () => {
  it('counts connections per address in fixed windows, refused ones too', () => {
    const rate = new ConnectionRate(2, 1000);
    expect(rate.consume('10.0.0.1', 0)).toBe(true);
    expect(rate.consume('10.0.0.1', 500)).toBe(true);
    expect(rate.consume('10.0.0.1', 999)).toBe(false);
    expect(rate.consume('10.0.0.2', 999)).toBe(true);
    // The window started with the first connection, at 0.
    expect(rate.consume('10.0.0.1', 1000)).toBe(true);
    expect(rate.consume('10.0.0.1', 1999)).toBe(true);
    expect(rate.consume('10.0.0.1', 1999)).toBe(false);
  });

  it('decides as RateLimiterMemory does, and at once', async () => {
    jest.useFakeTimers({ now: 0 });
    const rate = new ConnectionRate(3, 1500);
    const memory = new RateLimiterMemory({ points: 3, duration: 1.5 });
    const allowed = (ip: string) =>
      memory.consume(ip).then(
        () => true,
        () => false,
      );
    for (const [step, ip] of [
      [0, 'a'],
      [100, 'a'],
      [200, 'b'],
      [300, 'a'],
      [400, 'a'],
      [1499, 'a'],
      [1500, 'a'],
      [1600, 'b'],
      [1700, 'b'],
      [2999, 'a'],
      [3000, 'a'],
      [3000, 'a'],
    ] as const) {
      jest.setSystemTime(step);
      expect(rate.consume(ip)).toBe(await allowed(ip));
    }
  });

  it('forgets ended windows with one timer for every address', () => {
    jest.useFakeTimers({ now: 0 });
    const rate = new ConnectionRate(1, 1000);
    rate.consume('10.0.0.1');
    rate.consume('10.0.0.2');
    expect(jest.getTimerCount()).toBe(1);
    const windows = (rate as unknown as { windows: Map<string, unknown> })
      .windows;
    jest.advanceTimersByTime(500);
    rate.consume('10.0.0.3');
    jest.advanceTimersByTime(500);
    expect([...windows.keys()]).toEqual(['10.0.0.3']);
    expect(jest.getTimerCount()).toBe(1);
    jest.advanceTimersByTime(1000);
    expect(windows.size).toBe(0);
    expect(jest.getTimerCount()).toBe(0);
  });

  it('answers synchronously for a rate given as options', () => {
    const limits = new ConnectionLimits(
      false,
      { limit: 1, windowMs: 60_000 },
      new Logger(),
    );
    expect(limits.consume('10.0.0.1')).toBe(true);
    expect(limits.consume('10.0.0.1')).toBe(false);
  });
});
