import { Injectable } from '@nestjs/common';

/**
 * The addresses that may not connect. Seeded from the `BLOCKED` environment
 * variable (comma-separated IPs); a real game would keep it in a database.
 */
@Injectable()
export class BlockListService {
  private readonly blocked = new Set(
    (process.env.BLOCKED ?? '')
      .split(',')
      .map((ip) => ip.trim())
      .filter(Boolean),
  );

  /** Whether `ip` is blocked. */
  isBlocked(ip: string): boolean {
    return this.blocked.has(ip);
  }

  /** Blocks `ip` from now on. */
  block(ip: string): void {
    this.blocked.add(ip);
  }
}
