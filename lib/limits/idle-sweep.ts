import type { ConnectionState } from '../interfaces/connection.interface.js';

/**
 * What the sweep reads and writes of a connection.
 *
 * @internal
 */
export interface IdleTracked {
  readonly state: ConnectionState;
  readonly connectedAt: number;
  /** Set by every input event, cleared by the sweep. */
  inputSeen: boolean;
  /** When the sweep last saw input; 0 before any. */
  lastInputAt: number;
}

/**
 * The idle and first-input timeouts of one transport, checked by one timer
 * for every connection rather than one timer per connection: input only
 * sets `ctx.inputSeen`, so the hot path pays nothing and an idle connection
 * holds no timer. A connection is found idle up to one sweep interval (an
 * eighth of the shortest timeout, at most 5 s) late, never early.
 *
 * @internal
 */
export class IdleSweep<T extends IdleTracked = IdleTracked> {
  private timer: NodeJS.Timeout | undefined;

  /**
   * @param idleTimeout Ms without input; `false` for never.
   * @param firstInputTimeout Ms to the first input; `false` for never.
   * @param drop Called for each connection found idle, with why.
   */
  constructor(
    private readonly idleTimeout: number | false,
    private readonly firstInputTimeout: number | false,
    private readonly drop: (ctx: T, why: string) => void,
  ) {}

  /** Starts sweeping `connections` (a live view); does nothing if no timeout is set. */
  start(connections: Iterable<T>): void {
    const shortest = Math.min(
      this.idleTimeout === false ? Infinity : this.idleTimeout,
      this.firstInputTimeout === false ? Infinity : this.firstInputTimeout,
    );
    if (shortest === Infinity || this.timer) return;
    const every = Math.min(5000, Math.max(10, Math.floor(shortest / 8)));
    this.timer = setInterval(() => this.sweep(connections), every);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  private sweep(connections: Iterable<T>): void {
    const { idleTimeout, firstInputTimeout } = this;
    const now = Date.now();
    for (const ctx of connections) {
      if (ctx.state !== 'open') continue;
      if (ctx.inputSeen) {
        ctx.inputSeen = false;
        ctx.lastInputAt = now;
      } else if (ctx.lastInputAt === 0) {
        if (
          firstInputTimeout !== false &&
          now - ctx.connectedAt >= firstInputTimeout
        ) {
          this.drop(ctx, `No input within ${firstInputTimeout} ms`);
        }
      } else if (
        idleTimeout !== false &&
        now - ctx.lastInputAt >= idleTimeout
      ) {
        this.drop(ctx, `No input for ${idleTimeout} ms`);
      }
    }
  }
}
