/**
 * The package's public surface is a deliberate choice: the root entry
 * exports what a game uses, `nestjs-earwax/telnet` the telnet codec for
 * tools and bots, `nestjs-earwax/cluster` what an adapter author needs, and
 * each other entry its own feature. Every exported name is listed, per
 * entry, in public-surface.json, so adding, removing or moving one shows up
 * in review as a change of that file; every exported declaration carries a
 * TSDoc comment; and every type a public signature names can be imported
 * from some entry.
 *
 * After a deliberate change of the surface, update public-surface.json to
 * the names this test prints.
 */
import { beforeAll, describe, expect, it } from '@jest/globals';
import { readFileSync } from 'node:fs';
import { entryPoints } from './fixtures/package-layout.js';
import {
  docOf,
  documentedDeclarations,
  LIST_FILE,
  placeOf,
  readSurface,
  unreachableTypes,
  type Surface,
} from './fixtures/public-surface.js';

/** Compiling lib/ once for all the checks takes a few seconds. */
const SETUP_MS = 60_000;

describe('the public surface', () => {
  let surface: Surface;

  beforeAll(() => {
    surface = readSurface();
  }, SETUP_MS);

  it('reads every entry point of package.json, each exporting something', () => {
    expect(surface.entries.map((entry) => entry.subpath)).toEqual(
      entryPoints().map((entry) => entry.subpath),
    );
    const empty = surface.entries
      .filter((entry) => entry.names.length === 0)
      .map((entry) => entry.subpath);
    expect(empty).toEqual([]);
  });

  it('exports exactly the names public-surface.json lists, entry by entry', () => {
    const committed = JSON.parse(readFileSync(LIST_FILE, 'utf8')) as Record<
      string,
      string[]
    >;
    const actual = Object.fromEntries(
      surface.entries.map((entry) => [
        entry.subpath,
        entry.names.map((name) => name.listed),
      ]),
    );
    expect(actual).toEqual(committed);
  });

  it('gives every exported declaration a TSDoc comment', () => {
    const undocumented: string[] = [];
    for (const entry of surface.entries) {
      for (const name of entry.names) {
        const declarations = documentedDeclarations(name);
        if (declarations.length === 0) {
          undocumented.push(
            `${entry.subpath} ${name.name}: declared outside lib/`,
          );
        }
        for (const declaration of declarations) {
          if (docOf(declaration) === '') {
            undocumented.push(
              `${entry.subpath} ${name.name} (${placeOf(declaration)})`,
            );
          }
        }
      }
    }
    expect(undocumented).toEqual([]);
  });

  it('exports nothing marked @internal (the build strips its declarations)', () => {
    const internal = surface.entries.flatMap((entry) =>
      entry.names
        .filter((name) =>
          /@internal\b/.test(name.declarations.map(docOf).join(' ')),
        )
        .map((name) => `${entry.subpath} ${name.name}`),
    );
    expect(internal).toEqual([]);
  });

  it('lets users import every type a public signature names', () => {
    expect(unreachableTypes(surface)).toEqual([]);
  });
});
