/**
 * The stream service: watcher -> ledger -> pipeline runner, with an event stream (SSE) and a
 * status API for the dashboard and the CLI.
 */
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import express from 'express';
import yaml from 'js-yaml';
import { AppError, closeServer, ConfigError, errorHandler, errorMessage, listen, type Logger, requestLog, writeFileAtomic } from '@cloudlet/core';
import { preprocessFileProblems, stageOptions, type StreamConfig } from './config';
import type { Executor } from './executor';
import { createLocalExecutor } from './executor-local';
import { createSlurmExecutor } from './executor-slurm';
import { fingerprint } from './fingerprint';
import { checkComplete } from './formats';
import { Ledger, type Movie } from './ledger';
import { compilePipeline } from './pipeline-spec';
import { EXTERNAL_PARSERS } from './preprocess/external';
import type { MovieMetrics } from './preprocess/metrics';
import { StagePool } from './preprocess/pool';
import { STAGE_NAMES, type StageName, type StageOptions } from './preprocess/stage-types';
import { type BuiltinStep, type MetricsParser, type MovieEvent, Runner } from './runner';
import { Watcher } from './watcher';

/**
 * Every built-in stage in order. Each declares the metrics file its step leaves last, so a
 * restart skips stages already finished and still has their numbers.
 */
export const DEFAULT_PIPELINE = { steps: STAGE_NAMES.map((stage) => ({ name: stage, builtin: stage, outputs: [`{{out}}/${stage}.metrics.json`] })) };

export interface StreamDeps {
  config: StreamConfig;
  log: Logger;
  /** More built-in steps, or replacements (tests); the stages and noop are always there. */
  builtins?: ReadonlyMap<string, BuiltinStep>;
  /** Parsers external steps may name in `metrics:`; default preprocess/external's EXTERNAL_PARSERS. */
  parsers?: ReadonlyMap<string, MetricsParser>;
  /** The module the stage workers load STAGES from; default preprocess/stages.js. */
  stagesModule?: string;
  executor?: Executor;
}

export interface StreamService {
  start(): Promise<{ url: string }>;
  stop(): Promise<void>;
  ledger: Ledger;
  runner: Runner;
  watcher: Watcher;
}

function loadPipeline(file: string): unknown {
  if (file === '') return DEFAULT_PIPELINE;
  try {
    return yaml.load(fs.readFileSync(file, 'utf8'), { schema: yaml.CORE_SCHEMA });
  } catch (err) {
    throw new AppError(`pipeline ${file}: ${errorMessage(err)}`, { code: 'pipeline_invalid', status: 400 });
  }
}

/**
 * A stage as a pipeline step: run in the pool, its metrics written beside its files (the step's
 * declared output, written last and atomically) and returned for the ledger. Finding that file
 * means the stage already finished, so its metrics are read instead of computed again.
 */
function stageStep(stage: StageName, pool: StagePool, options: StageOptions): BuiltinStep {
  return async (ctx) => {
    const file = path.join(ctx.out, `${stage}.metrics.json`);
    try {
      return JSON.parse(fs.readFileSync(file, 'utf8')) as MovieMetrics;
    } catch {
      // not finished before (or its file is damaged): run it
    }
    const reported = await pool.run({ stage, movie: ctx.absPath, out: ctx.out, options, previous: ctx.metrics }, { signal: ctx.signal, timeoutMs: ctx.timeoutMs });
    const metrics = { ...reported, engines: { [stage]: 'builtin', ...reported.engines } };
    writeFileAtomic(file, `${JSON.stringify(metrics)}\n`);
    return metrics;
  };
}

export function createStream(deps: StreamDeps): StreamService {
  const { config, log } = deps;
  const problems = preprocessFileProblems(config.preprocess);
  if (problems.length > 0) throw new ConfigError('stream', problems);
  const pool = new StagePool({ size: config.workers, memoryMb: config.preprocess.worker_memory_mb, log, ...(deps.stagesModule ? { stagesModule: deps.stagesModule } : {}) });
  const options = stageOptions(config.preprocess);
  const builtins = new Map<string, BuiltinStep>([['noop', () => Promise.resolve()], ...STAGE_NAMES.map((stage) => [stage, stageStep(stage, pool, options)] as const), ...(deps.builtins ?? [])]);
  const parsers = deps.parsers ?? new Map<string, MetricsParser>(Object.entries(EXTERNAL_PARSERS));
  const steps = compilePipeline(loadPipeline(config.pipeline_file), config.pipeline_file || '(built-in pipeline)', new Set(builtins.keys()), new Set(parsers.keys()));
  const ledger = new Ledger(config.ledger_file);
  const executor =
    deps.executor ??
    (config.executor === 'slurm'
      ? createSlurmExecutor({
          ...(config.slurm.partition ? { partition: config.slurm.partition } : {}),
          ...(config.slurm.account ? { account: config.slurm.account } : {}),
          extraArgs: config.slurm.extra_args,
          pollIntervalMs: config.slurm.poll_interval_ms,
          scriptDir: config.slurm.script_dir,
          log,
        })
      : createLocalExecutor());
  const runner = new Runner({ ledger, steps, builtins, parsers, executor, outputRoot: config.output_dir, workers: config.workers, order: config.priority, unavailableBackoffMs: 30_000, log });
  const events = new Set<(event: Record<string, unknown>) => void>();
  const publish = (event: Record<string, unknown>): void => {
    for (const send of events) send(event);
  };
  runner.on('movie', (e: MovieEvent) => publish({ type: e.type, step: e.step, movie: summary(e.movie, runner) }));

  const watcher = new Watcher({
    roots: config.roots,
    settleMs: config.settle_ms,
    pollIntervalMs: config.poll_interval_ms,
    partialTimeoutMs: config.partial_timeout_s * 1000,
    check: checkComplete,
    alreadyHandled: (root, relPath, size, mtimeMs) => ledger.handled(root, relPath, size, mtimeMs),
    onSettled: async (file) => {
      const fp = await fingerprint(file.absPath);
      const { movie, created } = ledger.ingest({ fingerprint: fp, root: file.root, path: file.relPath, size: file.size, mtimeMs: file.mtimeMs, format: file.check.format, frames: file.check.frames, width: file.check.width, height: file.check.height, foundAt: file.foundAt, settledAt: file.settledAt });
      if (created) {
        log.info({ movie: movie.id, path: file.relPath, delay_ms: Date.now() - file.mtimeMs }, 'movie queued');
        publish({ type: 'queued', movie: summary(movie, runner) });
        runner.pump();
      }
    },
    onProblem: (root, relPath, reason, size) => {
      ledger.markSeen(root, relPath, 'settling', reason, size);
      publish({ type: 'problem', path: relPath, reason });
    },
    onPassedOver: (root, relPath, status, reason, size) => {
      ledger.markSeen(root, relPath, status, reason, size);
      log.warn({ root, path: relPath, status, reason }, 'file passed over');
      publish({ type: status, path: relPath, reason });
    },
    log,
  });

  const app = express();
  app.disable('x-powered-by');
  app.use(requestLog(log));
  app.get('/healthz', (_req, res) => {
    res.json({ ok: true });
  });
  app.get('/api/status', (_req, res) => {
    res.json({ counts: ledger.counts(), settling: watcher.settling(), busy: runner.busy, workers: config.workers, executor: executor.name, priority: config.priority });
  });
  app.get('/api/movies', (req, res) => {
    const state = typeof req.query.state === 'string' ? req.query.state : undefined;
    const movies = state ? ledger.inState(state as never) : ledger.all();
    res.json(movies.map((m) => summary(m, runner)));
  });
  app.get('/api/events', (req, res) => {
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-store', connection: 'keep-alive' });
    res.write(': connected\n\n'); // headers out now, not at the first event
    const send = (event: Record<string, unknown>): void => {
      res.write(`data: ${JSON.stringify(event)}\n\n`);
    };
    const heartbeat = setInterval(() => res.write(': heartbeat\n\n'), 15_000);
    events.add(send);
    req.on('close', () => {
      clearInterval(heartbeat);
      events.delete(send);
    });
  });
  app.use(errorHandler(log));
  const server = http.createServer(app);

  return {
    ledger,
    runner,
    watcher,
    async start() {
      for (const r of config.roots) fs.mkdirSync(r.path, { recursive: true });
      const address = await listen(server, config.listen_host, config.listen_port);
      await runner.start();
      watcher.start();
      const url = `http://${address.address}:${address.port}`;
      log.info({ url, roots: config.roots.map((r) => `${r.path} (${r.mode})`), steps: steps.map((s) => s.spec.name), executor: executor.name }, 'stream ready');
      return { url };
    },
    async stop() {
      await watcher.stop();
      await runner.stop();
      await pool.close();
      await executor.close();
      await closeServer(server);
      ledger.close();
    },
  };
}

/**
 * A movie as the API and the event stream show it: the dashboard draws its plots from `metrics`,
 * and a follower (transfer's follow mode) sends `metrics.files` from the folder `out`.
 */
function summary(m: Movie, runner: Runner): Record<string, unknown> {
  return { id: m.id, path: m.path, state: m.state, step: m.step, reason: m.reason, times: m.times, metrics: m.metrics, out: runner.outputDir(m) };
}
