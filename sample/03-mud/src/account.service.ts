import { Injectable } from '@nestjs/common';
import { InjectRepository } from '@nestjs/typeorm';
import type { Repository } from 'typeorm';
import { AccountEntity } from './account.entity.js';
import { hashPassword, needsRehash, verifyPassword } from './password-hash.js';

/** What a login attempt came to. */
export type LoginResult = 'created' | 'accepted' | 'rejected';

/**
 * The accounts, in the database: the first login under a name creates its
 * account with that password; later logins must give the same password.
 * Hashing is async, so a login never blocks the other players.
 */
@Injectable()
export class AccountService {
  constructor(
    @InjectRepository(AccountEntity)
    private readonly accounts: Repository<AccountEntity>,
  ) {}

  /** Whether a name has an account, whatever its case. */
  exists(name: string): Promise<boolean> {
    return this.accounts.existsBy({ key: name.toLowerCase() });
  }

  /** The stored account of a name, if any. */
  find(name: string): Promise<AccountEntity | null> {
    return this.accounts.findOneBy({ key: name.toLowerCase() });
  }

  /**
   * Logs in: creates the account if the name has none, else checks the
   * password against the stored hash in constant time.
   */
  async login(name: string, password: string): Promise<LoginResult> {
    const existing = await this.find(name);
    if (existing !== null) return this.check(existing, password);
    const key = name.toLowerCase();
    const passwordHash = await hashPassword(password);
    // Another connection may have created it while this one was hashing:
    // then the insert is ignored and that account's password decides.
    await this.accounts
      .createQueryBuilder()
      .insert()
      .values({ key, name, passwordHash })
      .orIgnore()
      .execute();
    const stored = await this.accounts.findOneByOrFail({ key });
    if (stored.passwordHash === passwordHash) return 'created';
    return this.check(stored, password);
  }

  private async check(
    account: AccountEntity,
    password: string,
  ): Promise<LoginResult> {
    if (!(await verifyPassword(password, account.passwordHash))) {
      return 'rejected';
    }
    // Made with older scrypt parameters: the password is at hand, so the
    // hash is brought up to date.
    if (needsRehash(account.passwordHash)) {
      await this.accounts.update(
        { key: account.key },
        { passwordHash: await hashPassword(password) },
      );
    }
    return 'accepted';
  }
}
