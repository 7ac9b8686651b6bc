/** A line such as `/join kitchen`, taken apart. */
export interface Command {
  /** The word after the slash, in lower case: `join`. */
  verb: string;
  /** The words after it: `['kitchen']`. */
  args: string[];
  /** Everything after the verb, as typed (spaces kept), trimmed. */
  rest: string;
}

/** The command in a line, or `undefined` if the line does not start with `/`. */
export function parseCommand(line: string): Command | undefined {
  const match = /^\/(\S*)\s*(.*)$/s.exec(line.trim());
  if (!match) return undefined;
  const rest = match[2].trim();
  return {
    verb: match[1].toLowerCase(),
    args: rest === '' ? [] : rest.split(/\s+/),
    rest,
  };
}
