import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import {
  existsSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as markdown from 'prettier/plugins/markdown';
import ts from 'typescript';

/**
 * Every fenced block tagged `ts` (or `typescript`) in `README.md` and
 * `docs/*.md` is compiled as a standalone ES module with the project's own
 * compiler options (strict, NodeNext, decorators), the published entry
 * points (`nestjs-earwax`, `/testing`, `/terminus`, `/redis`, `/telnet`,
 * `/cluster`, `/client`) resolving to
 * `lib/`. So the code a reader copies compiles, and a change to the API that
 * breaks an example fails here, naming the page, the line and the
 * compiler's message. The same suite checks that every relative link of
 * those pages leads to a file (and heading) that exists.
 */

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

/** The pages under test: the README and every guide page, in a stable order. */
const PAGES = [
  'README.md',
  ...(existsSync(join(ROOT, 'docs'))
    ? readdirSync(join(ROOT, 'docs'))
        .filter((name) => name.endsWith('.md'))
        .sort()
        .map((name) => `docs/${name}`)
    : []),
];

/** What the package's `exports` name, and the source each maps to here. */
const ENTRY_POINTS: Record<string, string> = {
  'nestjs-earwax': 'lib/index.ts',
  'nestjs-earwax/testing': 'lib/testing/index.ts',
  'nestjs-earwax/terminus': 'lib/terminus/index.ts',
  'nestjs-earwax/redis': 'lib/redis/index.ts',
  'nestjs-earwax/telnet': 'lib/telnet/index.ts',
  'nestjs-earwax/cluster': 'lib/cluster/index.ts',
  'nestjs-earwax/client': 'lib/client/index.ts',
};

/** Fence languages compiled as TypeScript. */
const TS_LANGS = new Set(['ts', 'typescript']);

/** The parts of a markdown syntax tree (mdast) this suite reads. */
interface MdNode {
  type: string;
  lang?: string | null;
  value?: string;
  url?: string;
  depth?: number;
  children?: MdNode[];
  position?: { start: { line: number } };
}

/** One compiled block. */
interface CodeBlock {
  /** The page, relative to the repository (`docs/events.md`). */
  readonly page: string;
  /** The line of the block's opening fence in the page (1-based). */
  readonly line: number;
  readonly code: string;
}

/** Where the repository's files are on the web (package.json `repository`). */
const REPOSITORY_FILES = 'https://github.com/nestjs-earwax/nestjs-earwax/';

/** One relative link of a page, or one to a file of the repository. */
interface PageLink {
  /** Whether `url` is a path from the repository's root (an absolute link). */
  readonly fromRoot: boolean;
  readonly page: string;
  readonly line: number;
  readonly url: string;
}

/** What one page holds that this suite checks. */
interface PageContent {
  readonly blocks: CodeBlock[];
  readonly links: PageLink[];
  /** The GitHub anchors of its headings. */
  readonly anchors: Set<string>;
}

/**
 * Parses a page with Prettier's markdown parser (remark), the same parser
 * that formats these pages in `npm run lint`, so fences nested in lists and
 * quotes are found exactly as a renderer finds them.
 */
async function readPage(page: string, text: string): Promise<PageContent> {
  // Prettier's plugin API types its parser loosely; it returns an mdast root.
  const parse = markdown.parsers.markdown.parse as (
    text: string,
    options: object,
  ) => MdNode | Promise<MdNode>;
  const tree = await parse(text, {});
  const content: PageContent = { blocks: [], links: [], anchors: new Set() };
  const seen = new Map<string, number>();
  const walk = (node: MdNode): void => {
    const line = node.position?.start.line ?? 0;
    if (node.type === 'code' && TS_LANGS.has((node.lang ?? '').toLowerCase())) {
      content.blocks.push({ page, line, code: node.value ?? '' });
    } else if (node.type === 'link' && node.url !== undefined) {
      if (node.url.startsWith(REPOSITORY_FILES)) {
        // The repository's own files, named absolutely where the page ships
        // in the package without them: checked like relative links.
        const url = node.url.slice(REPOSITORY_FILES.length);
        content.links.push({ page, line, url, fromRoot: true });
      } else if (!/^[a-z][a-z0-9+.-]*:/i.test(node.url)) {
        content.links.push({ page, line, url: node.url, fromRoot: false });
      }
    } else if (node.type === 'heading') {
      // GitHub's anchors: lower case, punctuation dropped, spaces to
      // hyphens, and "-1", "-2" for repeats.
      const slug = textOf(node)
        .toLowerCase()
        .replace(/[^\p{L}\p{N}\s_-]/gu, '')
        .replace(/\s/g, '-');
      const count = seen.get(slug) ?? 0;
      seen.set(slug, count + 1);
      content.anchors.add(count === 0 ? slug : `${slug}-${count}`);
    }
    for (const child of node.children ?? []) walk(child);
  };
  walk(tree);
  return content;
}

function textOf(node: MdNode): string {
  if (node.type === 'text' || node.type === 'inlineCode')
    return node.value ?? '';
  return (node.children ?? []).map(textOf).join('');
}

/** The project's compiler options, made to check (not emit) loose modules. */
function compilerOptions(): ts.CompilerOptions {
  const configPath = join(ROOT, 'tsconfig.json');
  const config = ts.readConfigFile(configPath, (path) => ts.sys.readFile(path));
  if (config.error) {
    throw new Error(
      ts.flattenDiagnosticMessageText(config.error.messageText, '\n'),
    );
  }
  const parsed = ts.parseJsonConfigFileContent(config.config, ts.sys, ROOT);
  const options: ts.CompilerOptions = {
    ...parsed.options,
    noEmit: true,
    declaration: false,
    declarationMap: false,
    sourceMap: false,
    typeRoots: [join(ROOT, 'node_modules', '@types')],
    paths: Object.fromEntries(
      Object.entries(ENTRY_POINTS).map(([name, file]) => [
        name,
        [join(ROOT, file)],
      ]),
    ),
  };
  // Blocks live outside the project's rootDir, in a temporary directory.
  delete options.rootDir;
  delete options.outDir;
  return options;
}

/** One compiler message, placed in its page. */
interface Finding {
  readonly block: CodeBlock;
  readonly text: string;
}

/**
 * Compiles every block in one program (the library and Nest's types are
 * read once for all of them). Each block is written to `dir` as an `.mts`
 * file, so it is an ES module whatever the directory, and its imports are
 * resolved as if it sat in `docs/`, so `node_modules` and the entry points
 * are found.
 */
function compileBlocks(blocks: readonly CodeBlock[], dir: string): Finding[] {
  const options = compilerOptions();
  const byFile = new Map<string, CodeBlock>();
  blocks.forEach((block, index) => {
    const stem = block.page.replace(/[^a-z0-9]+/gi, '-');
    const file = join(dir, `${stem}-L${block.line}-${index}.mts`);
    writeFileSync(file, block.code);
    byFile.set(file, block);
  });
  const host = ts.createCompilerHost(options, true);
  const cache = ts.createModuleResolutionCache(ROOT, (name) => name, options);
  host.resolveModuleNameLiterals = (
    literals,
    containingFile,
    redirectedReference,
    resolutionOptions,
    containingSourceFile,
  ) => {
    const from = byFile.has(containingFile)
      ? join(ROOT, 'docs', basename(containingFile))
      : containingFile;
    return literals.map((literal) =>
      ts.resolveModuleName(
        literal.text,
        from,
        resolutionOptions,
        host,
        cache,
        redirectedReference,
        ts.getModeForUsageLocation(
          containingSourceFile,
          literal,
          resolutionOptions,
        ),
      ),
    );
  };
  const program = ts.createProgram([...byFile.keys()], options, host);
  const findings: Finding[] = [];
  for (const diagnostic of [
    ...program.getOptionsDiagnostics(),
    ...program.getGlobalDiagnostics(),
  ]) {
    // Not tied to a block: reported against every page.
    for (const block of blocks) {
      findings.push({ block, text: formatMessage(diagnostic) });
    }
  }
  for (const [file, block] of byFile) {
    const source = program.getSourceFile(file);
    if (!source) {
      findings.push({
        block,
        text: `${block.page}:${block.line}: the block was not compiled`,
      });
      continue;
    }
    for (const diagnostic of [
      ...program.getSyntacticDiagnostics(source),
      ...program.getSemanticDiagnostics(source),
    ]) {
      const at = source.getLineAndCharacterOfPosition(diagnostic.start ?? 0);
      // The block's first line is the line after its fence.
      const line = block.line + 1 + at.line;
      findings.push({
        block,
        text: `${block.page}:${line}:${at.character + 1} (block at line ${block.line}): ${formatMessage(diagnostic)}`,
      });
    }
  }
  return findings;
}

function formatMessage(diagnostic: ts.Diagnostic): string {
  return `TS${diagnostic.code}: ${ts.flattenDiagnosticMessageText(diagnostic.messageText, '\n')}`;
}

/**
 * A page made to fail: where each mistake is, and what the compiler must
 * say about it. It is compiled with the real pages, so the suite shows it
 * reports a broken block by page, line and message.
 */
const FIXTURE_PAGE = 'test/docs/fixture-broken.md';
const FIXTURE = [
  '# A broken page',
  '',
  '```ts',
  "import { EarwaxTransport } from 'nestjs-earwax';",
  '',
  "export const transport = new EarwaxTransport({ port: 'four thousand' });",
  '```',
  '',
  '- In a list:',
  '',
  '  ```ts',
  '  export const count: number = notDeclared;',
  '  ```',
  '',
  '```ts',
  "import { EVENT_HANDLED } from 'nestjs-earwax';",
  '',
  'export const handled: true = EVENT_HANDLED;',
  '```',
  '',
  '```sh',
  'this line is not TypeScript and is not compiled',
  '```',
  '',
].join('\n');

/** The 1-based line of the first line of `text` that contains `part`. */
function lineOf(text: string, part: string): number {
  const index = text.split('\n').findIndex((line) => line.includes(part));
  if (index === -1) throw new Error(`"${part}" is not in the fixture.`);
  return index + 1;
}

describe('documentation', () => {
  let dir: string;
  const contents = new Map<string, PageContent>();
  let findings: Finding[] = [];
  let fixture: PageContent;

  beforeAll(async () => {
    for (const page of PAGES) {
      contents.set(
        page,
        await readPage(page, readFileSync(join(ROOT, page), 'utf8')),
      );
    }
    fixture = await readPage(FIXTURE_PAGE, FIXTURE);
    dir = mkdtempSync(join(tmpdir(), 'earwax-docs-'));
    const blocks = [...contents.values(), fixture].flatMap((c) => c.blocks);
    findings = compileBlocks(blocks, dir);
  }, 120_000);

  afterAll(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  function findingsOf(page: string): string[] {
    return findings.filter((f) => f.block.page === page).map((f) => f.text);
  }

  describe('a broken block is reported with its page, line and message', () => {
    it('reports each mistake where it is, and nothing else', () => {
      expect(fixture.blocks.map((b) => b.line)).toEqual([
        lineOf(FIXTURE, '```ts'),
        lineOf(FIXTURE, '  ```ts'),
        lineOf(FIXTURE, 'import { EVENT_HANDLED }') - 1,
      ]);
      const reported = findingsOf(FIXTURE_PAGE);
      expect(reported).toHaveLength(2);
      expect(reported[0]).toContain(
        `${FIXTURE_PAGE}:${lineOf(FIXTURE, 'four thousand')}:`,
      );
      expect(reported[0]).toContain(
        "TS2322: Type 'string' is not assignable to type 'number'.",
      );
      expect(reported[1]).toContain(
        `${FIXTURE_PAGE}:${lineOf(FIXTURE, 'notDeclared')}:`,
      );
      expect(reported[1]).toContain("TS2304: Cannot find name 'notDeclared'.");
    });
  });

  describe('every ```ts block compiles as a standalone module', () => {
    it.each(PAGES)('%s', (page) => {
      expect(findingsOf(page)).toEqual([]);
    });
  });

  it('README.md links relatively only to what the package ships (docs/), so no link is dead on npm', () => {
    const unshipped = (contents.get('README.md')?.links ?? [])
      .filter((link) => !link.fromRoot)
      .map((link) => link.url.split('#', 2)[0])
      .filter((path) => path !== '' && !path.startsWith('docs/'));
    expect(unshipped).toEqual([]);
  });

  describe('every relative link leads to a file and heading that exist', () => {
    it.each(PAGES)('%s', async (page) => {
      const broken: string[] = [];
      for (const link of contents.get(page)?.links ?? []) {
        const [path, anchor] = link.url.split('#', 2);
        const target = link.fromRoot
          ? decodeURIComponent(path).replace(/^(blob|tree)\/main\//, '')
          : path === ''
            ? page
            : join(dirname(page), decodeURIComponent(path));
        const where = `${page}:${link.line}: ${link.url}`;
        if (!existsSync(join(ROOT, target))) {
          broken.push(`${where}: no file ${target}`);
          continue;
        }
        if (anchor === undefined || !target.endsWith('.md')) continue;
        let linked = contents.get(target);
        if (!linked) {
          linked = await readPage(
            target,
            readFileSync(join(ROOT, target), 'utf8'),
          );
          contents.set(target, linked);
        }
        if (!linked.anchors.has(anchor)) {
          broken.push(`${where}: no heading #${anchor} in ${target}`);
        }
      }
      expect(broken).toEqual([]);
    });
  });
});
