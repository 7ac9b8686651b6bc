/**
 * The library as the benchmark runs it: the compiled package (`dist/`, what
 * npm ships), loaded by the package's own name so Node resolves it through
 * package.json `exports`, exactly as an application would. `EARWAX_PACKAGE`
 * (set by `run.mjs --compare=<path>`) names another build's `index.js`
 * instead, to measure a candidate change against the current build.
 *
 * Only the types come from `lib/`: a static import of `nestjs-earwax` would
 * make the root `npm run typecheck` (which includes bench/) fail on a fresh
 * checkout, before anything is built. The specifier is a variable so the
 * compiler does not try to resolve it.
 */
import { pathToFileURL } from 'node:url';
import type * as EarwaxApi from '../../lib/index.js';

const candidate = process.env.EARWAX_PACKAGE;
const specifier: string = candidate
  ? pathToFileURL(candidate).href
  : 'nestjs-earwax';

export const earwax = (await import(specifier)) as typeof EarwaxApi;
export type { EarwaxApi };
