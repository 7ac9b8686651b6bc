import type {
  AnyConnectionContext,
  ConnectionContext,
} from '../../../lib/index.js';

/** What the chat keeps for each connection, in `ctx.data`. */
export interface ChatSession {
  /** Set once the player has chosen a valid name; until then every line is a name. */
  name?: string;
  /** Set by a right `/admin <password>`. */
  admin?: boolean;
}

/** A connection of the chat, with its typed state. */
export type Player = ConnectionContext<ChatSession>;

/** The name of any live connection (the registry does not know `ChatSession`). */
export function nameOf(ctx: AnyConnectionContext): string | undefined {
  return (ctx.data as ChatSession).name;
}
