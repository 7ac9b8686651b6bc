import type { INestMicroservice } from '@nestjs/common';
import type { AddressInfo } from 'node:net';
import type { ConnectionRegistry } from '../registry/connection.registry.js';
import type { EarwaxTransport } from '../transport/earwax.transport.js';
import { formatHostPort } from '../utils/host-port.js';
import { EarwaxTestClient } from './earwax-test-client.js';
import type { EarwaxTestLogger } from './earwax-test-logger.js';
import type { EarwaxTestConnectOptions } from './interfaces/earwax-test-client-options.interface.js';

/**
 * A game application booted for a test by `EarwaxTesting.createServer()`:
 * listening on a free port of 127.0.0.1, with its transport, registry and
 * logs at hand, and a way to connect players to it. `close()` closes every
 * client it opened, then the application.
 *
 * @publicApi
 */
export class EarwaxTestServer {
  private readonly opened: EarwaxTestClient[] = [];
  private closing: Promise<void> | undefined;

  /** Where the transport listens (its real port, after binding port 0). */
  readonly address: AddressInfo;

  /**
   * Built by `EarwaxTesting.createServer()`; not meant to be built directly.
   *
   * @param app The listening application.
   * @param transport Its transport.
   * @param logs The logger recording its log entries.
   */
  constructor(
    readonly app: INestMicroservice,
    readonly transport: EarwaxTransport,
    readonly logs: EarwaxTestLogger,
  ) {
    const address = transport.address();
    if (address === null) {
      throw new Error(
        'EarwaxTestServer: the transport is not listening, so it has no address',
      );
    }
    this.address = address;
  }

  /**
   * The address clients connect to: the bound one, or loopback when the
   * transport listens on every interface.
   */
  get host(): string {
    return loopback(this.address.address);
  }

  /** The port the transport is bound to. */
  get port(): number {
    return this.address.port;
  }

  /**
   * Where one of the transport's `listeners` is bound.
   *
   * @param listener The listener's name.
   * @throws Error when the transport has no listener of that name.
   */
  addressOf(listener: string): AddressInfo {
    const address = this.transport.address(listener);
    if (address === null) {
      throw new Error(
        `EarwaxTestServer: the transport has no listening listener named ${JSON.stringify(listener)}`,
      );
    }
    return address;
  }

  /** The application's live connections (`transport.connections`). */
  get registry(): ConnectionRegistry {
    return this.transport.connections;
  }

  /** The clients opened through this server, in order. */
  get clients(): readonly EarwaxTestClient[] {
    return this.opened;
  }

  /**
   * Opens a test client to this server (a player connecting) and resolves
   * once connected; `close()` closes it.
   *
   * @param options From which loopback address, telnet-aware or not, the
   *   default timeout of its waits, ...
   * @throws Error (rejects) when the server is closed or the connection
   *   fails.
   */
  async connect(
    options: EarwaxTestConnectOptions = {},
  ): Promise<EarwaxTestClient> {
    if (this.closing) {
      throw new Error(
        `EarwaxTestServer on ${formatHostPort(this.host, this.port)}: connect() after close()`,
      );
    }
    const { listener, ...rest } = options;
    const address =
      listener === undefined ? this.address : this.addressOf(listener);
    const client = await EarwaxTestClient.connect({
      ...rest,
      host: options.host ?? loopback(address.address),
      port: options.port ?? address.port,
    });
    this.opened.push(client);
    return client;
  }

  /**
   * Opens `count` clients at once and resolves when all are connected. If
   * one fails, the others are closed and the first error is thrown.
   *
   * @param options The same options for each client, or a function giving
   *   each its own from its index (`(i) => ({ from: \`127.0.0.${i + 2}\` })`).
   */
  async connectMany(
    count: number,
    options:
      | EarwaxTestConnectOptions
      | ((index: number) => EarwaxTestConnectOptions) = {},
  ): Promise<EarwaxTestClient[]> {
    if (!Number.isInteger(count) || count < 0) {
      throw new TypeError(
        `connectMany() needs a whole number of clients, got ${String(count)}`,
      );
    }
    const attempts = await Promise.allSettled(
      Array.from({ length: count }, (_, i) =>
        this.connect(typeof options === 'function' ? options(i) : options),
      ),
    );
    const failed = attempts.find((a) => a.status === 'rejected');
    if (failed) {
      await Promise.all(
        attempts.map((a) =>
          a.status === 'fulfilled' ? a.value.close() : undefined,
        ),
      );
      throw failed.reason;
    }
    return attempts.map(
      (a) => (a as PromiseFulfilledResult<EarwaxTestClient>).value,
    );
  }

  /**
   * Closes every client opened through this server (each as a player who
   * quits: `client_closed`), then the application (`app.close()`: the
   * transport's graceful shutdown and Nest's shutdown hooks). Calling it
   * again returns the same promise; it is safe after `app.close()`.
   */
  close(): Promise<void> {
    this.closing ??= (async () => {
      await Promise.all(this.opened.map((client) => client.close()));
      await this.app.close();
    })();
    return this.closing;
  }
}

/** The address to connect to for a bound one: loopback for a wildcard. */
function loopback(bound: string): string {
  if (bound === '0.0.0.0') return '127.0.0.1';
  if (bound === '::') return '::1';
  return bound;
}
