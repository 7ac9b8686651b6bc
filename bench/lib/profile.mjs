/**
 * Summarises a V8 CPU profile (`node --cpu-prof`): where the samples taken
 * during the measured window went, by function (self and inclusive time) and
 * by package.
 */
import { readFileSync } from 'node:fs';
import { URL } from 'node:url';

const ROOT_URL = new URL('../../', import.meta.url).href;

/** A readable location: repo-relative path, or `node:` module. */
function where(url, line) {
  if (!url) return '';
  let path = url.startsWith(ROOT_URL) ? url.slice(ROOT_URL.length) : url;
  path = path.replace(/^node_modules\//, '');
  return line >= 0 ? `${path}:${line + 1}` : path;
}

/** Which part of the stack a frame belongs to. */
function packageOf(frame) {
  const { url, functionName } = frame;
  if (!url) {
    if (functionName.startsWith('(')) return functionName;
    return '(native / V8 builtins)';
  }
  if (url.startsWith('node:')) return 'Node.js core (node:*)';
  const match = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (match) return match[1];
  if (url.includes('/dist/')) return 'nestjs-earwax (dist/)';
  if (url.includes('/bench-build/')) return 'benchmark server (bench/servers)';
  return url;
}

/**
 * @param file A `.cpuprofile`.
 * @param window `[startUs, endUs]` on the profile's clock (process.hrtime,
 *   µs), or undefined for the whole profile.
 * @param top How many functions to list.
 */
export function summarizeProfile(file, window, top = 25) {
  const profile = JSON.parse(readFileSync(file, 'utf8'));
  const nodes = new Map();
  for (const node of profile.nodes) nodes.set(node.id, node);
  const parent = new Map();
  for (const node of profile.nodes) {
    for (const child of node.children ?? []) parent.set(child, node.id);
  }
  const keyOf = (node) => {
    const { functionName, url, lineNumber } = node.callFrame;
    return `${functionName || '(anonymous)'} ${where(url, lineNumber)}`.trim();
  };

  const self = new Map();
  const inclusive = new Map();
  const byPackage = new Map();
  let time = profile.startTime;
  let total = 0;
  let idle = 0;
  const [from, to] = window ?? [-Infinity, Infinity];
  for (let i = 0; i < profile.samples.length; i++) {
    time += profile.timeDeltas[i];
    if (time < from || time > to) continue;
    const node = nodes.get(profile.samples[i]);
    if (node.callFrame.functionName === '(idle)') {
      idle++;
      continue;
    }
    total++;
    const key = keyOf(node);
    self.set(key, (self.get(key) ?? 0) + 1);
    const pkg = packageOf(node.callFrame);
    byPackage.set(pkg, (byPackage.get(pkg) ?? 0) + 1);
    // Each function once per sample, however deep its recursion.
    const seen = new Set();
    for (let id = node.id; id !== undefined; id = parent.get(id)) {
      const frame = nodes.get(id);
      if (frame.callFrame.functionName === '(root)') continue;
      const k = keyOf(frame);
      if (seen.has(k)) continue;
      seen.add(k);
      inclusive.set(k, (inclusive.get(k) ?? 0) + 1);
    }
  }
  const rank = (map) =>
    [...map]
      .sort((a, b) => b[1] - a[1])
      .slice(0, top)
      .map(([name, samples]) => ({ name, pct: (samples / total) * 100 }));
  return {
    busySamples: total,
    idleSamples: idle,
    self: rank(self),
    inclusive: rank(inclusive),
    byPackage: rank(byPackage),
  };
}

/** The summary as markdown. */
export function profileMarkdown(summary, title) {
  const table = (rows, what) => [
    `| ${what} | % of busy samples |`,
    '| --- | ---: |',
    ...rows.map(
      (r) => `| \`${r.name.replaceAll('|', '\\|')}\` | ${r.pct.toFixed(1)} |`,
    ),
  ];
  const busyPct =
    (summary.busySamples / (summary.busySamples + summary.idleSamples)) * 100;
  return [
    `## ${title}`,
    '',
    `${summary.busySamples} busy samples in the measured window (${busyPct.toFixed(0)}% of it busy).`,
    '',
    '### By package (self time)',
    '',
    ...table(summary.byPackage, 'Package'),
    '',
    '### Top functions by self time',
    '',
    ...table(summary.self, 'Function'),
    '',
    '### Top functions by inclusive time',
    '',
    ...table(summary.inclusive, 'Function'),
    '',
  ].join('\n');
}
