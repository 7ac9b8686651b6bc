/** A direction a player can walk, in full. */
export type Direction = 'north' | 'south' | 'east' | 'west' | 'up' | 'down';

/** One room of the world. */
export interface Room {
  /** Its number: what GMCP `Room.Info` calls `num`, and what exits lead to. */
  readonly num: number;
  readonly name: string;
  readonly description: string;
  /** Where each way out leads (a room number). */
  readonly exits: Readonly<Partial<Record<Direction, number>>>;
}

/** The whole world: four rooms around a town square. */
export const ROOMS: ReadonlyMap<number, Room> = new Map(
  (
    [
      {
        num: 1,
        name: 'Town Square',
        description:
          'Cobblestones ring a dry fountain. A tavern door stands to the north and a market street runs east.',
        exits: { north: 2, east: 3 },
      },
      {
        num: 2,
        name: 'The Crooked Tavern',
        description:
          'Low beams, warm ale and a fire that never quite goes out. The square is south; a ladder leads up.',
        exits: { south: 1, up: 4 },
      },
      {
        num: 3,
        name: 'Market Street',
        description:
          'Empty stalls lean against each other, waiting for market day. The square lies west.',
        exits: { west: 1 },
      },
      {
        num: 4,
        name: 'Tavern Attic',
        description:
          'Dust, old crates and a round window under the sloping roof. The ladder leads down.',
        exits: { down: 2 },
      },
    ] satisfies Room[]
  ).map((room) => [room.num, room]),
);

/** Where every player starts. */
export const START_ROOM = 1;

/** The short name of each direction, as typed and as GMCP sends exits. */
export const SHORT_DIRECTIONS: Readonly<Record<Direction, string>> = {
  north: 'n',
  south: 's',
  east: 'e',
  west: 'w',
  up: 'u',
  down: 'd',
};

const DIRECTIONS = new Map<string, Direction>(
  (Object.entries(SHORT_DIRECTIONS) as Array<[Direction, string]>).flatMap(
    ([full, short]) => [
      [full, full],
      [short, full],
    ],
  ),
);

/** The direction a word names (`n`, `north`), or `undefined`. */
export function directionOf(word: string): Direction | undefined {
  return DIRECTIONS.get(word.toLowerCase());
}

/** A room by number; throws for a number the world does not have. */
export function roomOf(num: number): Room {
  const room = ROOMS.get(num);
  if (room === undefined) throw new Error(`There is no room ${num}.`);
  return room;
}

/**
 * The `ConnectionRegistry` room of a game room: its players are its members,
 * so `registry.members(registryRoom(1))` is who stands in the square.
 */
export function registryRoom(num: number): string {
  return `room:${num}`;
}
