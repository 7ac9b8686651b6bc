/**
 * The server a hostile client is pointed at, and how a well-behaved client
 * checks that it is still served. Point it only at a server you run
 * yourself.
 *
 * @publicApi
 */
export interface HostileTarget {
  /**
   * The server's host name or address.
   * @default '127.0.0.1'
   */
  host?: string;
  /** The server's port (1 to 65535). */
  port: number;
  /**
   * The local address (or addresses, used in turn) the hostile connections
   * come from. On loopback, `127.0.0.2` to `127.255.255.254` are distinct
   * client addresses: give the probe one of its own (`probe.from`), so an
   * attack does not use up the per-address limits the probe needs. Binding
   * thousands of connections to one chosen address is slow (the kernel
   * searches for a free port on it for each); leave the attacks on the
   * default address and bind the probe, or spread them over many.
   * @default the address the operating system picks
   */
  from?: string | readonly string[];
  /** How a well-behaved client checks that it is served. */
  probe: HostileProbe;
}

/**
 * A well-behaved client: it sends `line` and expects a line matching
 * `expect` in reply, before, during and after each attack. Choose a command
 * the server always answers (`look`, `ping`, `who`).
 *
 * @publicApi
 */
export interface HostileProbe {
  /** The line the probe sends (without a line end). */
  line: string;
  /** The reply: a string matches a line equal to it, a RegExp is tested. */
  expect: string | RegExp;
  /**
   * How long one probe waits for its reply (and for its connection), in ms.
   * @default 3000
   */
  timeoutMs?: number;
  /**
   * Ms between probes while an attack runs. Keep it well inside the
   * server's input rate: the probe must not look like a flood itself.
   * @default 250
   */
  intervalMs?: number;
  /**
   * Strip telnet commands from what the server sends, and double 0xFF in
   * the line, for a server in telnet mode. Offers are left unanswered, as a
   * simple client does.
   * @default false
   */
  telnet?: boolean;
  /**
   * The encoding of the probe's lines, both ways.
   * @default 'utf8'
   */
  encoding?: BufferEncoding;
  /**
   * Bytes every probe connection sends first, before its line: a PROXY
   * protocol header for a listener behind a proxy, say.
   */
  preamble?: string | Uint8Array;
  /**
   * The local address the probe connects from: on loopback, one the
   * attacks do not use (`'127.0.0.3'`), so they do not share its
   * per-address limits.
   * @default the address the operating system picks
   */
  from?: string;
}

/**
 * Options every attack takes.
 *
 * @publicApi
 */
export interface HostileAttackOptions {
  /**
   * The most the attack itself may take, in ms, probes before and after it
   * not counted; past it the attack stops and closes its connections. Each
   * attack has its own default, a little above what it needs.
   */
  timeoutMs?: number;
}

/**
 * How one hostile connection ended: who closed it first.
 *
 * - `closed_by_server`: the server closed it (FIN) while the client's side
 *   was open.
 * - `reset_by_server`: the server reset it (RST), or it broke while the
 *   client's side was open.
 * - `closed_by_client`: the client ended or reset it first (the attack
 *   ended it, or gave up at its deadline); `serverClosed` tells whether the
 *   server then closed its side.
 * - `failed`: it never connected (refused, timed out, out of file
 *   descriptors).
 *
 * @publicApi
 */
export type HostileEnding =
  'closed_by_server' | 'reset_by_server' | 'closed_by_client' | 'failed';

/**
 * What happened to one hostile connection.
 *
 * @publicApi
 */
export interface HostileConnectionOutcome {
  /** Who ended it first. */
  readonly ending: HostileEnding;
  /** Whether the server closed (or reset) its side, first or after the client. */
  readonly serverClosed: boolean;
  /**
   * Ms from connecting to the server closing its side; `undefined` when it
   * never did (or the connection never opened).
   */
  readonly afterMs: number | undefined;
  /** Bytes the client wrote. */
  readonly bytesSent: number;
  /** Bytes the client read (0 for a connection that never reads). */
  readonly bytesReceived: number;
  /**
   * The last line received (or the unterminated rest), telnet commands
   * stripped when the probe is in telnet mode, control bytes escaped, at
   * most 200 characters; `''` when nothing was.
   */
  readonly lastReceived: string;
  /** Whether a line matching the probe's `expect` came on this connection. */
  readonly answered: boolean;
  /** The socket error, if any (`ECONNRESET`, `ECONNREFUSED`, `EMFILE`, ...). */
  readonly error: string | undefined;
}

/**
 * The hostile connections of one attack, counted.
 *
 * @publicApi
 */
export interface HostileConnectionTally {
  /** Connections attempted. */
  readonly attempted: number;
  /** Connections that opened. */
  readonly connected: number;
  /** How many ended each way. */
  readonly endings: Readonly<Record<HostileEnding, number>>;
  /** How many saw the server close (or reset) its side. */
  readonly serverClosed: number;
  /** How many received a line matching the probe's `expect`. */
  readonly answered: number;
  /**
   * How many received a line matching the attack's `greeting`, for an
   * attack that has one; 0 otherwise.
   */
  readonly greeted: number;
  /** How many connections last received each line (`''`: nothing). */
  readonly lastReceived: Readonly<Record<string, number>>;
  /** How many connections met each socket error. */
  readonly errors: Readonly<Record<string, number>>;
}

/**
 * Whether the probe was served around one attack.
 *
 * @publicApi
 */
export interface HostileProbeReport {
  /** Served before the attack started (else the attack is not run). */
  readonly before: boolean;
  /** Probes made while the attack ran, on the connection opened before it. */
  readonly during: {
    /** How many probes were sent. */
    readonly attempts: number;
    /** How many got their reply in time. */
    readonly served: number;
  };
  /** The connection opened before the attack is still served after it. */
  readonly after: boolean;
  /** A connection opened after the attack is admitted and served. */
  readonly afterNew: boolean;
  /** Why probes were not served (the first few). */
  readonly failures: readonly string[];
}

/**
 * The names of the attacks, as {@link runHostileClients} takes them.
 *
 * @publicApi
 */
export type HostileAttackName =
  | 'slowloris'
  | 'long-line'
  | 'tiny-packets'
  | 'random-bytes'
  | 'split-telnet'
  | 'half-open'
  | 'reset-storm'
  | 'connection-flood'
  | 'http-request'
  | 'tls-hello'
  | 'untrusted-proxy';

/**
 * What one attack did and how the server took it.
 *
 * @publicApi
 */
export interface HostileResult {
  /** The attack. */
  readonly attack: HostileAttackName;
  /** What it sent, in words (`one 10485760-byte line`, ...). */
  readonly description: string;
  /** `host:port` of the server. */
  readonly target: string;
  /** Ms the attack took, probes before and after it not counted. */
  readonly durationMs: number;
  /** The first hostile connection (the only one, for most attacks). */
  readonly connection: HostileConnectionOutcome | undefined;
  /** Every hostile connection, counted. */
  readonly connections: HostileConnectionTally;
  /** Whether the probe was served before, during and after. */
  readonly probe: HostileProbeReport;
  /**
   * The probe was served before the attack, at every probe during it, and
   * after it on both its old and a new connection.
   */
  readonly served: boolean;
  /**
   * Why the attack could not run as meant (the probe was not served before
   * it, the attack did not stop at its deadline, ...); `undefined` when it
   * ran.
   */
  readonly error: string | undefined;
}
