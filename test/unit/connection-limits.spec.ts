import { describe, expect, it } from '@jest/globals';
import { Logger } from '@nestjs/common';
import {
  RateLimiterMemory,
  type RateLimiterAbstract,
} from 'rate-limiter-flexible';
import { ConnectionLimits } from '../../lib/limits/connection-limits.js';

class WarnRecorder extends Logger {
  readonly warnings: string[] = [];
  override warn(message: unknown): void {
    this.warnings.push(String(message));
  }
}

describe('ConnectionLimits', () => {
  it('counts held sockets per address against maxConnectionsPerIp', () => {
    const limits = new ConnectionLimits(2, false, new WarnRecorder());
    expect(limits.hold('10.0.0.1')).toBe(true);
    expect(limits.hold('10.0.0.1')).toBe(true);
    expect(limits.hold('10.0.0.1')).toBe(false);
    expect(limits.hold('10.0.0.2')).toBe(true);
    expect(limits.heldBy('10.0.0.1')).toBe(3);
    limits.release('10.0.0.1');
    limits.release('10.0.0.1');
    expect(limits.hold('10.0.0.1')).toBe(true);
    limits.release('10.0.0.1');
    limits.release('10.0.0.1');
    expect(limits.heldBy('10.0.0.1')).toBe(0);
  });

  it('adds the other processes’ sockets of an address, and tells the cluster its own', () => {
    const elsewhere = new Map([['10.0.0.1', 1]]);
    const told: string[] = [];
    const cluster = {
      heldElsewhere: (ip: string) => elsewhere.get(ip) ?? 0,
      heldChanged: (ip: string, delta: 1 | -1) =>
        void told.push(`${ip}${delta}`),
    };
    const limits = new ConnectionLimits(
      2,
      false,
      new WarnRecorder(),
      () => cluster,
    );
    expect(limits.hold('10.0.0.1')).toBe(true);
    // One here and one elsewhere: a second here would be the third.
    expect(limits.hold('10.0.0.1')).toBe(false);
    expect(limits.heldBy('10.0.0.1')).toBe(3);
    expect(limits.hold('10.0.0.2')).toBe(true);
    limits.release('10.0.0.1');
    elsewhere.clear();
    expect(limits.hold('10.0.0.1')).toBe(true);
    expect(told).toEqual([
      '10.0.0.11',
      '10.0.0.11',
      '10.0.0.21',
      '10.0.0.1-1',
      '10.0.0.11',
    ]);
  });

  it('neither asks nor tells the cluster without a per-address cap', () => {
    const cluster = {
      heldElsewhere: (): number => {
        throw new Error('asked');
      },
      heldChanged: (): void => {
        throw new Error('told');
      },
    };
    const limits = new ConnectionLimits(
      false,
      false,
      new WarnRecorder(),
      () => cluster,
    );
    expect(limits.hold('10.0.0.1')).toBe(true);
    limits.release('10.0.0.1');
    expect(limits.heldBy('10.0.0.1')).toBe(0);
  });

  it('never refuses without a per-address cap or a rate', () => {
    const limits = new ConnectionLimits(false, false, new WarnRecorder());
    for (let i = 0; i < 1000; i++) expect(limits.hold('10.0.0.1')).toBe(true);
    expect(limits.consume('10.0.0.1')).toBe(true);
  });

  it('limits new connections per address and window', async () => {
    const limits = new ConnectionLimits(
      false,
      { limit: 2, windowMs: 60_000 },
      new WarnRecorder(),
    );
    expect(await limits.consume('10.0.0.1')).toBe(true);
    expect(await limits.consume('10.0.0.1')).toBe(true);
    expect(await limits.consume('10.0.0.1')).toBe(false);
    expect(await limits.consume('10.0.0.2')).toBe(true);
  });

  it('uses a given rate-limiter-flexible limiter', async () => {
    const limiter = new RateLimiterMemory({ points: 1, duration: 60 });
    const limits = new ConnectionLimits(false, limiter, new WarnRecorder());
    expect(await limits.consume('10.0.0.1')).toBe(true);
    expect(await limits.consume('10.0.0.1')).toBe(false);
    expect((await limiter.get('10.0.0.1'))?.consumedPoints).toBe(2);
  });

  it('admits and warns when the limiter itself fails', async () => {
    const broken = {
      consume: () => Promise.reject(new Error('store is down')),
    } as unknown as RateLimiterAbstract;
    const logger = new WarnRecorder();
    const limits = new ConnectionLimits(false, broken, logger);
    expect(await limits.consume('10.0.0.1')).toBe(true);
    expect(logger.warnings).toEqual([
      'Connection rate limiter failed; admitting 10.0.0.1: store is down',
    ]);
  });
});
