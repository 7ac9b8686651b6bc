import { Inject, Injectable } from '@nestjs/common';
import { createHash, timingSafeEqual } from 'node:crypto';

/** The injection token of the admin password (`undefined`: no admins). */
export const ADMIN_PASSWORD = Symbol('ADMIN_PASSWORD');

/** Checks `/admin` passwords against the configured one. */
@Injectable()
export class AdminService {
  private readonly digest: Buffer | undefined;

  constructor(@Inject(ADMIN_PASSWORD) password: string | undefined) {
    this.digest = password === undefined ? undefined : sha256(password);
  }

  /** Whether admin commands exist at all (a password is configured). */
  get enabled(): boolean {
    return this.digest !== undefined;
  }

  /** Whether `password` is the admin password, compared in constant time. */
  check(password: string): boolean {
    return (
      this.digest !== undefined &&
      timingSafeEqual(sha256(password), this.digest)
    );
  }
}

function sha256(text: string): Buffer {
  return createHash('sha256').update(text).digest();
}
