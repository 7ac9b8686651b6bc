#!/usr/bin/env node
// What running one event's handlers costs, in one process, without sockets:
// `HandlerChains.run()` with one direct handler, as the transport calls it
// for each line. Compares this build (dist/) with tracing off, with no-op
// spans (the API without an SDK) and with an SDK sampling every span, and,
// with --base=<dist>, another build (a copy of dist/ without tracing, under
// dist-dev/). Rounds alternate between the variants and the fastest round
// of each is kept, so other load on the machine skews them alike.
//
//   npm run build && node bench/dispatch.mjs --base=dist-dev/base
import { context, trace } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import {
  BasicTracerProvider,
  BatchSpanProcessor,
} from '@opentelemetry/sdk-trace-base';
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { pathToFileURL } from 'node:url';

const { values } = parseArgs({
  options: {
    base: { type: 'string' },
    events: { type: 'string', default: '2000000' },
    rounds: { type: 'string', default: '7' },
  },
});
const events = Number(values.events);
const rounds = Number(values.rounds);

/**
 * A module of a build; `variant` loads a copy of its own, so that what V8
 * learns running one variant (the type feedback of `run()`) does not slow
 * another down: a server runs one of them only.
 */
const load = (dir, file, variant = '') =>
  import(`${pathToFileURL(resolve(dir, file)).href}?${variant}`);

/** A connection context with what the span attributes read. */
const ctx = {
  id: '3f1c9a52-5d1e-4b53-9b7e-0c1d2e3f4a5b',
  address: { address: '127.0.0.1', port: 50000, family: 'IPv4' },
  proxy: undefined,
  hostname: '127.0.0.1',
  port: 50000,
  listener: 'default',
};

/** Chains with one direct handler on on_data, as the transport compiles it. */
async function chainsOf(dir, variant) {
  const { HandlerChains } = await load(
    dir,
    'pipeline/handler-chains.js',
    variant,
  );
  const chains = new HandlerChains(() => undefined);
  let handled = 0;
  chains.add(
    'on_data',
    () => undefined,
    0,
    'Game.echo',
    function echo() {},
  );
  chains.compile({ compile: () => () => void handled++ }, () => undefined);
  return chains;
}

const sdk = new BasicTracerProvider({
  spanProcessors: [
    new BatchSpanProcessor({
      export: (_spans, done) => done({ code: 0 }),
      shutdown: () => Promise.resolve(),
    }),
  ],
});
context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
const api = await import('@opentelemetry/api');
const { OpenTelemetryEventTracer } = await load(
  'dist',
  'tracing/event-tracer.js',
);

const variants = [];
if (values.base) {
  variants.push([
    'base build (no tracing code)',
    await chainsOf(values.base, 'base'),
  ]);
}
variants.push(['this build, tracing off', await chainsOf('dist', 'off')]);
const noop = await chainsOf('dist', 'noop');
// The global provider with nothing registered: the API's no-op spans.
noop.tracer = new OpenTelemetryEventTracer(api, trace.getTracer('bench'));
variants.push(['this build, no-op spans (API, no SDK)', noop]);
const sampled = await chainsOf('dist', 'sdk');
sampled.tracer = new OpenTelemetryEventTracer(api, sdk.getTracer('bench'));
variants.push(['this build, SDK, every span sampled', sampled]);

/**
 * A loop of its own for each variant (its own code, so its call site of
 * `run()` sees one function, as the transport's does).
 */
const loopOf = () =>
  new Function(
    'chains',
    'ctx',
    'events',
    "for (let i = 0; i < events; i++) chains.run(ctx, 'on_data', 'look');",
  );
const loops = new Map(variants.map(([label]) => [label, loopOf()]));

const best = new Map();
for (let round = 0; round < rounds; round++) {
  for (const [label, chains] of variants) {
    const loop = loops.get(label);
    const started = process.hrtime.bigint();
    loop(chains, ctx, events);
    const ns = Number(process.hrtime.bigint() - started) / events;
    best.set(label, Math.min(best.get(label) ?? Infinity, ns));
    // Let the batch processor drain between rounds.
    await new Promise((done) => setImmediate(done));
  }
}
const reference = best.get(variants[0][0]);
console.log(
  `| variant | ns per event (fastest of ${rounds} rounds of ${events}) | vs ${variants[0][0]} |`,
);
console.log('| --- | ---: | ---: |');
for (const [label] of variants) {
  const ns = best.get(label);
  console.log(
    `| ${label} | ${ns.toFixed(1)} | ${(ns / reference).toFixed(2)}× |`,
  );
}
await sdk.shutdown();
