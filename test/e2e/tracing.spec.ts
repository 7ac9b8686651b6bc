/**
 * OpenTelemetry, end to end: a Nest microservice on EarwaxTransport (port
 * 0), players on real sockets through the testing kit, and the SDK's
 * in-memory exporters reading what the transport reported: a span per
 * handled event, handlers running in its context (their own spans, awaited
 * ones too, are its children), failures recorded, and the transport's
 * metrics through a meter.
 */
import 'reflect-metadata';
import { afterEach, beforeEach, describe, expect, it } from '@jest/globals';
import {
  Controller,
  type CallHandler,
  type ExecutionContext,
  type NestInterceptor,
} from '@nestjs/common';
import { Ctx, Payload, RpcException } from '@nestjs/microservices';
import {
  context,
  metrics,
  SpanKind,
  SpanStatusCode,
  trace,
  type Tracer,
} from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import {
  type DataPoint,
  InMemoryMetricExporter,
  AggregationTemporality,
  MeterProvider,
  PeriodicExportingMetricReader,
} from '@opentelemetry/sdk-metrics';
import {
  BasicTracerProvider,
  InMemorySpanExporter,
  type ReadableSpan,
  SimpleSpanProcessor,
  type SpanProcessor,
} from '@opentelemetry/sdk-trace-base';
import { setImmediate as turn } from 'node:timers/promises';
import {
  ConnectionContext,
  EarwaxEvent,
  type EarwaxOpenTelemetry,
  type EarwaxTransport,
} from '../../lib/index.js';
import {
  EarwaxTesting,
  type EarwaxTestServer,
} from '../../lib/testing/index.js';
import { Waiters } from '../support/waiters.js';

/** The tracer a game's own code uses inside its handlers. */
let gameTracer: Tracer;
/** The transport under test, for `dispatchEvent()` from a handler. */
let transport: EarwaxTransport;

@Controller()
class GameController {
  @EarwaxEvent('on_connect')
  welcome(@Ctx() ctx: ConnectionContext) {
    ctx.sendString(`welcome ${ctx.id}`);
  }

  @EarwaxEvent('on_data')
  async data(@Payload() line: string, @Ctx() ctx: ConnectionContext) {
    if (line === 'boom') throw new RpcException('boom');
    if (line === 'crash') throw new TypeError('crash');
    if (line === 'look') {
      // A span of the game's, around awaited work, with another inside it
      // after an await: both children of the event's span.
      return gameTracer.startActiveSpan('game look', async (span) => {
        await turn();
        const room = gameTracer.startSpan('game load-room');
        await turn();
        room.end();
        span.end();
        return 'A dark room.';
      });
    }
    if (line === 'fire') {
      await transport.dispatchEvent('on_spell', ctx, 'fireball');
      return 'cast';
    }
    return `echo ${line}`;
  }

  @EarwaxEvent('on_spell')
  spell(@Payload() spell: string, @Ctx() ctx: ConnectionContext) {
    ctx.sendString(`spell ${spell}`);
  }

  @EarwaxEvent('on_disconnect')
  left() {
    return undefined;
  }
}

/** Does nothing but make Nest's pipeline run (no direct dispatch). */
class PassThrough implements NestInterceptor {
  intercept(_context: ExecutionContext, next: CallHandler) {
    return next.handle();
  }
}

/** Lets a test await spans: told of each one that ends. */
class EndedSpans implements SpanProcessor {
  readonly spans: ReadableSpan[] = [];
  private readonly waiters = new Waiters(() =>
    this.spans.map((span) => span.name).join(', '),
  );

  onStart(): void {}
  onEnd(span: ReadableSpan): void {
    this.spans.push(span);
    this.waiters.wake();
  }
  forceFlush(): Promise<void> {
    return Promise.resolve();
  }
  shutdown(): Promise<void> {
    return Promise.resolve();
  }

  /** Resolves once `count` spans named `name` have ended. */
  async named(name: string, count = 1): Promise<ReadableSpan[]> {
    const matching = () => this.spans.filter((span) => span.name === name);
    await this.waiters.until(
      () => matching().length >= count,
      `${String(count)} span(s) named ${name}`,
    );
    return matching();
  }
}

let exporter: InMemorySpanExporter;
let ended: EndedSpans;
let tracerProvider: BasicTracerProvider;
let server: EarwaxTestServer | undefined;

beforeEach(() => {
  exporter = new InMemorySpanExporter();
  ended = new EndedSpans();
  tracerProvider = new BasicTracerProvider({
    spanProcessors: [new SimpleSpanProcessor(exporter), ended],
  });
  gameTracer = tracerProvider.getTracer('game');
  context.setGlobalContextManager(
    new AsyncLocalStorageContextManager().enable(),
  );
});

afterEach(async () => {
  await server?.close();
  server = undefined;
  await tracerProvider.shutdown();
  trace.disable();
  metrics.disable();
  context.disable();
});

async function boot(
  openTelemetry: EarwaxOpenTelemetry | undefined,
  throughNest = false,
): Promise<EarwaxTestServer> {
  server = await EarwaxTesting.createServer(
    { controllers: [GameController] },
    {
      transport: {
        encoding: 'utf8',
        eventTypes: ['on_spell'],
        ...(openTelemetry === undefined ? {} : { openTelemetry }),
      },
      configure: (app, created) => {
        transport = created;
        if (throughNest) app.useGlobalInterceptors(new PassThrough());
      },
    },
  );
  return server;
}

/** The exported spans of one trace, by name. */
function exported(name: string): ReadableSpan[] {
  return exporter.getFinishedSpans().filter((span) => span.name === name);
}

describe.each([
  ['called directly', false],
  ["through Nest's pipeline", true],
])('spans, with handlers %s', (_how, throughNest) => {
  it('makes a CONSUMER span per handled event, with the connection, listener and addresses', async () => {
    await boot({ tracerProvider }, throughNest);
    const player = await server!.connect();
    const id = (await player.readLine()).replace('welcome ', '');
    player.send('hello');
    await player.expectLine('echo hello');
    const [connect] = await ended.named('earwax on_connect');
    const [data] = await ended.named('earwax on_data');

    const local = player.socket.localPort;
    for (const [span, event, handled] of [
      [connect, 'on_connect', false],
      [data, 'on_data', false],
    ] as const) {
      expect(span.kind).toBe(SpanKind.CONSUMER);
      expect(span.status.code).toBe(SpanStatusCode.UNSET);
      expect(span.instrumentationScope.name).toBe('nestjs-earwax');
      expect(span.attributes).toEqual({
        'messaging.system': 'earwax',
        'messaging.operation.type': 'process',
        'messaging.operation.name': event,
        'messaging.destination.name': 'default',
        'network.transport': 'tcp',
        'network.peer.address': '127.0.0.1',
        'network.peer.port': local,
        'client.address': '127.0.0.1',
        'client.port': local,
        'earwax.event': event,
        'earwax.connection.id': id,
        'earwax.listener': 'default',
        'earwax.handled': handled,
      });
      // A client's event starts a trace of its own.
      expect(span.parentSpanContext).toBeUndefined();
    }
    expect(connect.spanContext().traceId).not.toBe(data.spanContext().traceId);
    // The in-memory exporter got them.
    expect(exported('earwax on_data')).toHaveLength(1);

    await player.close();
    const [left] = await ended.named('earwax on_disconnect');
    expect(left.attributes['earwax.connection.id']).toBe(id);
  });

  it("records a handler that throws on its event span, as Nest's exception filters give it", async () => {
    await boot({ tracerProvider }, throughNest);
    const player = await server!.connect();
    await player.readLine();
    player.send('boom');
    // Any other error reaches the transport as Nest's generic one (Nest's
    // filter logs the original).
    player.send('crash');
    player.send('after');
    await player.expectLine('echo after');
    const [boom, crash, after] = await ended.named('earwax on_data', 3);

    for (const [span, message] of [
      [boom, 'boom'],
      [crash, 'Internal server error'],
    ] as const) {
      expect(span.status).toEqual({
        code: SpanStatusCode.ERROR,
        message: `GameController.data: ${message}`,
      });
      expect(span.attributes['earwax.handler']).toBe('GameController.data');
      expect(span.attributes['error.type']).toBe('_OTHER');
      expect(span.events.map((event) => event.name)).toEqual(['exception']);
      expect(span.events[0].attributes?.['exception.message']).toBe(message);
    }
    // The next line's span is clean.
    expect(after.status.code).toBe(SpanStatusCode.UNSET);
    expect(after.events).toEqual([]);
  });

  it("runs handlers in the span's context: the game's spans, awaited ones too, are its children", async () => {
    await boot({ tracerProvider }, throughNest);
    const player = await server!.connect();
    await player.readLine();
    player.send('look');
    await player.expectLine('A dark room.');
    const [data] = await ended.named('earwax on_data');
    const [look] = await ended.named('game look');
    const [room] = await ended.named('game load-room');

    const { traceId, spanId } = data.spanContext();
    expect(look.spanContext().traceId).toBe(traceId);
    expect(look.parentSpanContext?.spanId).toBe(spanId);
    expect(room.spanContext().traceId).toBe(traceId);
    expect(room.parentSpanContext?.spanId).toBe(look.spanContext().spanId);
    // The event's span ends after the awaited work.
    expect(ended.spans.indexOf(data)).toBeGreaterThan(
      ended.spans.indexOf(look),
    );
  });

  it("traces an event raised by a handler (dispatchEvent) as a child of the handler's", async () => {
    await boot({ tracerProvider }, throughNest);
    const player = await server!.connect();
    await player.readLine();
    player.send('fire');
    await player.expectLine('spell fireball');
    await player.expectLine('cast');
    const [data] = await ended.named('earwax on_data');
    const [spell] = await ended.named('earwax on_spell');

    expect(spell.parentSpanContext?.spanId).toBe(data.spanContext().spanId);
    expect(spell.attributes['earwax.event']).toBe('on_spell');
  });
});

describe('openTelemetry: true', () => {
  it('uses the global provider, even one registered after listen(), and spans handled events only', async () => {
    await boot(true);
    // The global provider is a proxy: it delegates to one registered later.
    trace.setGlobalTracerProvider(tracerProvider);
    const player = await server!.connect();
    await player.readLine();
    player.send('one');
    await player.expectLine('echo one');
    await player.close();
    await ended.named('earwax on_disconnect');
    // A refusal raises on_block, which has no handler here: no span.
    transport.blockList.ban('127.0.0.1', { reason: 'test', kick: false });
    const refused = await server!.connect();
    await refused.expectClose();
    expect(ended.spans.map((span) => span.name)).toEqual([
      'earwax on_connect',
      'earwax on_data',
      'earwax on_disconnect',
    ]);
  });
});

describe('the default (openTelemetry left out)', () => {
  it('traces when a global tracer provider is registered before listen()', async () => {
    trace.setGlobalTracerProvider(tracerProvider);
    await boot(undefined);
    const player = await server!.connect();
    await player.readLine();
    player.send('hi');
    await player.expectLine('echo hi');
    const [data] = await ended.named('earwax on_data');
    expect(data.attributes['earwax.event']).toBe('on_data');
  });

  it('makes no span when no provider is registered at listen()', async () => {
    await boot(undefined);
    // Registered too late for the default, which looked once at listen().
    trace.setGlobalTracerProvider(tracerProvider);
    const player = await server!.connect();
    await player.readLine();
    player.send('look');
    await player.expectLine('A dark room.');
    // The game's own span is there, and had no event span to join.
    const [look] = await ended.named('game look');
    expect(look.parentSpanContext).toBeUndefined();
    expect(
      ended.spans.filter((span) => span.name.startsWith('earwax ')),
    ).toEqual([]);
  });

  it('stays off with openTelemetry: false, whatever is registered', async () => {
    trace.setGlobalTracerProvider(tracerProvider);
    await boot(false);
    const player = await server!.connect();
    await player.readLine();
    player.send('look');
    await player.expectLine('A dark room.');
    const [look] = await ended.named('game look');
    expect(look.parentSpanContext).toBeUndefined();
    expect(
      ended.spans.filter((span) => span.name.startsWith('earwax ')),
    ).toEqual([]);
  });
});

describe('metrics through a meter', () => {
  let metricExporter: InMemoryMetricExporter;
  let reader: PeriodicExportingMetricReader;
  let meterProvider: MeterProvider;

  beforeEach(() => {
    metricExporter = new InMemoryMetricExporter(
      AggregationTemporality.CUMULATIVE,
    );
    // Exports when flushed; the interval is far beyond any test.
    reader = new PeriodicExportingMetricReader({
      exporter: metricExporter,
      exportIntervalMillis: 3_600_000,
    });
    meterProvider = new MeterProvider({ readers: [reader] });
  });

  afterEach(async () => {
    await meterProvider.shutdown();
  });

  /** The data points of the last export, by instrument name. */
  async function collect(): Promise<Map<string, DataPoint<number>[]>> {
    metricExporter.reset();
    await reader.forceFlush();
    const points = new Map<string, DataPoint<number>[]>();
    for (const resource of metricExporter.getMetrics()) {
      for (const scope of resource.scopeMetrics) {
        expect(scope.scope.name).toBe('nestjs-earwax');
        for (const metric of scope.metrics) {
          points.set(
            metric.descriptor.name,
            metric.dataPoints as DataPoint<number>[],
          );
        }
      }
    }
    return points;
  }

  /** The value of an instrument without attributes. */
  function value(points: Map<string, DataPoint<number>[]>, name: string) {
    const found = points.get(name);
    expect(found).toHaveLength(1);
    return found?.[0].value;
  }

  it('offers the same figures as the Prometheus text, read at collection', async () => {
    await boot({ meterProvider, tracerProvider });
    const players = [await server!.connect(), await server!.connect()];
    for (const player of players) await player.readLine();
    players[0].send('one');
    players[0].send('two');
    players[1].send('boom');
    players[1].send('three');
    await players[0].expectLine('echo two');
    await players[1].expectLine('echo three');

    const points = await collect();
    const s = transport.metrics.snapshot();
    expect({
      accepted: value(points, 'earwax.connections.accepted'),
      admitted: value(points, 'earwax.connections.admitted'),
      lines: value(points, 'earwax.lines.received'),
      errors: value(points, 'earwax.handler.errors'),
      open: value(points, 'earwax.connections.open'),
      held: value(points, 'earwax.sockets.held'),
      listening: value(points, 'earwax.transports.listening'),
      received: value(points, 'earwax.bytes.received'),
    }).toEqual({
      accepted: 2,
      admitted: 2,
      lines: 4,
      errors: 1,
      open: 2,
      held: 2,
      listening: 1,
      received: s.bytesReceived,
    });
    expect(transport.metrics.toPrometheus()).toContain(
      'earwax_lines_received_total 4\n',
    );
    // Every reason is a series from the start, at 0 until it happens.
    const refused = points.get('earwax.connections.refused') ?? [];
    expect(
      Object.fromEntries(
        refused.map((point) => [point.attributes.reason, point.value]),
      ),
    ).toEqual(s.connectionsRefused);
    expect(points.get('earwax.disconnections')).toHaveLength(
      Object.keys(s.disconnections).length,
    );

    // Read again at the next collection: nothing is pushed per line.
    await players[0].close();
    await ended.named('earwax on_disconnect');
    const later = await collect();
    expect(value(later, 'earwax.connections.open')).toBe(1);
    const disconnections = later.get('earwax.disconnections') ?? [];
    expect(
      disconnections.find(
        (point) => point.attributes.reason === 'client_closed',
      )?.value,
    ).toBe(1);
  });

  it('makes no span with spans: false, and no instrument with metrics: false', async () => {
    await boot({ tracerProvider, meterProvider, metrics: false });
    const player = await server!.connect();
    await player.readLine();
    player.send('x');
    await player.expectLine('echo x');
    await ended.named('earwax on_data');
    expect((await collect()).size).toBe(0);
  });
});
