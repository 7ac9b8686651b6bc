import { afterEach, describe, expect, it, jest } from '@jest/globals';
import { LogThrottle } from '../../lib/limits/log-throttle.js';

describe('LogThrottle', () => {
  afterEach(() => {
    jest.useRealTimers();
  });

  function recorder() {
    const summaries: string[] = [];
    return {
      summaries,
      summarise: (key: string, held: number) =>
        summaries.push(`${key} ${held}`),
    };
  }

  it('lets the first of each key through per window and counts the rest', () => {
    const { summaries, summarise } = recorder();
    const throttle = new LogThrottle(1000, summarise);
    expect(throttle.allow('a', 0)).toBe(true);
    expect(throttle.allow('a', 10)).toBe(false);
    expect(throttle.allow('a', 999)).toBe(false);
    expect(throttle.allow('b', 20)).toBe(true);
    expect(summaries).toEqual([]);
    // The next window: its first is let through, and the last one's count told.
    expect(throttle.allow('a', 1000)).toBe(true);
    expect(summaries).toEqual(['a 2']);
    throttle.flush();
    // b held nothing back; a's new window neither.
    expect(summaries).toEqual(['a 2']);
  });

  it('sums up a window that nothing follows when it ends', () => {
    jest.useFakeTimers({ now: 0 });
    const { summaries, summarise } = recorder();
    const throttle = new LogThrottle(1000, summarise);
    throttle.allow('a');
    throttle.allow('a');
    throttle.allow('a');
    jest.advanceTimersByTime(999);
    expect(summaries).toEqual([]);
    jest.advanceTimersByTime(1);
    expect(summaries).toEqual(['a 2']);
    // Forgotten once summed up: the next one is a first again.
    expect(throttle.allow('a')).toBe(true);
    throttle.flush();
    expect(jest.getTimerCount()).toBe(0);
  });

  it('follows at most maxKeys keys; further ones share one window', () => {
    const { summaries, summarise } = recorder();
    const throttle = new LogThrottle(1000, summarise, 2);
    expect(throttle.allow('a', 0)).toBe(true);
    expect(throttle.allow('b', 0)).toBe(true);
    expect(throttle.allow('c', 0)).toBe(true);
    expect(throttle.allow('d', 0)).toBe(false);
    expect(throttle.allow('e', 0)).toBe(false);
    throttle.flush();
    expect(summaries).toEqual(['* 2']);
  });
});
