import { Column, Entity, JoinColumn, OneToOne, PrimaryColumn } from 'typeorm';
import { AccountEntity } from './account.entity.js';

/**
 * A character as stored (table `character`): whose it is and where it
 * stands. One per account here, under the account's key.
 */
@Entity({ name: 'character' })
export class CharacterEntity {
  /** Its account's key (the name in lower case). */
  @PrimaryColumn({ type: 'varchar', length: 16 })
  key!: string;

  /** The account it belongs to; deleting the account deletes it. */
  @OneToOne(() => AccountEntity, { onDelete: 'CASCADE' })
  @JoinColumn({ name: 'key' })
  account?: AccountEntity;

  /** The character's name, as shown to the other players. */
  @Column({ type: 'varchar', length: 16 })
  name!: string;

  /** The room it stands in (a room number of `world.ts`). */
  @Column({ type: 'integer' })
  room!: number;
}
