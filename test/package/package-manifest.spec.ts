import { describe, expect, it } from '@jest/globals';
import { spawnSync } from 'node:child_process';
import {
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const root = process.cwd();
const manifest = JSON.parse(
  readFileSync(join(root, 'package.json'), 'utf8'),
) as {
  name: string;
  type: string;
  exports: Record<string, { types?: string; default?: string } | string>;
  files: string[];
  peerDependencies: Record<string, string>;
  dependencies?: Record<string, string>;
};

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) =>
    entry.isDirectory()
      ? sources(join(dir, entry.name))
      : entry.name.endsWith('.ts')
        ? [join(dir, entry.name)]
        : [],
  );
}

/** The package a bare import specifier names (`@scope/name/deep` → `@scope/name`). */
function packageOf(specifier: string): string {
  const parts = specifier.split('/');
  return specifier.startsWith('@') ? parts.slice(0, 2).join('/') : parts[0];
}

describe('package manifest', () => {
  it('is ESM with an exports map giving types and default', () => {
    expect(manifest.type).toBe('module');
    expect(manifest.exports['.']).toEqual({
      types: './dist/index.d.ts',
      default: './dist/index.js',
    });
    expect(manifest.files).toContain('dist');
  });

  it('declares every package lib/ imports as a peer or dependency', () => {
    const declared = new Set([
      ...Object.keys(manifest.peerDependencies),
      ...Object.keys(manifest.dependencies ?? {}),
    ]);
    const imported = new Set<string>();
    for (const file of sources(join(root, 'lib'))) {
      const text = readFileSync(file, 'utf8');
      for (const [, specifier] of text.matchAll(/from '([^'.][^']*)'/g)) {
        if (!specifier.startsWith('node:')) imported.add(packageOf(specifier));
      }
    }
    expect(imported.size).toBeGreaterThan(0);
    expect([...imported].filter((name) => !declared.has(name))).toEqual([]);
  });

  it('publishes declarations that a strict consumer compiles against', () => {
    const scratch = mkdtempSync(join(tmpdir(), 'earwax-consumer-'));
    try {
      const tsc = join(root, 'node_modules', 'typescript', 'bin', 'tsc');
      const pkg = join(scratch, 'node_modules', manifest.name);
      const build = spawnSync(
        process.execPath,
        [tsc, '-p', 'tsconfig.build.json', '--outDir', join(pkg, 'dist')],
        {
          cwd: root,
          encoding: 'utf8',
        },
      );
      expect(build.stdout + build.stderr).toBe('');
      writeFileSync(join(pkg, 'package.json'), JSON.stringify(manifest));
      // What an install brings: the peers the consumer has, and our own
      // dependencies.
      const installed = [
        '@nestjs',
        'rxjs',
        'reflect-metadata',
        '@types',
        ...Object.keys(manifest.dependencies ?? {}),
      ];
      for (const dep of installed) {
        symlinkSync(
          join(root, 'node_modules', dep),
          join(scratch, 'node_modules', dep),
        );
      }
      mkdirSync(join(scratch, 'src'));
      writeFileSync(join(scratch, 'package.json'), '{"type":"module"}');
      writeFileSync(
        join(scratch, 'tsconfig.json'),
        JSON.stringify({
          compilerOptions: {
            target: 'ES2023',
            module: 'NodeNext',
            moduleResolution: 'NodeNext',
            strict: true,
            noImplicitOverride: true,
            experimentalDecorators: true,
            emitDecoratorMetadata: true,
            noEmit: true,
            skipLibCheck: false,
            types: ['node'],
          },
          include: ['src'],
        }),
      );
      writeFileSync(
        join(scratch, 'src', 'app.ts'),
        `import 'reflect-metadata';
import { Controller, Injectable, Module } from '@nestjs/common';
import { Ctx, Payload } from '@nestjs/microservices';
import {
  ConnectionContext, ConnectionGuard, ConnectionRegistry, EarwaxEvent, EarwaxModule,
  EarwaxTransport, EVENT_HANDLED, type DisconnectReason,
} from '${manifest.name}';

@Injectable()
class Guard extends ConnectionGuard {
  override canConnect(ctx: ConnectionContext): boolean { return ctx.hostname !== '203.0.113.9'; }
}

@Controller()
class Game {
  constructor(private readonly players: ConnectionRegistry) {}
  @EarwaxEvent('on_data', { priority: 1 })
  said(@Payload() line: string, @Ctx() ctx: ConnectionContext) {
    this.players.broadcast(line, { except: ctx });
    return EVENT_HANDLED;
  }
  @EarwaxEvent('on_disconnect')
  left(@Payload() reason: DisconnectReason): string { return reason; }
}

@Module({ imports: [EarwaxModule.forRoot({ guard: Guard })], controllers: [Game] })
export class AppModule {}

export const transport = new EarwaxTransport({ host: '0.0.0.0', port: 4000, encoding: 'utf8' });
`,
      );
      const check = spawnSync(
        process.execPath,
        [tsc, '-p', join(scratch, 'tsconfig.json')],
        {
          cwd: scratch,
          encoding: 'utf8',
        },
      );
      // Errors inside Nest's or RxJS's own declarations are theirs, not ours.
      const ours = (check.stdout + check.stderr)
        .split('\n')
        .filter(
          (line) =>
            line.trim() && !/node_modules\/(@nestjs|rxjs|@types)\//.test(line),
        );
      expect(ours).toEqual([]);
    } finally {
      rmSync(scratch, { recursive: true, force: true });
    }
  }, 60_000);
});
