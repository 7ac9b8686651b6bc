/**
 * Module loader hooks that let a child `node` process run the TypeScript
 * sources (lib/ and test/support/shutdown-child.ts) without a build step:
 * each `.ts` file is transpiled on load with TypeScript's `transpileModule`,
 * with the decorator options of tsconfig.json (Nest's dependency injection
 * needs the emitted decorator metadata), and a relative `./x.js` import
 * from a `.ts` file resolves to `./x.ts`, as tsc resolves it.
 *
 * Transpiling takes seconds on a busy machine, so outputs are cached in the
 * OS temp directory under a hash of the source and these options: a changed
 * file is transpiled again, never served stale.
 *
 * Registered by the shutdown spec with `node --import <data: URL calling
 * module.register()>`; runs on Node's loader thread.
 */
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, URL } from 'node:url';

const compilerOptions = {
  module: 'ESNext',
  target: 'ES2023',
  experimentalDecorators: true,
  emitDecoratorMetadata: true,
  useDefineForClassFields: false,
  esModuleInterop: true,
  inlineSourceMap: true,
};
const cacheDir = join(tmpdir(), 'nestjs-earwax-shutdown-child');
let typescript;

async function transpile(source, fileName) {
  const key = createHash('sha256')
    .update(JSON.stringify(compilerOptions))
    .update('\0')
    .update(fileName)
    .update('\0')
    .update(source)
    .digest('hex');
  const cached = join(cacheDir, `${key}.js`);
  try {
    return await readFile(cached, 'utf8');
  } catch {
    // Not cached yet.
  }
  typescript ??= (await import('typescript')).default;
  const { options } = typescript.convertCompilerOptionsFromJson(
    compilerOptions,
    '.',
  );
  const { outputText } = typescript.transpileModule(source, {
    fileName,
    compilerOptions: options,
  });
  // Written aside and renamed, so a concurrent reader never sees half a file.
  await mkdir(cacheDir, { recursive: true });
  const scratch = `${cached}.${process.pid}.tmp`;
  await writeFile(scratch, outputText);
  await rename(scratch, cached);
  return outputText;
}

export async function resolve(specifier, context, nextResolve) {
  if (
    context.parentURL?.endsWith('.ts') &&
    /^\.{1,2}\//.test(specifier) &&
    specifier.endsWith('.js')
  ) {
    const url = new URL(specifier.slice(0, -3) + '.ts', context.parentURL);
    if (existsSync(fileURLToPath(url))) {
      return { url: url.href, format: 'module', shortCircuit: true };
    }
  }
  return nextResolve(specifier, context);
}

export async function load(url, context, nextLoad) {
  if (!url.startsWith('file:') || !url.endsWith('.ts')) {
    return nextLoad(url, context);
  }
  const fileName = fileURLToPath(url);
  const source = await transpile(await readFile(fileName, 'utf8'), fileName);
  return { format: 'module', source, shortCircuit: true };
}
