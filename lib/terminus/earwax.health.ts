import { Injectable, Optional } from '@nestjs/common';
import {
  HealthIndicatorService,
  type HealthIndicatorResult,
} from '@nestjs/terminus';
import { EarwaxTransports } from '../earwax.binder.js';
import type { EarwaxTransport } from '../transport/earwax.transport.js';
import { EarwaxMetrics } from '../metrics/earwax-metrics.js';
import { formatHostPort } from '../utils/host-port.js';

/**
 * What an extra health check reports: whether its part is healthy, and any
 * details worth showing (kept as they are, under its name).
 *
 * @publicApi
 */
export interface EarwaxHealthCheckResult {
  /** Whether this part is healthy; `false` makes the indicator down. */
  readonly healthy: boolean;
  /** Details to show (a connection state, a lag, a message). */
  readonly [detail: string]: unknown;
}

/**
 * An extra check for {@link EarwaxHealthIndicator.isHealthy}: the state of
 * something the game server depends on, such as the Redis adapter that
 * links it to the other processes of a cluster. It may be asynchronous; a
 * check that throws, rejects, or outlasts `checkTimeout` is down.
 *
 * @publicApi
 */
export type EarwaxHealthCheck = () =>
  EarwaxHealthCheckResult | Promise<EarwaxHealthCheckResult>;

/**
 * Options of {@link EarwaxHealthIndicator.isHealthy}.
 *
 * @publicApi
 */
export interface EarwaxHealthOptions {
  /**
   * Down when more connections than this are open (admitted and not yet
   * disconnecting), across the application's transports.
   */
  maxOpenConnections?: number;
  /**
   * Extra checks by name, each reported under `checks.<name>` in the
   * details: where the Redis adapter's state (or anything else) plugs in.
   */
  checks?: Readonly<Record<string, EarwaxHealthCheck>>;
  /**
   * Milliseconds each extra check may take before it counts as down.
   * @default 1000
   */
  checkTimeout?: number;
}

/**
 * One transport, as the health details show it.
 *
 * @publicApi
 */
export interface EarwaxTransportHealth {
  /**
   * `listening`, `closing`, `closed`, or `not_started` (bound to the
   * application but never listened).
   */
  readonly status: 'listening' | 'closing' | 'closed' | 'not_started';
  /** Each listener with the address it is bound to (`null` when not). */
  readonly listeners: ReadonlyArray<{
    readonly name: string;
    readonly address: string | null;
  }>;
}

/** An extra check's outcome, as the details show it. */
type CheckDetails = Record<string, unknown> & { status: 'up' | 'down' };

const DEFAULT_CHECK_TIMEOUT = 1000;

/**
 * A `@nestjs/terminus` health indicator for Earwax game servers: up when
 * every `EarwaxTransport` of the application is listening, down while one
 * is closing or closed, has never started, or when there is none. The
 * details show each transport's status and addresses and the number of open
 * connections; options add a connection threshold and extra checks (such as
 * the Redis adapter's).
 *
 * Provide it in the module that imports `TerminusModule`; it needs
 * `EarwaxModule` (which lists the application's transports) in the
 * application.
 *
 * @example
 * ```ts
 * @Controller('health')
 * class HealthController {
 *   constructor(
 *     private readonly health: HealthCheckService,
 *     private readonly earwax: EarwaxHealthIndicator,
 *   ) {}
 *
 *   @Get()
 *   @HealthCheck()
 *   check() {
 *     return this.health.check([
 *       () => this.earwax.isHealthy('earwax', { maxOpenConnections: 5000 }),
 *     ]);
 *   }
 * }
 * ```
 *
 * @publicApi
 */
@Injectable()
export class EarwaxHealthIndicator {
  private readonly transports: EarwaxTransports;
  private readonly metrics: EarwaxMetrics;

  constructor(
    private readonly health: HealthIndicatorService,
    @Optional() transports?: EarwaxTransports,
    @Optional() metrics?: EarwaxMetrics,
  ) {
    if (!transports || !metrics) {
      throw new Error(
        'EarwaxHealthIndicator needs EarwaxModule.forRoot() (or forRootAsync()) imported in the application: it lists the transports to check.',
      );
    }
    this.transports = transports;
    this.metrics = metrics;
  }

  /**
   * Checks the application's transports (and any extra checks).
   *
   * @param key The key of the result in the health report.
   * @param options A connection threshold and extra checks.
   * @returns The indicator's result: `up`, or `down` with a `message`
   *   naming every problem.
   * @throws RangeError for a negative or non-finite `maxOpenConnections` or
   *   `checkTimeout`; TypeError for a check that is not a function.
   */
  async isHealthy<const Key extends string = 'earwax'>(
    key?: Key,
    options: EarwaxHealthOptions = {},
  ): Promise<HealthIndicatorResult<Key>> {
    const { maxOpenConnections, checks } = options;
    const checkTimeout = options.checkTimeout ?? DEFAULT_CHECK_TIMEOUT;
    assertCount('maxOpenConnections', maxOpenConnections);
    assertCount('checkTimeout', checkTimeout);
    for (const [name, check] of Object.entries(checks ?? {})) {
      if (typeof check !== 'function') {
        throw new TypeError(
          `EarwaxHealthIndicator: check "${name}" must be a function returning { healthy: boolean, ... }.`,
        );
      }
    }

    const problems: string[] = [];
    const transports: EarwaxTransportHealth[] = [];
    for (const transport of this.transports) {
      const health = this.describe(transport);
      transports.push(health);
      if (health.status !== 'listening') {
        const where = health.listeners.map((l) => l.address ?? l.name);
        problems.push(
          `transport ${where.join(', ')} is ${health.status.replace('_', ' ')}`,
        );
      }
    }
    if (transports.length === 0) {
      problems.push('no EarwaxTransport is bound to this application');
    }
    const openConnections = this.metrics.snapshot().openConnections;
    if (
      maxOpenConnections !== undefined &&
      openConnections > maxOpenConnections
    ) {
      problems.push(
        `${openConnections} connections open, above ${maxOpenConnections}`,
      );
    }

    // The place extra checks (the Redis adapter's) plug in.
    let checkDetails: Record<string, CheckDetails> | undefined;
    if (checks !== undefined) {
      const entries = await Promise.all(
        Object.entries(checks).map(
          async ([name, check]) =>
            [name, await runCheck(name, check, checkTimeout)] as const,
        ),
      );
      for (const [name, outcome] of entries) {
        if (outcome.status === 'down') {
          problems.push(
            typeof outcome.message === 'string'
              ? `${name} is down: ${outcome.message}`
              : `${name} is down`,
          );
        }
      }
      checkDetails = Object.fromEntries(entries);
    }

    const data = {
      transports,
      openConnections,
      ...(maxOpenConnections !== undefined && { maxOpenConnections }),
      ...(checkDetails !== undefined && { checks: checkDetails }),
    };
    const session = this.health.check((key ?? 'earwax') as Key);
    return problems.length === 0
      ? session.up(data)
      : session.down({ ...data, message: problems.join('; ') });
  }

  private describe(transport: EarwaxTransport): EarwaxTransportHealth {
    const listeners = transport.listenerNames.map((name) => {
      const bound = transport.address(name);
      return {
        name,
        address: bound ? formatHostPort(bound.address, bound.port) : null,
      };
    });
    return {
      status: this.transports.statusOf(transport) ?? 'not_started',
      listeners,
    };
  }
}

function assertCount(name: string, value: number | undefined): void {
  if (value === undefined) return;
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0) {
    throw new RangeError(
      `EarwaxHealthIndicator: "${name}" must be a finite number of at least 0, not ${String(value)}.`,
    );
  }
}

/** Runs one extra check, bounded by `timeout`; never rejects. */
async function runCheck(
  name: string,
  check: EarwaxHealthCheck,
  timeout: number,
): Promise<CheckDetails> {
  let timer: NodeJS.Timeout | undefined;
  try {
    const result = await Promise.race([
      Promise.resolve().then(check),
      new Promise<never>((_, reject) => {
        timer = setTimeout(
          () => reject(new Error(`timed out after ${timeout} ms`)),
          timeout,
        );
      }),
    ]);
    if (
      typeof result !== 'object' ||
      result === null ||
      typeof result.healthy !== 'boolean'
    ) {
      return {
        status: 'down',
        message: `check "${name}" returned no { healthy: boolean } result`,
      };
    }
    const { healthy, ...details } = result;
    return { ...details, status: healthy ? 'up' : 'down' };
  } catch (err) {
    return {
      status: 'down',
      message: err instanceof Error ? err.message : String(err),
    };
  } finally {
    clearTimeout(timer);
  }
}
