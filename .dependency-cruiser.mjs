// Import rules for lib/, checked by `npm run lint:deps` (part of `npm test`).
//
// Type-only imports count (tsPreCompilationDeps): a cycle closed by an
// `import type` is still a cycle between the files.
//
// The layers, each allowed to import only its own layer and the ones before it:
//   types       interfaces/, errors/, utils/, earwax.constants.ts
//   codecs      framing/, telnet/, proxy/, limits/ (codecs and limits: no Nest, no sockets)
//   connection  connection/
//   websocket   websocket/ (the WebSocket medium and upgrade handling)
//   services    pipeline/, registry/, block-list/, guard/, metrics/, cluster/, tracing/
//   transport   transport/
//   module      earwax.module.ts, earwax.binder.ts, earwax-module-options.interface.ts
// index.ts (the package's root export) may import anything. The entry points
// (client/, redis/, terminus/, testing/, decorators/) may import anything, and
// nothing in the layers may import them.

/** A regular expression matching the files of the given lib/ folders or files. */
const under = (...parts) => {
  const each = parts.map((part) =>
    part.endsWith('.ts') ? `${part.replace(/\./g, '\\.')}$` : `${part}/`,
  );
  return `^lib/(${each.join('|')})`;
};

const LAYERS = [
  ['types', ['interfaces', 'errors', 'utils', 'earwax.constants.ts']],
  ['codecs', ['framing', 'telnet', 'proxy', 'limits']],
  ['connection', ['connection']],
  ['websocket', ['websocket']],
  [
    'services',
    [
      'pipeline',
      'registry',
      'block-list',
      'guard',
      'metrics',
      'cluster',
      'tracing',
    ],
  ],
  ['transport', ['transport']],
  [
    'module',
    [
      'earwax.module.ts',
      'earwax.binder.ts',
      'earwax-module-options.interface.ts',
    ],
  ],
];

const layerRules = LAYERS.map(([name, folders], i) => ({
  name: `layer-${name}`,
  comment:
    `${name} (${folders.join(', ')}) may import only: ` +
    LAYERS.slice(0, i + 1)
      .map(([layer]) => layer)
      .join(', '),
  severity: 'error',
  from: { path: under(...folders) },
  to: {
    path: '^lib/',
    pathNot: under(...LAYERS.slice(0, i + 1).flatMap(([, f]) => f)),
  },
}));

export default {
  forbidden: [
    {
      name: 'no-circular',
      comment: 'No import cycles in lib/, type-only imports included.',
      severity: 'error',
      from: { path: '^lib/' },
      to: { circular: true },
    },
    {
      name: 'interfaces-import-only-interfaces',
      comment:
        'lib/interfaces/ holds types: it may import other files of lib/interfaces/ only (no classes, no values).',
      severity: 'error',
      from: { path: '^lib/interfaces/' },
      to: { path: '^lib/', pathNot: '^lib/interfaces/' },
    },
    ...layerRules,
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    enhancedResolveOptions: {
      exportsFields: ['exports'],
      conditionNames: ['import', 'require', 'node', 'default', 'types'],
      extensions: ['.ts', '.js'],
    },
  },
};
