import 'reflect-metadata';
import { afterEach, describe, expect, it } from '@jest/globals';
import { Controller, Inject, Injectable } from '@nestjs/common';
import { Ctx, Payload } from '@nestjs/microservices';
import { AsyncLocalStorage } from 'node:async_hooks';
import { finalize, from, map } from 'rxjs';
import {
  ConnectionContext,
  EarwaxEvent,
  EarwaxTransport,
} from '../../lib/index.js';
import { bootEarwax, type Booted } from '../support/boot.js';
import { Gate } from '../support/gate.js';
import { Journal } from '../support/journal.js';
import { LineClient } from '../support/line-client.js';

const JOURNAL = 'JOURNAL';

/** One hook call or handler step, in the order they happened. */
interface Step {
  kind: 'start' | 'end' | 'handler' | 'complete';
  /** The span the step ran in (the start hook's AsyncLocalStorage store). */
  span: number | undefined;
  ctx: unknown;
  what: string;
}

/** The span a handler runs in, as tracing instrumentation keeps it. */
const spans = new AsyncLocalStorage<number>();

/** Lets a handler reach the transport, to fire a custom event. */
@Injectable()
class TransportRef {
  transport: EarwaxTransport | undefined;
}

@Controller()
class TracedController {
  constructor(
    @Inject(JOURNAL) private readonly journal: Journal<Step>,
    private readonly gate: Gate,
    private readonly ref: TransportRef,
  ) {}

  private step(
    what: string,
    ctx: ConnectionContext,
    kind: Step['kind'] = 'handler',
  ) {
    this.journal.record({ kind, span: spans.getStore(), ctx, what });
  }

  @EarwaxEvent('on_connect')
  connected(@Ctx() ctx: ConnectionContext) {
    this.step('connect', ctx);
  }

  @EarwaxEvent('on_data', { priority: 10 })
  async first(@Payload() line: string, @Ctx() ctx: ConnectionContext) {
    this.step(`first:${line}`, ctx);
    if (line === 'boom') throw new Error('boom');
    if (line === 'reject') {
      await Promise.resolve();
      throw new Error('rejected');
    }
    if (line === 'tell') {
      await this.ref.transport?.dispatchEvent('on_tell', ctx, 'psst');
    }
  }

  @EarwaxEvent('on_data')
  second(@Payload() line: string, @Ctx() ctx: ConnectionContext) {
    this.step(`second:${line}`, ctx);
    if (line !== 'later') return `echo ${line}`;
    // Finishes when the test opens the gate: the end hook must wait.
    return from(this.gate.open).pipe(
      map(() => 'echo later'),
      finalize(() => this.step('later', ctx, 'complete')),
    );
  }

  @EarwaxEvent('on_tell')
  told(@Payload() secret: string, @Ctx() ctx: ConnectionContext) {
    this.step(`tell:${secret}`, ctx);
  }

  @EarwaxEvent('on_disconnect')
  disconnected(@Ctx() ctx: ConnectionContext) {
    this.step('disconnect', ctx);
  }
}

describe('Nest processing hooks (as tracing instrumentation installs them)', () => {
  let booted: Booted | undefined;
  afterEach(async () => {
    await booted?.app.close();
    booted = undefined;
  });

  it('wraps every handler call in one start and one end, with the connection context, also when it throws', async () => {
    const journal = new Journal<Step>();
    const gate = new Gate();
    const ref = new TransportRef();
    const transportIds: unknown[] = [];
    let nextSpan = 0;
    booted = await bootEarwax(
      {
        controllers: [TracedController],
        providers: [
          { provide: JOURNAL, useValue: journal },
          { provide: Gate, useValue: gate },
          { provide: TransportRef, useValue: ref },
        ],
      },
      { encoding: 'utf8', eventTypes: ['on_tell'] },
      (_app, transport) => {
        ref.transport = transport;
        transport.setOnProcessingStartHook((transportId, context, done) => {
          transportIds.push(transportId);
          const span = ++nextSpan;
          journal.record({ kind: 'start', span, ctx: context, what: '' });
          // A tracer runs the rest inside its span's async context.
          return spans.run(span, done);
        });
        transport.setOnProcessingEndHook((transportId, context) => {
          transportIds.push(transportId);
          // Still inside the span's async context, as a tracer needs.
          journal.record({
            kind: 'end',
            span: spans.getStore(),
            ctx: context,
            what: '',
          });
        });
      },
    );
    const client = await LineClient.connect(booted.port);
    client.send('hi');
    client.send('boom');
    client.send('reject');
    client.send('tell');
    client.send('later');
    const laterStarted = (es: readonly Step[]) =>
      es.some((e) => e.what === 'second:later');
    await journal.waitFor(laterStarted, 'the "later" handler to start');
    gate.release();
    await client.expectLine('echo later');
    await client.end();
    await journal.waitFor(
      (es) =>
        es.some((e) => e.what === 'disconnect') && es.at(-1)?.kind === 'end',
      'on_disconnect to end',
    );

    // Replay the steps against a stack of open spans: each handler step
    // must run inside the span its start hook opened, and each end hook
    // run in, and close, the innermost open span of that same connection.
    const steps = journal.entries;
    const ctx = steps.find((s) => s.kind === 'handler')?.ctx;
    expect(ctx).toBeInstanceOf(ConnectionContext);
    const open: number[] = [];
    const calls: string[] = [];
    const order: string[] = [];
    for (const step of steps) {
      expect(step.ctx).toBe(ctx);
      if (step.kind === 'start') {
        open.push(step.span as number);
        order.push('start');
      } else if (step.kind === 'end') {
        expect(open.length).toBeGreaterThan(0);
        expect(step.span).toBe(open.pop());
        order.push('end');
      } else {
        expect(step.span).toBe(open.at(-1));
        if (step.kind === 'handler') calls.push(step.what);
        order.push(step.what);
      }
    }
    expect(open).toEqual([]);
    // Each call once, in order; a throwing handler stops its chain (so no
    // `second:boom` / `second:reject`), and the custom event nests inside
    // the handler that fired it.
    expect(calls).toEqual([
      'connect',
      'first:hi',
      'second:hi',
      'first:boom',
      'first:reject',
      'first:tell',
      'tell:psst',
      'second:tell',
      'first:later',
      'second:later',
      'disconnect',
    ]);
    expect(steps.filter((s) => s.kind === 'start')).toHaveLength(calls.length);
    expect(steps.filter((s) => s.kind === 'end')).toHaveLength(calls.length);
    // The end hook of a handler returning an Observable waits for it.
    const later = order.indexOf('second:later');
    expect(order.slice(later, later + 3)).toEqual([
      'second:later',
      'later',
      'end',
    ]);
    // The nested span of the custom event closes before its parent.
    const tell = order.indexOf('first:tell');
    expect(order.slice(tell, tell + 5)).toEqual([
      'first:tell',
      'start',
      'tell:psst',
      'end',
      'end',
    ]);
    expect(new Set(transportIds)).toEqual(
      new Set([booted.transport.transportId]),
    );
    // The failures were still reported, once each.
    expect(
      booted.logs.find('TracedController.first failed on on_data'),
    ).toHaveLength(2);
  });
});
