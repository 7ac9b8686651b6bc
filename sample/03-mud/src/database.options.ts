import type { TypeOrmModuleOptions } from '@nestjs/typeorm';
import { closeSync, openSync, readSync } from 'node:fs';
import { mkdir, open, rename } from 'node:fs/promises';
import { dirname } from 'node:path';
import { AccountEntity } from './account.entity.js';
import { CharacterEntity } from './character.entity.js';

/**
 * Where the accounts and characters are kept unless `MUD_DB` says
 * otherwise: relative to the working directory (the repository's root
 * under `npm run sample`), in the `data/` folder git ignores.
 */
export const DEFAULT_DATABASE = 'data/03-mud.sqlite';

/** How every SQLite 3 database file begins. */
const SQLITE_HEADER = Buffer.from('SQLite format 3\0', 'latin1');

/**
 * The SQLite file named by `MUD_DB`, else {@link DEFAULT_DATABASE}. It
 * need not exist yet (the game makes it).
 *
 * @throws Error naming `MUD_DB` for a path that cannot be read, or whose
 *   file is not a SQLite database: found at start, rather than by the first
 *   query with a less helpful message.
 */
export function databasePath(env: NodeJS.ProcessEnv = process.env): string {
  const path = env.MUD_DB?.trim() || DEFAULT_DATABASE;
  const head = Buffer.alloc(SQLITE_HEADER.length);
  let length: number;
  try {
    const fd = openSync(path, 'r');
    try {
      length = readSync(fd, head);
    } finally {
      closeSync(fd);
    }
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return path;
    throw new Error(`MUD_DB: cannot read ${path}: ${(err as Error).message}.`, {
      cause: err,
    });
  }
  // An empty file is a new database to sql.js.
  if (length > 0 && !head.equals(SQLITE_HEADER)) {
    throw new Error(
      `MUD_DB: ${path} is not a SQLite database; name a new file or the game's own.`,
    );
  }
  return path;
}

/**
 * TypeORM's options for the game's SQLite file, creating its folder.
 *
 * The driver is `sqljs`: SQLite compiled to WebAssembly, so no native addon
 * has to match the running Node (better-sqlite3 would be built for one Node
 * only). It holds the database in memory, reads the file at start and
 * writes the whole file after each change: right for a small game. A large
 * one would use `type: 'postgres'` with the same entities.
 *
 * `synchronize` creates the tables from the entities; a game with players
 * to keep across schema changes would use migrations instead.
 */
export async function databaseOptions(
  location: string,
): Promise<TypeOrmModuleOptions> {
  await mkdir(dirname(location), { recursive: true });
  return {
    type: 'sqljs',
    location,
    autoSave: true,
    autoSaveCallback: fileWriter(location),
    entities: [AccountEntity, CharacterEntity],
    synchronize: true,
    // A local file that cannot be opened will not open on a retry either.
    toRetry: () => false,
  };
}

/**
 * Writes each export of the database to `path` in turn, through a
 * temporary file renamed over it: a crash mid-write leaves the previous
 * file whole, and two writes never interleave (TypeORM's own save writes
 * the file in place, unordered).
 */
function fileWriter(path: string): (data: Uint8Array) => Promise<void> {
  const temporary = `${path}.tmp`;
  let last: Promise<void> = Promise.resolve();
  return (data) => {
    const write = last.then(async () => {
      const file = await open(temporary, 'w', 0o600);
      try {
        await file.writeFile(data);
        await file.sync();
      } finally {
        await file.close();
      }
      await rename(temporary, path);
    });
    // A failed write fails its own caller, not the next one.
    last = write.catch(() => undefined);
    return write;
  };
}
