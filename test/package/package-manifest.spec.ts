/**
 * The published package is only as correct as its manifest: whatever `lib/`
 * imports ships in the compiled output and its declarations, so it must be
 * declared; the optional peers must stay behind their own entry points; and
 * every `exports` entry must name its types and a default. What `npm pack`
 * really ships, and a fresh install of it, are checked in
 * packed-tarball.spec.ts.
 */
import { describe, expect, it } from '@jest/globals';
import { existsSync, readFileSync } from 'node:fs';
import { join, sep } from 'node:path';
import ts from 'typescript';
import {
  chainTo,
  entryPoints,
  fromRoot,
  importsOf,
  isDual,
  LOADED_OPTIONAL_PEERS,
  libDir,
  libSources,
  manifest,
  OPTIONAL_PEER_HOMES,
  optionalPeers,
  reachFrom,
} from './fixtures/package-layout.js';

/** The `lib/` folder an entry point is built from: `./redis` → `lib/redis/`. */
function folderOf(subpath: string): string {
  return join(libDir, subpath.slice(2)) + sep;
}

/** `problem` lines for each module an entry reaches that it must not. */
function foreignPeersReached(subpath: string, source: string): string[] {
  const reached = reachFrom(source);
  const problems: string[] = [];
  for (const file of reached.keys()) {
    for (const peer of importsOf(file).packages) {
      const home = OPTIONAL_PEER_HOMES[peer];
      if (home !== undefined && home !== subpath) {
        problems.push(
          `'${subpath}' reaches ${peer}: ${chainTo(reached, file)}`,
        );
      }
    }
  }
  return problems;
}

describe('package manifest', () => {
  it('is ESM, and its main and types are the "." entry\'s require entry, for node10 resolvers', () => {
    const main = manifest.exports['.'];
    expect(isDual(main)).toBe(true);
    expect({
      type: manifest.type,
      main: manifest.main,
      types: manifest.types,
    }).toEqual({
      type: 'module',
      main: isDual(main) ? main.require.default : 'a "." entry',
      types: isDual(main) ? main.require.types : 'a "." entry',
    });
    expect(manifest.files).toContain('dist');
  });

  it('maps every other subpath to its require declarations in typesVersions, for node10 resolvers', () => {
    // node10 resolution (TypeScript's `moduleResolution: node10`) reads no
    // `exports`: `nestjs-earwax/testing` resolves only through typesVersions.
    const expected = Object.fromEntries(
      entryPoints()
        .filter((entry) => entry.subpath !== '.')
        .map((entry) => [entry.subpath.slice(2), [entry.requireTypes]]),
    );
    expect(Object.keys(expected).length).toBeGreaterThan(0);
    expect(manifest.typesVersions).toEqual({ '*': expected });
  });

  it('names the repository, its issues and the README as homepage', () => {
    expect({
      repository: manifest.repository,
      homepage: manifest.homepage,
      bugs: manifest.bugs,
    }).toEqual({
      repository: {
        type: 'git',
        url: 'git+https://github.com/nestjs-earwax/nestjs-earwax.git',
      },
      homepage: 'https://github.com/nestjs-earwax/nestjs-earwax#readme',
      bugs: { url: 'https://github.com/nestjs-earwax/nestjs-earwax/issues' },
    });
  });

  it('ships docs/, which the README links to', () => {
    expect(manifest.files).toContain('docs');
  });

  it('exposes package.json to tooling that reads it', () => {
    expect(manifest.exports['./package.json']).toBe('./package.json');
  });

  it('gives every exports entry import then require, each types first and default last, side by side in dist/', () => {
    const problems: string[] = [];
    const subpaths = Object.keys(manifest.exports).filter(
      (subpath) => subpath !== './package.json',
    );
    for (const subpath of subpaths) {
      const value = manifest.exports[subpath];
      if (!isDual(value)) {
        problems.push(
          `'${subpath}' has no import and require conditions, each with types and default`,
        );
        continue;
      }
      const outer = Object.keys(value);
      if (outer.join() !== 'import,require') {
        problems.push(`'${subpath}' lists ${outer.join()}, not import,require`);
      }
      // ES module JS beside its .d.ts; the require entry (.cjs, see
      // scripts/build.mjs) beside its .d.cts.
      const kinds = [
        { condition: 'import', js: '.js', dts: '.d.ts' },
        { condition: 'require', js: '.cjs', dts: '.d.cts' },
      ] as const;
      for (const { condition, js, dts } of kinds) {
        const branch = value[condition];
        // TypeScript takes the first condition that matches, and Node treats
        // anything after `default` as unreachable.
        const conditions = Object.keys(branch);
        const name = `'${subpath}' ${condition}`;
        if (conditions[0] !== 'types') {
          problems.push(`${name} lists ${conditions[0]} before types`);
        }
        if (conditions.at(-1) !== 'default') {
          problems.push(`${name} lists ${conditions.at(-1)} after default`);
        }
        if (
          !branch.default.startsWith('./dist/') ||
          !branch.default.endsWith(js)
        ) {
          problems.push(`${name} default ${branch.default} is not dist ${js}`);
        }
        if (branch.types !== branch.default.slice(0, -js.length) + dts) {
          problems.push(
            `${name} types ${branch.types} are not beside ${branch.default}`,
          );
        }
      }
      if (
        value.require.default.replace(/\.cjs$/, '') !==
        value.import.default.replace(/\.js$/, '')
      ) {
        problems.push(
          `'${subpath}' require ${value.require.default} is not beside ${value.import.default}`,
        );
      }
    }
    expect(subpaths).toContain('.');
    expect(problems).toEqual([]);
  });

  it('builds every exports entry from a module of lib/', () => {
    const entries = entryPoints();
    expect(entries.map((entry) => entry.subpath)).toContain('.');
    const missing = entries
      .filter((entry) => !existsSync(entry.source))
      .map((entry) => `'${entry.subpath}' needs ${fromRoot(entry.source)}`);
    expect(missing).toEqual([]);
  });

  it('declares every package lib/ imports as a peer or dependency', () => {
    const declared = new Set([
      ...Object.keys(manifest.peerDependencies ?? {}),
      ...Object.keys(manifest.dependencies ?? {}),
    ]);
    const imported = new Set<string>();
    const problems: string[] = [];
    for (const file of libSources()) {
      const { packages, unresolved } = importsOf(file);
      for (const name of packages) {
        imported.add(name);
        if (!declared.has(name)) {
          problems.push(`${fromRoot(file)} imports undeclared ${name}`);
        }
      }
      for (const specifier of unresolved) {
        problems.push(`${fromRoot(file)} imports missing ${specifier}`);
      }
    }
    // The scan must see the imports every transport has.
    expect(imported).toContain('@nestjs/microservices');
    expect(problems).toEqual([]);
  });

  it('declares @nestjs/terminus and ioredis as optional peers, each with its entry point', () => {
    const declared = Object.keys(OPTIONAL_PEER_HOMES)
      .sort()
      .map((peer) => ({
        peer,
        range: manifest.peerDependencies?.[peer] !== undefined,
        optional: manifest.peerDependenciesMeta?.[peer]?.optional === true,
        entry: OPTIONAL_PEER_HOMES[peer] in manifest.exports,
      }));
    expect(declared).toEqual(
      declared.map(({ peer }) => ({
        peer,
        range: true,
        optional: true,
        entry: true,
      })),
    );
    // A new optional peer needs a home here: where it may be imported.
    expect(optionalPeers()).toEqual(
      [
        ...Object.keys(OPTIONAL_PEER_HOMES),
        ...Object.keys(LOADED_OPTIONAL_PEERS),
      ].sort(),
    );
  });

  it('names each optional peer the root entry loads only in its folder, with import type or loadModule()/import()', () => {
    const problems: string[] = [];
    let loads = 0;
    for (const file of libSources()) {
      const text = readFileSync(file, 'utf8');
      const source = ts.createSourceFile(file, text, ts.ScriptTarget.Latest);
      const visit = (node: ts.Node): void => {
        let peer: string | undefined;
        let allowed = false;
        if (
          (ts.isImportDeclaration(node) || ts.isExportDeclaration(node)) &&
          node.moduleSpecifier !== undefined &&
          ts.isStringLiteral(node.moduleSpecifier)
        ) {
          peer = node.moduleSpecifier.text;
          allowed = ts.isImportDeclaration(node)
            ? node.importClause?.isTypeOnly === true
            : node.isTypeOnly;
        } else if (
          ts.isCallExpression(node) &&
          (node.expression.kind === ts.SyntaxKind.ImportKeyword ||
            // lib/utils/load-module.ts: require() or import(), by build.
            (ts.isIdentifier(node.expression) &&
              node.expression.text === 'loadModule')) &&
          node.arguments.length === 1 &&
          ts.isStringLiteral(node.arguments[0])
        ) {
          peer = node.arguments[0].text;
          allowed = true;
        }
        const folder =
          peer === undefined ? undefined : LOADED_OPTIONAL_PEERS[peer];
        if (folder !== undefined) {
          if (!file.startsWith(join(libDir, folder) + sep)) {
            problems.push(
              `${fromRoot(file)} names ${peer} outside lib/${folder}/`,
            );
          } else if (!allowed) {
            problems.push(`${fromRoot(file)} imports ${peer} statically`);
          } else if (ts.isCallExpression(node)) {
            loads++;
          }
        }
        ts.forEachChild(node, visit);
      };
      visit(source);
    }
    expect(problems).toEqual([]);
    // The scan must see the call that loads each one.
    expect(loads).toBe(Object.keys(LOADED_OPTIONAL_PEERS).length);
  });

  it('imports each optional peer only in the folder of its entry point', () => {
    const problems: string[] = [];
    for (const file of libSources()) {
      for (const peer of importsOf(file).packages) {
        const home = OPTIONAL_PEER_HOMES[peer];
        if (home !== undefined && !file.startsWith(folderOf(home))) {
          problems.push(
            `${fromRoot(file)} imports ${peer} outside ${fromRoot(folderOf(home))}/`,
          );
        }
      }
    }
    expect(problems).toEqual([]);
  });

  it('keeps lib/index.ts and everything it reaches free of the optional peers', () => {
    const main = entryPoints().find((entry) => entry.subpath === '.');
    expect(main?.source).toBe(join(libDir, 'index.ts'));
    const reached = reachFrom(join(libDir, 'index.ts'));
    // The walk must follow the barrel into the modules it re-exports.
    expect(reached.has(join(libDir, 'transport', 'earwax.transport.ts'))).toBe(
      true,
    );
    expect(foreignPeersReached('.', join(libDir, 'index.ts'))).toEqual([]);
  });

  it('keeps every other entry point free of the optional peers of the others', () => {
    const others = entryPoints().filter((entry) => entry.subpath !== '.');
    expect(others.map((entry) => entry.subpath)).toEqual(
      expect.arrayContaining(Object.values(OPTIONAL_PEER_HOMES)),
    );
    const problems = others.flatMap((entry) =>
      existsSync(entry.source)
        ? foreignPeersReached(entry.subpath, entry.source)
        : [`'${entry.subpath}' has no source ${fromRoot(entry.source)}`],
    );
    expect(problems).toEqual([]);
  });
});
