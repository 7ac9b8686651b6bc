import { type Direction, directionOf } from './world.js';

/** A command that takes no argument. */
export type SimpleVerb = 'look' | 'who' | 'stats' | 'help' | 'quit';

/** A line typed in the game, taken apart. */
export type Command =
  | { verb: SimpleVerb }
  | { verb: 'blank' }
  | { verb: 'say'; text: string }
  | { verb: 'go'; direction: Direction | undefined; exit: string }
  | { verb: 'unknown'; word: string };

const SIMPLE_VERBS = new Map<string, SimpleVerb>([
  ['look', 'look'],
  ['l', 'look'],
  ['who', 'who'],
  ['stats', 'stats'],
  ['terminal', 'stats'],
  ['help', 'help'],
  ['?', 'help'],
  ['quit', 'quit'],
]);

/**
 * Reads a game command: `look`, `say <text>` (or `'<text>`), `go <exit>`
 * or a bare exit (`n`, `north`), `who`, `stats`, `help`, `quit`.
 */
export function parseCommand(line: string): Command {
  const text = line.trim();
  if (text === '') return { verb: 'blank' };
  if (text.startsWith("'")) return { verb: 'say', text: text.slice(1).trim() };
  const space = text.search(/\s/);
  const word = (space === -1 ? text : text.slice(0, space)).toLowerCase();
  const rest = space === -1 ? '' : text.slice(space).trim();
  if (word === 'say') return { verb: 'say', text: rest };
  if (word === 'go') {
    return { verb: 'go', direction: directionOf(rest), exit: rest };
  }
  const direction = directionOf(word);
  if (direction !== undefined && rest === '') {
    return { verb: 'go', direction, exit: word };
  }
  const verb = SIMPLE_VERBS.get(word);
  return verb === undefined ? { verb: 'unknown', word } : { verb };
}
