import { Injectable } from '@nestjs/common';
import {
  ConnectionRegistry,
  type DisconnectReason,
} from '../../../lib/index.js';
import { CharacterService } from './character.service.js';
import { nameOf, type Player, PROMPT } from './mud-session.js';
import {
  type Direction,
  registryRoom,
  type Room,
  roomOf,
  SHORT_DIRECTIONS,
  START_ROOM,
} from './world.js';

/**
 * The world in play: who stands where, looking, walking, talking. Each game
 * room is a `ConnectionRegistry` room (`room:<num>`), so the registry knows
 * who hears what, and a player leaves it on disconnect by itself.
 *
 * Methods return the lines for the acting player (the controller sends them
 * as its handler reply, followed by the prompt); other players are told at
 * once, each with a fresh prompt.
 */
@Injectable()
export class GameService {
  constructor(
    private readonly registry: ConnectionRegistry,
    private readonly characters: CharacterService,
  ) {}

  /**
   * Puts a player who has just logged in into the world, in the room its
   * character was saved in.
   */
  enter(player: Player, name: string, room: number): string[] {
    player.data.name = name;
    player.data.room = room;
    this.tellRoom(room, `${name} has entered the world.`);
    player.join(registryRoom(room));
    player.sendGmcp('Char.Name', { name, fullname: name });
    this.sendRoomInfo(player);
    return this.look(player);
  }

  /** What the player sees where they stand. */
  look(player: Player): string[] {
    const room = this.roomOfPlayer(player);
    const exits = Object.keys(room.exits);
    const others = this.registry
      .members(registryRoom(room.num))
      .filter((ctx) => ctx !== player)
      .map(nameOf);
    return [
      `[${room.name}]`,
      room.description,
      `Exits: ${exits.length === 0 ? 'none' : exits.join(', ')}.`,
      ...(others.length === 0 ? [] : [`Also here: ${others.join(', ')}.`]),
    ];
  }

  /**
   * Walks the player out through an exit, if the room has it, and saves
   * the new room before answering.
   */
  async move(player: Player, direction: Direction): Promise<string[]> {
    const from = this.roomOfPlayer(player);
    const to = from.exits[direction];
    if (to === undefined) return [`You cannot go ${direction} from here.`];
    const name = player.data.name;
    player.leave(registryRoom(from.num));
    this.tellRoom(from.num, `${name} leaves ${direction}.`);
    this.tellRoom(to, `${name} arrives.`);
    player.join(registryRoom(to));
    player.data.room = to;
    this.sendRoomInfo(player);
    await this.save(player);
    return [`You go ${direction}.`, ...this.look(player)];
  }

  /** Says something to the others in the player's room. */
  say(player: Player, text: string): string {
    if (text === '') return 'Say what?';
    this.tellRoom(
      this.roomOfPlayer(player).num,
      `${player.data.name} says, "${text}"`,
      player,
    );
    return `You say, "${text}"`;
  }

  /** Everyone logged in, where they are, and who came in over TLS. */
  who(): string[] {
    const players = this.registry.filter((ctx) => nameOf(ctx) !== undefined);
    return [
      `Players online (${players.length}):`,
      ...players.map((ctx) => {
        const secure = ctx.tls === undefined ? '' : ' (secure)';
        return `  ${nameOf(ctx)}${secure} - ${this.roomOfPlayer(ctx as Player).name}`;
      }),
    ];
  }

  /** Whether a character of that name is playing now, whatever the case. */
  isPlaying(name: string): boolean {
    const lower = name.toLowerCase();
    return (
      this.registry.filter((ctx) => nameOf(ctx)?.toLowerCase() === lower)
        .length > 0
    );
  }

  /**
   * Saves the character of a player who has gone and tells the room (the
   * player has already left the registry).
   */
  async left(player: Player, reason: DisconnectReason): Promise<void> {
    const { name, room } = player.data;
    // Not logged in: nothing to save, and nobody knew.
    if (name === undefined || room === undefined) return;
    // Awaited by the transport's close, so a shutdown saves everyone
    // before the database closes.
    await this.save(player);
    // At shutdown everyone is going at once.
    if (reason === 'server_shutdown') return;
    player.logger.log(`${name} disconnected (${reason}).`);
    this.tellRoom(room, `${name} has left the world.`);
  }

  /**
   * Tells every player in a room but `except` a line, then gives each a
   * fresh prompt. Sent one by one rather than with `registry.broadcast`, so
   * each player gets the text in the charset their client agreed to.
   */
  tellRoom(num: number, text: string, except?: Player): void {
    for (const ctx of this.registry.members(registryRoom(num))) {
      if (ctx === except) continue;
      ctx.sendString(text);
      ctx.sendPrompt(PROMPT);
    }
  }

  /** Sends GMCP `Room.Info`, for client mappers (a no-op without GMCP). */
  sendRoomInfo(player: Player): void {
    const room = this.roomOfPlayer(player);
    const exits: Record<string, number> = {};
    for (const [direction, to] of Object.entries(room.exits)) {
      exits[SHORT_DIRECTIONS[direction as Direction]] = to;
    }
    player.sendGmcp('Room.Info', { num: room.num, name: room.name, exits });
  }

  /**
   * Saves where the player's character stands. A failed write is logged
   * and the game goes on: the next move or the logout saves it again.
   */
  private async save(player: Player): Promise<void> {
    const { name, room } = player.data;
    if (name === undefined || room === undefined) return;
    try {
      await this.characters.saveRoom(name, room);
    } catch (err) {
      player.logger.error(
        `Could not save ${name}: ${err instanceof Error ? err.message : String(err)}`,
      );
    }
  }

  private roomOfPlayer(player: Player): Room {
    return roomOf(player.data.room ?? START_ROOM);
  }
}
