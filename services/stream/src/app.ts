/**
 * The stream service: watcher -> ledger -> pipeline runner, with an event stream (SSE) and a
 * status API for the dashboard and the CLI.
 */
import fs from 'node:fs';
import http from 'node:http';
import express from 'express';
import yaml from 'js-yaml';
import { AppError, closeServer, errorHandler, errorMessage, listen, type Logger, requestLog } from '@cloudlet/core';
import type { StreamConfig } from './config';
import type { Executor } from './executor';
import { createLocalExecutor } from './executor-local';
import { createSlurmExecutor } from './executor-slurm';
import { fingerprint } from './fingerprint';
import { checkComplete } from './formats';
import { Ledger } from './ledger';
import { compilePipeline } from './pipeline-spec';
import { type BuiltinStep, type MovieEvent, Runner } from './runner';
import { Watcher } from './watcher';

export const DEFAULT_PIPELINE = { steps: [{ name: 'noop', builtin: 'noop' }] };

export interface StreamDeps {
  config: StreamConfig;
  log: Logger;
  /** Built-in steps (the pre-processing code registers motion, ctf, ...). */
  builtins?: ReadonlyMap<string, BuiltinStep>;
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

export function createStream(deps: StreamDeps): StreamService {
  const { config, log } = deps;
  const builtins = new Map<string, BuiltinStep>([['noop', () => Promise.resolve()], ...(deps.builtins ?? [])]);
  const steps = compilePipeline(loadPipeline(config.pipeline_file), config.pipeline_file || '(built-in pipeline)', new Set(builtins.keys()));
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
  const runner = new Runner({ ledger, steps, builtins, executor, outputRoot: config.output_dir, workers: config.workers, order: config.priority, unavailableBackoffMs: 30_000, log });
  const events = new Set<(event: Record<string, unknown>) => void>();
  const publish = (event: Record<string, unknown>): void => {
    for (const send of events) send(event);
  };
  runner.on('movie', (e: MovieEvent) => publish({ type: e.type, step: e.step, movie: summary(e.movie) }));

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
        publish({ type: 'queued', movie: summary(movie) });
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
    res.json(movies.map(summary));
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
      await executor.close();
      await closeServer(server);
      ledger.close();
    },
  };
}

function summary(m: { id: number; path: string; state: string; step: string | null; reason: string | null; times: Record<string, number> }): Record<string, unknown> {
  return { id: m.id, path: m.path, state: m.state, step: m.step, reason: m.reason, times: m.times };
}
