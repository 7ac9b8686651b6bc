import type { MessageHandler } from '@nestjs/microservices';
import { isObservable } from 'rxjs';
import type { AnyConnectionContext } from '../connection/connection-context.js';
import { EVENT_HANDLED } from '../earwax.constants.js';
import type { DirectDispatcher, DirectHandler } from './direct-dispatch.js';

/** One `@EarwaxEvent` handler in its event's chain. */
interface HandlerEntry {
  readonly handler: MessageHandler;
  readonly priority: number;
  readonly seq: number;
  readonly origin: string;
  /** The decorated method, from the decorator's extras. */
  readonly method: unknown;
  /** Set by `compile()` when the handler can skip Nest's pipeline. */
  direct: DirectHandler | undefined;
}

/**
 * Nest's processing start and end hooks (`Server#setOnProcessingStartHook`),
 * bound to the transport.
 *
 * @internal
 */
export interface ProcessingHooks {
  start(ctx: AnyConnectionContext, run: () => Promise<void>): void;
  end(ctx: AnyConnectionContext): void;
}

/**
 * What traces events when OpenTelemetry is on (`lib/tracing/`): it runs
 * `chains.runUntraced()` inside a span of its own.
 *
 * @internal
 */
export interface EventTracer {
  /**
   * Runs the handlers of `event` for `ctx` in a span.
   *
   * @param fromCode Whether code (`dispatchEvent()`) raised the event, so
   *   that the span is a child of the caller's; a client's events start a
   *   trace of their own.
   */
  trace(
    chains: HandlerChains,
    ctx: AnyConnectionContext,
    event: string,
    data: unknown,
    fromCode: boolean,
  ): boolean | Promise<boolean>;
  /** A handler of an event of `ctx` failed (told before the failure sink). */
  failed(ctx: AnyConnectionContext, origin: string, err: unknown): void;
}

/** Reports a handler that threw (or rejected, or whose Observable errored). */
type FailureSink = (
  origin: string,
  event: string,
  ctx: AnyConnectionContext,
  err: unknown,
) => void;

/** A chain's first handler still to call (see `finish`). */
const NOT_CALLED = Symbol('not called');

/**
 * The `@EarwaxEvent` handlers of a transport, one ordered chain per event
 * type, and how one event runs through its chain: highest priority first,
 * then in registration order, until a handler stops it with
 * `EVENT_HANDLED`; a handler's returned text or bytes are sent as lines.
 * What happens around an event (the connection's queue, its end) is the
 * transport's.
 *
 * @internal
 */
export class HandlerChains {
  private readonly chains = new Map<string, readonly HandlerEntry[]>();
  private seq = 0;
  /** How many direct handlers are running, one inside another's call. */
  private depth = 0;
  /** Nest's processing hooks, once the application sets one. */
  hooks: ProcessingHooks | undefined;
  /** Traces each event run, while OpenTelemetry is on. */
  tracer: EventTracer | undefined;

  constructor(private readonly failureSink: FailureSink) {}

  /** Whether a direct handler is running now (and this is inside it). */
  get nested(): boolean {
    return this.depth > 0;
  }

  /** Adds a handler to its event's chain. */
  add(
    event: string,
    handler: MessageHandler,
    priority: number,
    origin: string,
    method: unknown,
  ): void {
    const entry: HandlerEntry = {
      handler,
      priority,
      seq: this.seq++,
      origin,
      method,
      direct: undefined,
    };
    // A new array each time: a chain being dispatched is never changed under
    // its feet (earwax_server re-ran handlers when a list changed mid-dispatch).
    const chain = [...(this.chains.get(event) ?? []), entry].sort(
      (a, b) => b.priority - a.priority || a.seq - b.seq,
    );
    this.chains.set(event, chain);
  }

  /** Each event with handlers, and its handlers' `Class.method`, in order. */
  *events(): IterableIterator<[string, string[]]> {
    for (const [event, chain] of this.chains) {
      yield [event, chain.map((entry) => entry.origin)];
    }
  }

  /** The `Class.method` of an event's handlers, in the order they run. */
  order(event: string): string[] {
    return (this.chains.get(event) ?? []).map((entry) => entry.origin);
  }

  /**
   * Lets each handler that Nest's pipeline has nothing to apply to skip it
   * (see `NestDirectDispatcher`).
   *
   * @param report Told, for each handler, whether it is called directly.
   */
  compile(
    dispatcher: DirectDispatcher | undefined,
    report: (origin: string, event: string, direct: boolean) => void,
  ): void {
    for (const [event, chain] of this.chains) {
      for (const entry of chain) {
        entry.direct = dispatcher?.compile(entry.method);
        report(entry.origin, event, entry.direct !== undefined);
      }
    }
  }

  /**
   * Runs an event's handler chain for `ctx`: at once while its handlers are
   * direct ones that return a plain result (no promise, no Observable, so no
   * promise of ours either), and from the first other one in `finish`.
   *
   * @returns Whether a handler stopped the chain, or a promise of it (which
   *   never rejects: a handler's error goes to the failure sink).
   */
  run(
    ctx: AnyConnectionContext,
    event: string,
    data: unknown,
  ): boolean | Promise<boolean> {
    const chain = this.chains.get(event);
    if (chain === undefined) return false;
    // The one thing tracing costs when it is off.
    if (this.tracer !== undefined) {
      return this.tracer.trace(this, ctx, event, data, false);
    }
    return this.runChain(ctx, event, data, chain);
  }

  /**
   * `run()` for an event that code raised (`dispatchEvent()`): traced as a
   * child of the caller's span.
   */
  dispatch(
    ctx: AnyConnectionContext,
    event: string,
    data: unknown,
  ): boolean | Promise<boolean> {
    if (this.tracer === undefined || !this.chains.has(event)) {
      return this.run(ctx, event, data);
    }
    return this.tracer.trace(this, ctx, event, data, true);
  }

  /** `run()` without the tracer: what the tracer calls inside its span. */
  runUntraced(
    ctx: AnyConnectionContext,
    event: string,
    data: unknown,
  ): boolean | Promise<boolean> {
    const chain = this.chains.get(event);
    return chain === undefined ? false : this.runChain(ctx, event, data, chain);
  }

  private runChain(
    ctx: AnyConnectionContext,
    event: string,
    data: unknown,
    chain: readonly HandlerEntry[],
  ): boolean | Promise<boolean> {
    if (this.hooks !== undefined) {
      return this.finish(ctx, event, data, chain, 0, NOT_CALLED);
    }
    for (let i = 0; i < chain.length; i++) {
      const entry = chain[i];
      const direct = entry.direct;
      if (direct === undefined) {
        return this.finish(ctx, event, data, chain, i, NOT_CALLED);
      }
      let outcome: boolean | Promise<boolean>;
      this.depth++;
      try {
        const result = direct(data, ctx);
        if (result instanceof Promise) {
          return this.finish(ctx, event, data, chain, i, result);
        }
        outcome = this.outcome(result, ctx);
      } catch (err) {
        this.failed(entry.origin, event, ctx, err);
        return false;
      } finally {
        this.depth--;
      }
      if (outcome === true) return true;
      if (outcome !== false) {
        return this.finish(ctx, event, data, chain, i, outcome, true);
      }
    }
    return false;
  }

  /**
   * The rest of a chain, from `from`, one handler after another. `pending`
   * is what handler `from` already returned (its outcome when `isOutcome`),
   * or `NOT_CALLED`.
   */
  private async finish(
    ctx: AnyConnectionContext,
    event: string,
    data: unknown,
    chain: readonly HandlerEntry[],
    from: number,
    pending: unknown,
    isOutcome = false,
  ): Promise<boolean> {
    for (let i = from; i < chain.length; i++) {
      const entry = chain[i];
      let stop: boolean;
      try {
        if (i === from && pending !== NOT_CALLED) {
          stop = isOutcome
            ? await (pending as Promise<boolean>)
            : await this.outcome(await pending, ctx);
        } else if (this.hooks !== undefined) {
          stop = await this.invokeWithHooks(
            entry.direct ?? entry.handler,
            data,
            ctx,
          );
        } else {
          stop = await this.invoke(entry, data, ctx);
        }
      } catch (err) {
        this.failed(entry.origin, event, ctx, err);
        return false;
      }
      if (stop) return true;
    }
    return false;
  }

  /** A handler failed: the tracer's span records it, the sink reports it. */
  private failed(
    origin: string,
    event: string,
    ctx: AnyConnectionContext,
    err: unknown,
  ): void {
    this.tracer?.failed(ctx, origin, err);
    this.failureSink(origin, event, ctx, err);
  }

  /** Calls one handler and says whether it stopped the chain. */
  private async invoke(
    entry: HandlerEntry,
    data: unknown,
    ctx: AnyConnectionContext,
  ): Promise<boolean> {
    let result: unknown;
    if (entry.direct !== undefined) {
      this.depth++;
      try {
        result = entry.direct(data, ctx);
      } finally {
        this.depth--;
      }
      if (result instanceof Promise) result = await result;
    } else {
      result = await entry.handler(data, ctx);
    }
    return this.outcome(result, ctx);
  }

  /** Runs a handler between Nest's processing start and end hooks. */
  private invokeWithHooks(
    handler: (data: unknown, ctx: AnyConnectionContext) => unknown,
    data: unknown,
    ctx: AnyConnectionContext,
  ): Promise<boolean> {
    return new Promise<boolean>((resolve, reject) => {
      const hooks = this.hooks as ProcessingHooks;
      // Our own once-only runner: Nest 11's Server has no
      // createProcessingEndHookRunner.
      let ended = false;
      const runEndHook = () => {
        if (ended) return;
        ended = true;
        hooks.end(ctx);
      };
      const run = async () => {
        try {
          resolve(await this.outcome(await handler(data, ctx), ctx));
        } catch (err) {
          reject(err);
        } finally {
          runEndHook();
        }
      };
      try {
        hooks.start(ctx, run);
      } catch (err) {
        reject(err);
      }
    });
  }

  /**
   * What a handler's return value does: `EVENT_HANDLED` stops the chain;
   * text or bytes, or an array of them, are sent to the connection as
   * lines; an Observable does the same with each value it emits (its last
   * value decides whether the chain stops). Anything else is ignored.
   *
   * @returns Whether the chain stops; a promise only for an Observable.
   */
  private outcome(
    result: unknown,
    ctx: AnyConnectionContext,
  ): boolean | Promise<boolean> {
    if (result === EVENT_HANDLED) return true;
    if (result === undefined || result === null) return false;
    if (isObservable(result)) {
      return new Promise<boolean>((resolve, reject) => {
        let handled = false;
        result.subscribe({
          next: (value) => {
            handled = value === EVENT_HANDLED;
            if (!handled) sendReply(value, ctx);
          },
          error: reject,
          complete: () => resolve(handled),
        });
      });
    }
    sendReply(result, ctx);
    return false;
  }
}

/** Sends a handler's reply: text, bytes, or an array of them, as lines. */
function sendReply(value: unknown, ctx: AnyConnectionContext): void {
  if (typeof value === 'string') {
    ctx.sendString(value);
  } else if (value instanceof Uint8Array) {
    ctx.sendBytes(value);
  } else if (Array.isArray(value)) {
    for (const item of value as unknown[]) {
      if (typeof item === 'string') ctx.sendString(item);
      else if (item instanceof Uint8Array) ctx.sendBytes(item);
    }
  }
}
