import { formatHostPort } from '../../utils/host-port.js';
import {
  connectionFloodAttack,
  planConnectionFlood,
  type ConnectionFloodOptions,
} from './connection-flood.attack.js';
import {
  halfOpenAttack,
  planHalfOpen,
  type HalfOpenOptions,
} from './half-open.attack.js';
import {
  httpRequestAttack,
  planHttpRequest,
  type HttpRequestOptions,
} from './http-request.attack.js';
import {
  longLineAttack,
  planLongLine,
  type LongLineOptions,
} from './long-line.attack.js';
import {
  randomBytesAttack,
  planRandomBytes,
  type RandomBytesOptions,
} from './random-bytes.attack.js';
import {
  resetStormAttack,
  planResetStorm,
  type ResetStormOptions,
} from './reset-storm.attack.js';
import {
  slowlorisAttack,
  planSlowloris,
  type SlowlorisOptions,
} from './slowloris.attack.js';
import {
  splitTelnetAttack,
  planSplitTelnet,
  type SplitTelnetOptions,
} from './split-telnet.attack.js';
import {
  tinyPacketsAttack,
  planTinyPackets,
  type TinyPacketsOptions,
} from './tiny-packets.attack.js';
import {
  tlsHelloAttack,
  planTlsHello,
  type TlsHelloOptions,
} from './tls-hello.attack.js';
import {
  untrustedProxyAttack,
  planUntrustedProxy,
  type UntrustedProxyOptions,
} from './untrusted-proxy.attack.js';
import { resolveTarget } from './attack-runner.js';
import {
  formatHostileResult,
  summarizeHostileResults,
} from './hostile-report.js';
import type {
  HostileAttackName,
  HostileResult,
  HostileTarget,
} from './hostile.interfaces.js';

/**
 * The options each attack takes, by name.
 *
 * @publicApi
 */
export interface HostileAttackOptionsMap {
  slowloris: SlowlorisOptions;
  'long-line': LongLineOptions;
  'tiny-packets': TinyPacketsOptions;
  'random-bytes': RandomBytesOptions;
  'split-telnet': SplitTelnetOptions;
  'half-open': HalfOpenOptions;
  'reset-storm': ResetStormOptions;
  'connection-flood': ConnectionFloodOptions;
  'http-request': HttpRequestOptions;
  'tls-hello': TlsHelloOptions;
  'untrusted-proxy': UntrustedProxyOptions;
}

/**
 * Every attack, by name, in the order {@link runHostileClients} runs them:
 * one connection at a time first, the storms of connections last (they use
 * up their address's connection rate for a while).
 *
 * @publicApi
 */
export const HOSTILE_ATTACKS: {
  readonly [K in HostileAttackName]: (
    target: HostileTarget,
    options?: HostileAttackOptionsMap[K],
  ) => Promise<HostileResult>;
} = {
  'http-request': httpRequestAttack,
  'tls-hello': tlsHelloAttack,
  'untrusted-proxy': untrustedProxyAttack,
  'long-line': longLineAttack,
  'tiny-packets': tinyPacketsAttack,
  'random-bytes': randomBytesAttack,
  'split-telnet': splitTelnetAttack,
  slowloris: slowlorisAttack,
  'half-open': halfOpenAttack,
  'reset-storm': resetStormAttack,
  'connection-flood': connectionFloodAttack,
};

/** The same attacks, checked and ready to run, for a run of several. */
const PLANS: {
  readonly [K in HostileAttackName]: (
    target: HostileTarget,
    options?: HostileAttackOptionsMap[K],
  ) => () => Promise<HostileResult>;
} = {
  'http-request': planHttpRequest,
  'tls-hello': planTlsHello,
  'untrusted-proxy': planUntrustedProxy,
  'long-line': planLongLine,
  'tiny-packets': planTinyPackets,
  'random-bytes': planRandomBytes,
  'split-telnet': planSplitTelnet,
  slowloris: planSlowloris,
  'half-open': planHalfOpen,
  'reset-storm': planResetStorm,
  'connection-flood': planConnectionFlood,
};

/**
 * Options of {@link runHostileClients}.
 *
 * @publicApi
 */
export interface RunHostileClientsOptions {
  /**
   * Which attacks to run, in this order.
   * @default every attack, in the order of {@link HOSTILE_ATTACKS}
   */
  attacks?: readonly HostileAttackName[];
  /** Options for each attack, by name. */
  options?: { readonly [K in HostileAttackName]?: HostileAttackOptionsMap[K] };
  /**
   * Where the report goes, a line at a time as each attack ends; `false`
   * for silence.
   * @default console.log
   */
  print?: ((line: string) => void) | false;
}

/**
 * Runs the hostile clients against a server one after another and prints a
 * report as they go: for each attack, how the hostile connections ended and
 * whether the probe was served before, during and after it. Only ever point
 * it at a server you run yourself.
 *
 * @example
 * ```ts
 * import { runHostileClients } from 'nestjs-earwax/testing';
 *
 * const results = await runHostileClients({
 *   port: 4000,
 *   probe: { line: 'look', expect: /^Exits:/ },
 * });
 * process.exitCode = results.every((r) => r.served && !r.error) ? 0 : 1;
 * ```
 *
 * @param target The server, the probe, and where attacks come from.
 * @param options Which attacks, their options, and where the report goes.
 * @returns Each attack's result, in the order they ran.
 * @throws TypeError (rejects, before any attack runs) for an invalid target,
 *   an unknown attack name, or invalid options.
 *
 * @publicApi
 */
export async function runHostileClients(
  target: HostileTarget,
  options: RunHostileClientsOptions = {},
): Promise<HostileResult[]> {
  const { host, port } = resolveTarget(target);
  const known = Object.keys(HOSTILE_ATTACKS);
  const names = options.attacks ?? (known as HostileAttackName[]);
  for (const name of [...names, ...Object.keys(options.options ?? {})]) {
    if (!known.includes(name)) {
      throw new TypeError(
        `nestjs-earwax/testing: unknown attack ${JSON.stringify(name)}; the attacks are ${known.join(', ')}.`,
      );
    }
  }
  // Every attack's options are checked before the first one runs.
  const runs = names.map((name) => {
    const plan = PLANS[name] as (
      target: HostileTarget,
      options?: object,
    ) => () => Promise<HostileResult>;
    return plan(target, options.options?.[name]);
  });
  const print =
    options.print === false ? undefined : (options.print ?? console.log);
  const where = formatHostPort(host, port);
  print?.(`Hostile clients against ${where}`);
  const results: HostileResult[] = [];
  for (const run of runs) {
    const result = await run();
    results.push(result);
    print?.(formatHostileResult(result));
  }
  print?.(summarizeHostileResults(results));
  return results;
}
