import { Column, Entity, PrimaryColumn } from 'typeorm';

/**
 * An account as stored (table `account`): a name and its password's scrypt
 * hash, never the password.
 */
@Entity({ name: 'account' })
export class AccountEntity {
  /** The name in lower case: one account per name, whatever its case. */
  @PrimaryColumn({ type: 'varchar', length: 16 })
  key!: string;

  /** The name as the account was created (`Alice`). */
  @Column({ type: 'varchar', length: 16 })
  name!: string;

  /**
   * The password's salted scrypt hash in the PHC string format
   * (`$scrypt$ln=14,r=8,p=1$<salt>$<hash>`): the parameters travel with it.
   */
  @Column({ type: 'varchar', length: 200 })
  passwordHash!: string;
}
