import type { Context, Span, Tracer } from '@opentelemetry/api';
import type { AnyConnectionContext } from '../connection/connection-context.js';
import type { EventTracer, HandlerChains } from '../pipeline/handler-chains.js';
import { describeError } from '../utils/describe-error.js';
import type { OpenTelemetryApi } from './load-api.js';
import { errorType, eventAttributes } from './span-attributes.js';

/**
 * A span for each event that has handlers, named `earwax <event>`, of kind
 * `CONSUMER` (the transport processes a message from a client): its
 * handlers run in the span's context, so spans they start (awaited ones
 * included, with a context manager such as Node's `AsyncLocalStorage` one)
 * are its children. A handler that fails is recorded on it (an exception
 * event, status `ERROR`); `earwax.handled` says whether a handler stopped
 * the chain with `EVENT_HANDLED`.
 *
 * @internal
 */
export class OpenTelemetryEventTracer implements EventTracer {
  /**
   * The span of each connection's running event: where a failure is
   * recorded even without a context manager. Events of one connection run
   * one at a time; one raised by a handler (`dispatchEvent()`) nests, and
   * gives the outer span back when it ends.
   */
  private readonly current = new WeakMap<AnyConnectionContext, Span>();

  constructor(
    private readonly api: OpenTelemetryApi,
    private readonly tracer: Tracer,
  ) {}

  trace(
    chains: HandlerChains,
    ctx: AnyConnectionContext,
    event: string,
    data: unknown,
    fromCode: boolean,
  ): boolean | Promise<boolean> {
    const { context, trace, SpanKind, ROOT_CONTEXT } = this.api;
    // A client's event starts a trace: whatever context the socket's
    // callback happens to run in (the one listen() ran in) is no parent.
    const parent: Context = fromCode ? context.active() : ROOT_CONTEXT;
    const span = this.tracer.startSpan(
      `earwax ${event}`,
      { kind: SpanKind.CONSUMER, attributes: eventAttributes(ctx, event) },
      parent,
    );
    const outer = this.current.get(ctx);
    this.current.set(ctx, span);
    let handled: boolean | Promise<boolean>;
    try {
      handled = context.with(
        trace.setSpan(parent, span),
        chains.runUntraced,
        chains,
        ctx,
        event,
        data,
      );
    } catch (err) {
      // Handlers' errors never get here (the chain reports them); the span
      // still ends.
      this.end(ctx, span, outer, false);
      throw err;
    }
    if (handled === true || handled === false) {
      this.end(ctx, span, outer, handled);
      return handled;
    }
    // Never rejects (a handler's error goes to the failure sink).
    return handled.then((result) => {
      this.end(ctx, span, outer, result);
      return result;
    });
  }

  failed(ctx: AnyConnectionContext, origin: string, err: unknown): void {
    const span = this.current.get(ctx);
    if (span === undefined) return;
    span.recordException(
      err instanceof Error ? err : { message: describeError(err) },
    );
    span.setAttributes({
      'error.type': errorType(err),
      'earwax.handler': origin,
    });
    span.setStatus({
      code: this.api.SpanStatusCode.ERROR,
      message: `${origin}: ${describeError(err)}`,
    });
  }

  private end(
    ctx: AnyConnectionContext,
    span: Span,
    outer: Span | undefined,
    handled: boolean,
  ): void {
    span.setAttribute('earwax.handled', handled);
    span.end();
    if (this.current.get(ctx) !== span) return;
    if (outer === undefined) this.current.delete(ctx);
    else this.current.set(ctx, outer);
  }
}
