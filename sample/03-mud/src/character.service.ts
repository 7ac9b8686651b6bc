import { Injectable } from '@nestjs/common';
import { InjectRepository } from '@nestjs/typeorm';
import type { Repository } from 'typeorm';
import { CharacterEntity } from './character.entity.js';
import { ROOMS, START_ROOM } from './world.js';

/**
 * The characters, in the database: loaded at login (made, at the start,
 * on an account's first), saved on each move and at logout.
 */
@Injectable()
export class CharacterService {
  constructor(
    @InjectRepository(CharacterEntity)
    private readonly characters: Repository<CharacterEntity>,
  ) {}

  /**
   * The character of an account, created in the start room if it has none
   * yet. A room the world no longer has puts it back at the start.
   */
  async load(name: string): Promise<CharacterEntity> {
    const key = name.toLowerCase();
    let character = await this.characters.findOneBy({ key });
    if (character === null) {
      // Two logins to one new account may both get here before either is
      // in the world: the second insert is ignored.
      await this.characters
        .createQueryBuilder()
        .insert()
        .values({ key, name, room: START_ROOM })
        .orIgnore()
        .execute();
      character = await this.characters.findOneByOrFail({ key });
    }
    if (!ROOMS.has(character.room)) character.room = START_ROOM;
    return character;
  }

  /** Saves where a character stands. */
  async saveRoom(name: string, room: number): Promise<void> {
    await this.characters.update({ key: name.toLowerCase() }, { room });
  }
}
