/**
 * Runs the pipeline over the ledger: takes queued movies in priority order (oldest or newest
 * first), walks each through its steps on a worker, records every stage, retries what may
 * succeed again, and on start resumes exactly where the last run stopped: a step whose declared
 * outputs already exist is not run again.
 */
import { EventEmitter } from 'node:events';
import fs from 'node:fs';
import path from 'node:path';
import { errorMessage, type Logger } from '@cloudlet/core';
import type { Executor, StepOutcome } from './executor';
import type { Ledger, Movie } from './ledger';
import type { CompiledStep, TemplateContext } from './pipeline-spec';

export interface BuiltinContext {
  movie: Movie;
  absPath: string;
  out: string;
  signal: AbortSignal;
  log: Logger;
}
export type BuiltinStep = (ctx: BuiltinContext) => Promise<void>;

export interface MovieEvent {
  type: 'queued' | 'step' | 'done' | 'failed' | 'rejected' | 'retry';
  movie: Movie;
  step?: string;
}

export interface RunnerOptions {
  ledger: Ledger;
  steps: readonly CompiledStep[];
  builtins: ReadonlyMap<string, BuiltinStep>;
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
      if (outputs.length > 0 && outputs.every(nonEmptyFile)) {
        movie = ledger.transition(movie.id, 'running', { step: name, stepIndex: i + 1, stamps: { [`${name}.skipped`]: Date.now() } });
        continue;
      }
      movie = ledger.transition(movie.id, 'running', { step: name, stepIndex: i, stamps: { [`${name}.start`]: Date.now() } });
      this.emitMovie('step', movie, name);
      const outcome = await this.runStep(step, movie, ctx, signal);
      if (signal.aborted) return; // stopping: the row stays `running`, the next start resumes it
      // A run interrupted by a restart may still have finished its work: the outputs decide.
      if (outcome.status === 'ok' || (outputs.length > 0 && outputs.every(nonEmptyFile))) {
        movie = ledger.transition(movie.id, 'running', { stepIndex: i + 1, attempts: 0, stamps: { [`${name}.end`]: Date.now() } });
        continue;
      }
      if (outcome.status === 'unavailable') {
        this.pausedUntil = Date.now() + this.opts.unavailableBackoffMs;
        this.opts.log.warn({ movie: movie.id, step: name, reason: outcome.reason }, 'executor unavailable; pausing the queue');
        ledger.transition(movie.id, 'queued', { reason: `waiting: ${outcome.reason}`, stamps: {} });
        return;
      }
      const reason = outcome.status === 'timeout' ? `${name} timed out after ${step.spec.timeout_s} s` : `${name} failed: ${outcome.reason}`;
      const attempts = movie.attempts + 1;
      if (attempts <= step.spec.retries) {
        movie = ledger.transition(movie.id, 'queued', { reason, attempts, stamps: { [`${name}.retry${attempts}`]: Date.now() } });
        this.emitMovie('retry', movie, name);
      } else {
        movie = ledger.transition(movie.id, 'failed', { reason, attempts });
        this.emitMovie('failed', movie, name);
      }
      return;
    }
    movie = ledger.transition(movie.id, 'done', { step: null, reason: null });
    this.emitMovie('done', movie);
  }

  private async runStep(step: CompiledStep, movie: Movie, ctx: TemplateContext, signal: AbortSignal): Promise<StepOutcome> {
    const started = Date.now();
    if (step.spec.builtin !== undefined) {
      const fn = this.opts.builtins.get(step.spec.builtin) as BuiltinStep;
      try {
        await fn({ movie, absPath: ctx.movie, out: ctx.out, signal, log: this.opts.log.child({ movie: movie.id, step: step.spec.name }) });
        return { status: 'ok', seconds: (Date.now() - started) / 1000 };
      } catch (err) {
        return { status: 'failed', reason: errorMessage(err), exitCode: null, seconds: (Date.now() - started) / 1000 };
      }
    }
    return this.opts.executor.run(
      { key: this.key(movie, step.spec.name), argv: step.argv(ctx), cwd: ctx.out, env: step.spec.env, timeoutS: step.spec.timeout_s, logFile: path.join(ctx.out, `${step.spec.name}.log`) },
      signal,
    );
  }
}

function nonEmptyFile(file: string): boolean {
  try {
    return fs.statSync(file).size > 0;
  } catch {
    return false;
  }
}
