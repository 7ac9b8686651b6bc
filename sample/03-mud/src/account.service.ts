import { Injectable } from '@nestjs/common';
import { randomBytes, scrypt, timingSafeEqual } from 'node:crypto';
import { promisify } from 'node:util';

const scryptAsync = promisify(scrypt) as (
  password: string,
  salt: Buffer,
  keylen: number,
) => Promise<Buffer>;

const SALT_BYTES = 16;
const KEY_BYTES = 32;

/** An account as stored: never the password, only its salted scrypt hash. */
export interface Account {
  readonly name: string;
  readonly salt: Buffer;
  readonly hash: Buffer;
}

/** What a login attempt came to. */
export type LoginResult = 'created' | 'accepted' | 'rejected';

/**
 * The accounts, in memory (they are gone when the server stops): the first
 * login under a name creates its account with that password; later logins
 * must give the same password. Hashing is async, so a login never blocks
 * the other players.
 */
@Injectable()
export class AccountService {
  private readonly accounts = new Map<string, Account>();

  /** Whether a name has an account, whatever its case. */
  exists(name: string): boolean {
    return this.accounts.has(name.toLowerCase());
  }

  /** The stored account of a name, if any. */
  find(name: string): Account | undefined {
    return this.accounts.get(name.toLowerCase());
  }

  /**
   * Logs in: creates the account if the name has none, else checks the
   * password against the stored hash in constant time.
   */
  async login(name: string, password: string): Promise<LoginResult> {
    const key = name.toLowerCase();
    const existing = this.accounts.get(key);
    if (existing !== undefined) {
      return (await this.matches(existing, password)) ? 'accepted' : 'rejected';
    }
    const salt = randomBytes(SALT_BYTES);
    const hash = await scryptAsync(password, salt, KEY_BYTES);
    // Another connection may have created it while this one was hashing.
    const raced = this.accounts.get(key);
    if (raced !== undefined) {
      return (await this.matches(raced, password)) ? 'accepted' : 'rejected';
    }
    this.accounts.set(key, { name, salt, hash });
    return 'created';
  }

  private async matches(account: Account, password: string): Promise<boolean> {
    const hash = await scryptAsync(password, account.salt, KEY_BYTES);
    return timingSafeEqual(hash, account.hash);
  }
}
