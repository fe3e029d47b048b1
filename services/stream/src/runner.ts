/**
 * Runs the pipeline over the ledger: takes queued movies in priority order (oldest or newest
 * first), walks each through its steps on a worker, records every stage and the metrics the
 * steps report, retries what may succeed again (but not a movie a step found to be bad), and on
 * start resumes exactly where the last run stopped: a step whose declared outputs already exist
 * is not run again.
 */
import { EventEmitter } from 'node:events';
import fs from 'node:fs';
import path from 'node:path';
import { errorMessage, type Logger } from '@cloudlet/core';
import type { Executor, StepOutcome } from './executor';
import type { Ledger, Movie } from './ledger';
import type { CompiledStep, TemplateContext } from './pipeline-spec';
import type { MovieMetrics } from './preprocess/metrics';

export interface BuiltinContext {
  movie: Movie;
  absPath: string;
  out: string;
  signal: AbortSignal;
  log: Logger;
  /** What earlier steps reported for this movie. */
  metrics: MovieMetrics;
  /** The step's timeout_s; a builtin that cannot be interrupted (a stage in a worker) enforces it. */
  timeoutMs: number;
}
/**
 * Resolves with the step's part of the movie's metrics (or nothing). Rejecting with an error whose
 * code is 'bad_movie' fails the movie at once; 'timeout' counts as the step timing out; anything
 * else is retried like a failed command.
 */
export type BuiltinStep = (ctx: BuiltinContext) => Promise<MovieMetrics | void>;

/** Reads an external step's outputs into metrics (preprocess/external/index.ts). */
export type MetricsParser = (ctx: { out: string; stem: string; movie: string }) => Promise<MovieMetrics>;

type StepResult = (StepOutcome & { metrics?: MovieMetrics }) | { status: 'bad_movie'; reason: string };

export interface MovieEvent {
  /** step: a step started; metrics: a step ended and its metrics are in the movie's record. */
  type: 'queued' | 'step' | 'metrics' | 'done' | 'failed' | 'rejected' | 'retry';
  movie: Movie;
  step?: string;
}

export interface RunnerOptions {
  ledger: Ledger;
  steps: readonly CompiledStep[];
  builtins: ReadonlyMap<string, BuiltinStep>;
  /** Parsers external steps name in `metrics:`. */
  parsers?: ReadonlyMap<string, MetricsParser>;
  executor: Executor;
  outputRoot: string;
  workers: number;
  order: 'oldest' | 'newest';
  /** After the executor says it is unavailable (Slurm down), wait this long before trying again. */
  unavailableBackoffMs: number;
  log: Logger;
}

const SAFE_NAME = /[^A-Za-z0-9._-]/g;

export class Runner extends EventEmitter<{ movie: [MovieEvent] }> {
  private readonly active = new Map<number, AbortController>();
  private stopped = false;
  private pausedUntil = 0;
  private timer: NodeJS.Timeout | undefined;
  private readonly idle: (() => void)[] = [];

  constructor(private readonly opts: RunnerOptions) {
    super();
    this.setMaxListeners(100);
  }

  /** Movies caught mid-step by a crash go back to the queue; their step re-runs unless its outputs exist. */
  async start(): Promise<void> {
    const interrupted = this.opts.ledger.inState('running');
    const adopted = this.opts.executor.adopt ? await this.opts.executor.adopt(interrupted.map((m) => this.key(m, m.step ?? ''))) : new Map<string, Promise<StepOutcome>>();
    for (const m of interrupted) {
      const pending = adopted.get(this.key(m, m.step ?? ''));
      if (pending) {
        // Still running (on Slurm): wait for that run instead of starting a second one.
        void pending.then(() => this.opts.ledger.transition(m.id, 'queued', { reason: null, stamps: {} })).then(() => this.pump());
      } else {
        this.opts.ledger.transition(m.id, 'queued', { reason: null, stamps: { requeued: Date.now() } });
      }
    }
    if (interrupted.length > 0) this.opts.log.info({ resumed: interrupted.length, adopted: adopted.size }, 'resumed movies interrupted by the last stop');
    this.timer = setInterval(() => this.pump(), 500);
    this.pump();
  }

  /** Something was queued: fill free workers now rather than at the next tick. */
  pump(): void {
    if (this.stopped || Date.now() < this.pausedUntil) return;
    const free = this.opts.workers - this.active.size;
    if (free <= 0) return;
    const next = this.opts.ledger.nextQueued(free, this.opts.order, new Set(this.active.keys()));
    for (const movie of next) {
      const controller = new AbortController();
      this.active.set(movie.id, controller);
      this.process(movie, controller.signal)
        .catch((err: unknown) => this.opts.log.error({ movie: movie.id, err }, 'runner error'))
        .finally(() => {
          this.active.delete(movie.id);
          if (this.active.size === 0) for (const resolve of this.idle.splice(0)) resolve();
          this.pump();
        });
    }
  }

  get busy(): number {
    return this.active.size;
  }

  /** Resolves when no movie is being processed (tests, benches, shutdown). */
  whenIdle(): Promise<void> {
    return this.active.size === 0 ? Promise.resolve() : new Promise((resolve) => this.idle.push(resolve));
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.timer);
    for (const c of this.active.values()) c.abort();
    await this.whenIdle();
  }

  private key(movie: Movie, step: string): string {
    return `${movie.fingerprint}.${step}`;
  }

  outputDir(movie: Movie): string {
    const stem = path.basename(movie.path).replace(/\.[^.]*$/, '').replace(SAFE_NAME, '_');
    return path.join(this.opts.outputRoot, `${String(movie.id).padStart(6, '0')}_${stem}`);
  }

  private context(movie: Movie): TemplateContext {
    const name = path.basename(movie.path);
    return { movie: path.join(movie.root, movie.path), name, stem: name.replace(/\.[^.]*$/, ''), out: this.outputDir(movie), id: movie.id, root: movie.root, vars: {} };
  }

  private emitMovie(type: MovieEvent['type'], movie: Movie, step?: string): void {
    this.emit('movie', { type, movie, ...(step ? { step } : {}) });
  }

  private async process(start: Movie, signal: AbortSignal): Promise<void> {
    const { ledger, steps } = this.opts;
    let movie = ledger.transition(start.id, 'running', { stamps: start.times.running ? {} : { running: Date.now() } });
    const ctx = this.context(movie);
    try {
      fs.mkdirSync(ctx.out, { recursive: true });
    } catch (err) {
      // A full disk or a read-only output tree fails this movie with the reason; others go on.
      movie = ledger.transition(movie.id, 'failed', { reason: `cannot create its output folder: ${errorMessage(err)}`, attempts: movie.attempts + 1 });
      this.emitMovie('failed', movie);
      return;
    }
    for (let i = movie.stepIndex; i < steps.length; i++) {
      const step = steps[i] as CompiledStep;
      const name = step.spec.name;
      const outputs = step.outputs(ctx);
      const present = outputs.length > 0 && outputs.every(nonEmptyFile);
      // Outputs on disk but no recorded end (a stop between the two): the work is done, its metrics may not be in.
      const metricsIn = (step.spec.builtin === undefined && step.spec.metrics === undefined) || movie.times[`${name}.end`] !== undefined;
      if (present && metricsIn) {
        movie = ledger.transition(movie.id, 'running', { step: name, stepIndex: i + 1, stamps: { [`${name}.skipped`]: Date.now() } });
        continue;
      }
      movie = ledger.transition(movie.id, 'running', { step: name, stepIndex: i, stamps: { [`${name}.start`]: Date.now() } });
      this.emitMovie('step', movie, name);
      // Builtins are cheap to ask again (stages are idempotent); a finished external command only needs its outputs read.
      let outcome: StepResult = present && step.spec.run ? { status: 'ok', seconds: 0 } : await this.runStep(step, movie, ctx, signal);
      if (signal.aborted) return; // stopping: the row stays `running`, the next start resumes it
      // A run interrupted by a restart may still have finished its work: the outputs decide.
      if (outcome.status !== 'ok' && outcome.status !== 'bad_movie' && outputs.length > 0 && outputs.every(nonEmptyFile)) outcome = { status: 'ok', seconds: 0 };
      if (outcome.status === 'ok' && step.spec.metrics !== undefined) outcome = await this.parseMetrics(step, ctx, outcome.seconds);
      if (outcome.status === 'ok') {
        movie = ledger.transition(movie.id, 'running', { stepIndex: i + 1, attempts: 0, stamps: { [`${name}.end`]: Date.now() }, ...(outcome.metrics ? { metrics: outcome.metrics } : {}) });
        if (outcome.metrics) this.emitMovie('metrics', movie, name);
        continue;
      }
      this.stepFailed(movie, step, outcome);
      return;
    }
    movie = ledger.transition(movie.id, 'done', { step: null, reason: null });
    this.emitMovie('done', movie);
  }

  /** A step did not succeed: pause the queue, retry, or fail the movie, as the outcome says. */
  private stepFailed(start: Movie, step: CompiledStep, outcome: Exclude<StepResult, { status: 'ok' }>): void {
    const { ledger } = this.opts;
    const name = step.spec.name;
    if (outcome.status === 'unavailable') {
      this.pausedUntil = Date.now() + this.opts.unavailableBackoffMs;
      this.opts.log.warn({ movie: start.id, step: name, reason: outcome.reason }, 'executor unavailable; pausing the queue');
      ledger.transition(start.id, 'queued', { reason: `waiting: ${outcome.reason}`, stamps: {} });
      return;
    }
    const attempts = start.attempts + 1;
    if (outcome.status === 'bad_movie') {
      // The movie itself is at fault (NaNs, an unreadable mode): another attempt would fail the same way.
      this.emitMovie('failed', ledger.transition(start.id, 'failed', { reason: `${name}: bad movie: ${outcome.reason}`, attempts }), name);
      return;
    }
    const reason = outcome.status === 'timeout' ? `${name} timed out after ${step.spec.timeout_s} s` : `${name} failed: ${outcome.reason}`;
    if (attempts <= step.spec.retries) {
      this.emitMovie('retry', ledger.transition(start.id, 'queued', { reason, attempts, stamps: { [`${name}.retry${attempts}`]: Date.now() } }), name);
    } else {
      this.emitMovie('failed', ledger.transition(start.id, 'failed', { reason, attempts }), name);
    }
  }

  private async runStep(step: CompiledStep, movie: Movie, ctx: TemplateContext, signal: AbortSignal): Promise<StepResult> {
    const started = Date.now();
    if (step.spec.builtin !== undefined) {
      const fn = this.opts.builtins.get(step.spec.builtin) as BuiltinStep;
      const seconds = (): number => (Date.now() - started) / 1000;
      try {
        const metrics = await fn({ movie, absPath: ctx.movie, out: ctx.out, signal, log: this.opts.log.child({ movie: movie.id, step: step.spec.name }), metrics: movie.metrics, timeoutMs: step.spec.timeout_s * 1000 });
        return { status: 'ok', seconds: seconds(), ...(metrics ? { metrics } : {}) };
      } catch (err) {
        const code = (err as { code?: unknown } | null)?.code;
        if (code === 'bad_movie') return { status: 'bad_movie', reason: errorMessage(err) };
        if (code === 'timeout') return { status: 'timeout', seconds: seconds() };
        return { status: 'failed', reason: errorMessage(err), exitCode: null, seconds: seconds() };
      }
    }
    return this.opts.executor.run(
      { key: this.key(movie, step.spec.name), argv: step.argv(ctx), cwd: ctx.out, env: step.spec.env, timeoutS: step.spec.timeout_s, logFile: path.join(ctx.out, `${step.spec.name}.log`) },
      signal,
    );
  }

  /** An external step succeeded: its parser turns what it wrote into metrics. Unreadable output fails the step (and may be retried). */
  private async parseMetrics(step: CompiledStep, ctx: TemplateContext, seconds: number): Promise<StepResult> {
    const parser = this.opts.parsers?.get(step.spec.metrics as string) as MetricsParser;
    try {
      return { status: 'ok', seconds, metrics: await parser({ out: ctx.out, stem: ctx.stem, movie: ctx.movie }) };
    } catch (err) {
      return { status: 'failed', reason: `its output could not be read (${step.spec.metrics as string}): ${errorMessage(err)}`, exitCode: null, seconds };
    }
  }
}

function nonEmptyFile(file: string): boolean {
  try {
    return fs.statSync(file).size > 0;
  } catch {
    return false;
  }
}
