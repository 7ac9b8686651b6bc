import { Injectable } from '@nestjs/common';
import {
  ConnectionRegistry,
  type DisconnectReason,
} from '../../../lib/index.js';
import { nameOf, type Player } from './chat-session.js';

/** Where every player starts. */
export const LOBBY = 'lobby';

const NAME = /^[A-Za-z0-9]{2,16}$/;
const ROOM = /^[a-z0-9-]{1,24}$/;

/**
 * Names and rooms. A player is in no room until named, then in exactly one;
 * rooms live in the `ConnectionRegistry` (a room exists while it has members,
 * and a player leaves every room on disconnect).
 */
@Injectable()
export class ChatService {
  constructor(private readonly registry: ConnectionRegistry) {}

  /** Takes `text` as the player's name if it is valid and free. */
  chooseName(player: Player, text: string): void {
    const problem = this.nameProblem(text);
    if (problem) {
      player.sendString(problem);
      player.sendString('What is your name?');
      return;
    }
    player.data.name = text;
    player.join(LOBBY);
    player.sendString(
      `Hello, ${text}. You are in ${LOBBY}; /help lists the commands.`,
    );
    this.registry.broadcast(`${text} has arrived.`, {
      room: LOBBY,
      except: player,
    });
  }

  /** Says `text` to the others in the player's room. */
  say(player: Player, text: string): void {
    this.registry.broadcast(`${player.data.name}: ${text}`, {
      room: this.roomOf(player),
      except: player,
    });
    player.sendString(`You say: ${text}`);
  }

  /** Moves the player to another room, telling both rooms. */
  join(player: Player, name: string): void {
    const room = name.toLowerCase();
    if (!ROOM.test(room)) {
      player.sendString(
        'Usage: /join <room> (up to 24 letters, digits or dashes).',
      );
      return;
    }
    const from = this.roomOf(player);
    if (room === from) {
      player.sendString(`You are already in ${room}.`);
      return;
    }
    const who = player.data.name;
    player.leave(from);
    this.registry.broadcast(`${who} has gone to ${room}.`, { room: from });
    this.registry.broadcast(`${who} has arrived from ${from}.`, { room });
    player.join(room);
    player.sendString(`You are now in ${room}.`);
  }

  /** Tells the player every room and how many are in each. */
  listRooms(player: Player): void {
    const rooms = this.registry
      .rooms()
      .sort()
      .map((room) => `${room} (${this.registry.roomSize(room)})`);
    player.sendString(`Rooms: ${rooms.join(', ')}.`);
  }

  /** Tells the player who is in their room. */
  who(player: Player): void {
    const room = this.roomOf(player);
    const names = this.registry.members(room).map(nameOf);
    player.sendString(`In ${room}: ${names.join(', ')}.`);
  }

  /** Tells the room a player has gone (it has already left the registry). */
  left(player: Player, reason: DisconnectReason): void {
    const who = player.data.name;
    // Unnamed players were never announced; at shutdown everyone is going.
    if (who === undefined || reason === 'server_shutdown') return;
    const text =
      reason === 'idle' ? `${who} has timed out.` : `${who} has left.`;
    this.registry.broadcast(text, { room: this.roomOf(player) });
  }

  /**
   * The player's room. Still readable in `on_disconnect`, after the registry
   * has taken the player out of it.
   */
  roomOf(player: Player): string {
    for (const room of player.rooms) return room;
    return LOBBY;
  }

  private nameProblem(name: string): string | undefined {
    if (!NAME.test(name)) return 'A name is 2 to 16 letters or digits.';
    const lower = name.toLowerCase();
    const taken = this.registry.filter(
      (other) => nameOf(other)?.toLowerCase() === lower,
    );
    if (taken.length > 0) return `${name} is taken.`;
    return undefined;
  }
}
