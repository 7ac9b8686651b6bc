import type {
  AnyConnectionContext,
  ConnectionContext,
  TerminalInfo,
  WindowSize,
} from '../../../lib/index.js';

/** What the MUD keeps for each connection, in `ctx.data`. */
export interface MudSession {
  /** The character's name, once logged in; until then every line is login. */
  name?: string;
  /** The room the character stands in (a room number), once logged in. */
  room?: number;
  /** While logging in: the name given, whose password is awaited. */
  loginName?: string;
  /** Whether `loginName` has no account yet (this login creates it). */
  newAccount?: boolean;
  /** Wrong passwords so far on this connection. */
  failures?: number;
  /** The client's name and version, from GMCP `Core.Hello`. */
  client?: string;
  /** What the client told about its terminal (TTYPE / MTTS). */
  terminal?: TerminalInfo;
  /** The client's window size (NAWS), as last told. */
  window?: WindowSize;
}

/** A connection of the MUD, with its typed state. */
export type Player = ConnectionContext<MudSession>;

/** The character name of any live connection, if it has logged in. */
export function nameOf(ctx: AnyConnectionContext): string | undefined {
  return (ctx.data as MudSession).name;
}

/** The prompt shown after every response, once logged in. */
export const PROMPT = '> ';
