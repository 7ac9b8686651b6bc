/**
 * The hostile-client kit: attacks a game server should survive, each
 * bounded in count and time, each reporting how its connections ended and
 * whether a well-behaved client was served before, during and after it.
 * Point it only at a server you run yourself.
 */
export type {
  HostileAttackName,
  HostileAttackOptions,
  HostileConnectionOutcome,
  HostileConnectionTally,
  HostileEnding,
  HostileProbe,
  HostileProbeReport,
  HostileResult,
  HostileTarget,
} from './hostile/hostile.interfaces.js';
export {
  connectionFloodAttack,
  type ConnectionFloodOptions,
} from './hostile/connection-flood.attack.js';
export {
  halfOpenAttack,
  type HalfOpenMode,
  type HalfOpenOptions,
} from './hostile/half-open.attack.js';
export {
  httpRequestAttack,
  type HttpRequestOptions,
} from './hostile/http-request.attack.js';
export {
  longLineAttack,
  type LongLineOptions,
} from './hostile/long-line.attack.js';
export {
  randomBytesAttack,
  type RandomBytesOptions,
} from './hostile/random-bytes.attack.js';
export {
  resetStormAttack,
  type ResetStormOptions,
} from './hostile/reset-storm.attack.js';
export {
  slowlorisAttack,
  type SlowlorisOptions,
} from './hostile/slowloris.attack.js';
export {
  SPLIT_TELNET_SEQUENCES,
  splitTelnetAttack,
  type SplitTelnetOptions,
} from './hostile/split-telnet.attack.js';
export {
  tinyPacketsAttack,
  type TinyPacketsOptions,
} from './hostile/tiny-packets.attack.js';
export {
  tlsHelloAttack,
  type TlsHelloOptions,
} from './hostile/tls-hello.attack.js';
export {
  untrustedProxyAttack,
  type UntrustedProxyOptions,
} from './hostile/untrusted-proxy.attack.js';
export {
  formatHostileReport,
  formatHostileResult,
} from './hostile/hostile-report.js';
export {
  HOSTILE_ATTACKS,
  runHostileClients,
  type HostileAttackOptionsMap,
  type RunHostileClientsOptions,
} from './hostile/run-hostile-clients.js';
