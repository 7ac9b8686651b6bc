/**
 * nestjs-earwax on several cores: the `cores` scenario's server. One
 * process, or a Node `cluster` of worker processes serving one port and
 * joined by the Redis adapter, so that a broadcast reaches every worker's
 * connections.
 *
 * Modes (`--mode`):
 * - `echo`: line framing; `on_data` echoes with `ctx.sendBytes(line)`.
 * - `broadcast`: a line from any connection goes to every other one, on
 *   every process, through the injected `ConnectionRegistry.broadcast()`.
 *
 * From the environment (the shared command line has no options for them):
 * - `BENCH_PROCESSES`: worker processes; 1 (the default) is one ordinary
 *   process, no cluster and no adapter: the baseline.
 * - `BENCH_WORKER_CORES`: `0,1,...`: worker `i` is pinned to the `i`-th
 *   core of the list (`taskset`); without it, workers run where the primary
 *   was pinned.
 * - `REDIS_URL`: the Redis that joins the workers (needed with 2 or more).
 *
 * With 2 or more workers, this process is the cluster's primary: it forks
 * the workers (this same program), hands them the connections it accepts,
 * one each in turn (`cluster.SCHED_RR`), and serves no connection itself.
 * Towards bench/run.mjs it speaks the control protocol of control.ts for
 * the whole cluster: `usage` and `gc` are asked of every worker and summed
 * with its own, so the CPU figures cover every process, the primary's
 * included; `stop` stops them all.
 */
import { execFileSync } from 'node:child_process';
import cluster, { type Worker } from 'node:cluster';
import type { ModuleMetadata } from '@nestjs/common';
import { serve, serverArgs, type Usage } from './control.js';
import type * as EarwaxApi from '../../lib/index.js';
import type * as EarwaxRedisApi from '../../lib/redis/index.js';

const args = serverArgs();
if (args.mode !== 'echo' && args.mode !== 'broadcast') {
  throw new Error(`earwax-cores server: unknown mode ${args.mode}`);
}
const processes = Number(process.env.BENCH_PROCESSES ?? '1');
if (!Number.isInteger(processes) || processes < 1) {
  throw new Error(`BENCH_PROCESSES must be a whole number ≥ 1`);
}
const redisUrl = process.env.REDIS_URL;
if (processes > 1 && !redisUrl) {
  throw new Error('earwax-cores server: 2 or more processes need REDIS_URL.');
}

// ---------------------------------------------------------------------------
// A worker, or the one process: the Nest application.

async function runApplication(): Promise<void> {
  // Loaded here, not by the primary, which runs no Nest application.
  await import('reflect-metadata');
  const { Controller, Inject } = await import('@nestjs/common');
  const { NestFactory } = await import('@nestjs/core');
  const { Ctx, Payload } = await import('@nestjs/microservices');
  const { earwax } = await import('./earwax-package.js');
  const { ConnectionRegistry, EarwaxEvent, EarwaxModule, EarwaxTransport } =
    earwax;

  @Controller()
  class EchoController {
    @EarwaxEvent('on_data')
    echo(
      @Payload() line: Buffer,
      @Ctx() ctx: EarwaxApi.ConnectionContext,
    ): void {
      ctx.sendBytes(line);
    }
  }

  @Controller()
  class BroadcastController {
    // Explicit token: the class is a run-time value of the dynamically
    // loaded package, so decorator metadata cannot name it.
    constructor(
      @Inject(ConnectionRegistry)
      private readonly registry: EarwaxApi.ConnectionRegistry,
    ) {}

    @EarwaxEvent('on_data')
    trigger(
      @Payload() line: Buffer,
      @Ctx() ctx: EarwaxApi.ConnectionContext,
    ): void {
      this.registry.broadcast(line.toString(), { except: ctx });
    }
  }

  let adapter: EarwaxApi.EarwaxAdapter | undefined;
  if (processes > 1) {
    // The Redis entry point of the same build, by the package's own name
    // (a variable, so that type-checking does not need dist/).
    const specifier: string = 'nestjs-earwax/redis';
    const { RedisAdapter } = (await import(specifier)) as typeof EarwaxRedisApi;
    adapter = new RedisAdapter({
      redis: redisUrl,
      // Per server port: runs never see each other's keys.
      prefix: `bench-cores-${args.port}`,
      nodeId: `bench-cores-${args.port}-${process.env.BENCH_WORKER_INDEX}`,
    });
  }

  const transport = new EarwaxTransport({
    host: '127.0.0.1',
    port: args.port,
    logConnections: false,
    // As in earwax.ts: the limits on, far above the load.
    maxConnections: 1_000_000,
    maxConnectionsPerIp: 1_000_000,
    connectionRate: { limit: 1_000_000_000, windowMs: 1000 },
    inputRate: {
      linesPerSecond: 1_000_000_000,
      lineBurst: 1_000_000_000,
      bytesPerSecond: 1_000_000_000_000,
      byteBurst: 1_000_000_000_000,
    },
  });
  const appModule: ModuleMetadata = {
    imports: [EarwaxModule.forRoot(adapter ? { adapter } : {})],
    controllers: [args.mode === 'echo' ? EchoController : BroadcastController],
  };

  await serve(
    {
      listen: async () => {
        const app = await NestFactory.createMicroservice(appModule, {
          strategy: transport,
          logger: ['error', 'warn'],
        });
        await app.listen();
        if (adapter && !adapter.available) {
          throw new Error(`Redis at ${redisUrl} did not answer.`);
        }
      },
      connections: () => transport.connections.size,
      close: () => transport.close(),
    },
    args.port,
  );
}

// ---------------------------------------------------------------------------
// The cluster's primary.

interface Request {
  id: number;
  cmd: 'usage' | 'gc' | 'stop';
}

interface Reply {
  type: string;
  id?: number;
  usage?: Usage;
}

/** As control.ts: never outlive the benchmark. */
const MAX_LIFETIME_MS = 20 * 60_000;

async function runPrimary(): Promise<void> {
  if (!process.send) throw new Error('Run me from bench/run.mjs (needs IPC).');
  const send = process.send.bind(process);
  process.on('disconnect', () => process.exit(0));
  setTimeout(() => {
    console.error('benchmark primary: maximum lifetime reached; exiting.');
    process.exit(2);
  }, MAX_LIFETIME_MS).unref();

  // The primary accepts every connection and hands it to the workers in
  // turn (Node's default on Linux, set here so that no environment
  // variable changes it): an even spread, and the primary's work is per
  // connection, not per line. Under SCHED_NONE the workers would accept
  // from the shared socket themselves, and on one core whichever worker
  // is awake would take most of them.
  cluster.schedulingPolicy = cluster.SCHED_RR;
  const cores = (process.env.BENCH_WORKER_CORES ?? '')
    .split(',')
    .filter(Boolean);
  const workers: Worker[] = [];
  const ready: Promise<void>[] = [];
  for (let i = 0; i < processes; i++) {
    const worker = cluster.fork({ BENCH_WORKER_INDEX: String(i) });
    const pid = worker.process.pid;
    if (cores.length > 0 && pid !== undefined) {
      try {
        execFileSync('taskset', ['-pc', cores[i % cores.length], String(pid)], {
          stdio: 'ignore',
        });
      } catch {
        // No taskset: the runner says so in its notes.
      }
    }
    workers.push(worker);
    ready.push(
      new Promise<void>((resolve, reject) => {
        const onMessage = (message: Reply) => {
          if (message?.type !== 'ready') return;
          worker.off('message', onMessage);
          resolve();
        };
        worker.on('message', onMessage);
        worker.once('exit', (code, signal) =>
          reject(new Error(`worker ${i} exited (${signal ?? code})`)),
        );
      }),
    );
  }
  // A worker that dies during the run ends the run: the figures would be
  // of fewer processes.
  let stopping = false;
  cluster.on('exit', (worker, code, signal) => {
    if (stopping) return;
    console.error(
      `benchmark primary: worker ${worker.process.pid} exited (${signal ?? code}).`,
    );
    process.exit(1);
  });

  let nextId = 1;
  /** Asks one worker (its control.ts channel); resolves with its usage. */
  const ask = (worker: Worker, cmd: 'usage' | 'gc'): Promise<Usage> =>
    new Promise((resolve) => {
      const id = nextId++;
      const onMessage = (message: Reply) => {
        if (message?.type !== 'reply' || message.id !== id) return;
        worker.off('message', onMessage);
        resolve(message.usage as Usage);
      };
      worker.on('message', onMessage);
      worker.send({ id, cmd });
    });

  /** The whole cluster's usage: every worker's and the primary's, summed. */
  const usage = async (cmd: 'usage' | 'gc'): Promise<Usage> => {
    const gc = (globalThis as { gc?: () => void }).gc;
    if (cmd === 'gc') gc?.();
    const all = await Promise.all(workers.map((w) => ask(w, cmd)));
    const cpu = process.cpuUsage();
    const mem = process.memoryUsage();
    const own = cpu.user + cpu.system;
    const extras: Record<string, number> = {
      processes: workers.length,
      primaryCpuUs: own,
    };
    all.forEach((u, i) => {
      extras[`worker${i}CpuUs`] = u.cpuUs;
      extras[`worker${i}Connections`] = u.connections;
    });
    const sum = (get: (u: Usage) => number) =>
      all.reduce((total, u) => total + get(u), 0);
    return {
      cpuUs: own + sum((u) => u.cpuUs),
      monotonicUs: Number(process.hrtime.bigint() / 1000n),
      rss: mem.rss + sum((u) => u.rss),
      heapUsed: mem.heapUsed + sum((u) => u.heapUsed),
      external: mem.external + sum((u) => u.external),
      arrayBuffers: mem.arrayBuffers + sum((u) => u.arrayBuffers),
      connections: sum((u) => u.connections),
      extras,
    };
  };

  process.on('message', (message: Request) => {
    const { id, cmd } = message;
    if (cmd === 'usage' || cmd === 'gc') {
      void usage(cmd).then((u) => send({ type: 'reply', id, usage: u }));
    } else if (cmd === 'stop') {
      stopping = true;
      const timer = setTimeout(() => process.exit(0), 3000);
      let left = workers.length;
      for (const worker of workers) {
        worker.once('exit', () => {
          if (--left === 0) {
            clearTimeout(timer);
            process.exit(0);
          }
        });
        worker.send({ id: 0, cmd: 'stop' });
      }
    }
  });

  await Promise.all(ready);
  send({ type: 'ready', port: args.port });
}

// ---------------------------------------------------------------------------

if (processes > 1 && cluster.isPrimary) {
  await runPrimary();
} else {
  await runApplication();
}
