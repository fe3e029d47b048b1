/**
 * Runs pre-processing stages in worker threads. A stage is seconds of CPU on one movie; in the
 * service's own thread it would stall the watcher, the ledger and the API for that long. A
 * worker is also the unit of recovery: a stage that hangs is terminated (abort, timeout) and one
 * that runs out of memory kills only its worker. Either way that task fails with the reason, a
 * fresh worker takes the slot, and the pool goes on with the next task.
 *
 * Workers load the stage table (a module exporting STAGES) on their first task, so the pool
 * itself depends on nothing but the contract in stage-types.ts.
 */
import path from 'node:path';
import { Worker } from 'node:worker_threads';
import type { Logger } from '@cloudlet/core';
import type { MovieMetrics } from './metrics';
import type { StageError, StageInput } from './stage-types';

export const WORKER_SCRIPT = path.join(__dirname, 'stage-worker.js');
export const DEFAULT_STAGES_MODULE = path.join(__dirname, 'stages.js');

export interface StagePoolOptions {
  /** Stages run at once, one per worker thread. */
  size: number;
  /** A module exporting `STAGES: Record<StageName, StageFn>`; default preprocess/stages.js. */
  stagesModule?: string;
  /** Heap limit per worker (V8's old generation): a runaway stage fails alone instead of taking the service down. */
  memoryMb?: number;
  log?: Logger;
}

export interface RunOptions {
  signal?: AbortSignal;
  timeoutMs?: number;
}

/** Why a stage did not return metrics: the stage's own {code, message}, or the pool's verdict. */
export class StageFailure extends Error {
  constructor(
    readonly code: StageError['code'] | 'timeout' | 'aborted',
    message: string,
  ) {
    super(message);
    this.name = 'StageFailure';
  }
}

/** What the worker script posts back for each task. */
export type WorkerReply = { ok: true; metrics: MovieMetrics } | { ok: false; error: StageError };

interface Task {
  input: StageInput;
  resolve(metrics: MovieMetrics): void;
  reject(err: StageFailure): void;
  cleanup(): void;
}

interface Slot {
  worker: Worker | undefined;
  task: Task | undefined;
}

export class StagePool {
  private readonly slots: Slot[];
  private readonly queue: Task[] = [];
  private readonly stagesModule: string;
  private closed = false;

  constructor(private readonly opts: StagePoolOptions) {
    if (!(Number.isInteger(opts.size) && opts.size >= 1)) throw new RangeError(`pool size must be a positive integer, not ${opts.size}`);
    this.slots = Array.from({ length: opts.size }, () => ({ worker: undefined, task: undefined }));
    this.stagesModule = opts.stagesModule ?? DEFAULT_STAGES_MODULE;
  }

  /** Resolves with the stage's metrics; rejects with a StageFailure, never anything else. */
  run(input: StageInput, options: RunOptions = {}): Promise<MovieMetrics> {
    return new Promise<MovieMetrics>((resolve, reject) => {
      if (this.closed) return reject(new StageFailure('aborted', 'the stage pool is closed'));
      if (options.signal?.aborted) return reject(new StageFailure('aborted', `${input.stage} aborted`));
      let timer: NodeJS.Timeout | undefined;
      const onAbort = (): void => this.cancel(task, new StageFailure('aborted', `${input.stage} aborted`));
      const task: Task = {
        input,
        resolve,
        reject,
        cleanup: () => {
          clearTimeout(timer);
          options.signal?.removeEventListener('abort', onAbort);
        },
      };
      options.signal?.addEventListener('abort', onAbort, { once: true });
      if (options.timeoutMs !== undefined) {
        const ms = options.timeoutMs;
        timer = setTimeout(() => this.cancel(task, new StageFailure('timeout', `${input.stage} timed out after ${ms / 1000} s`)), ms);
      }
      this.queue.push(task);
      this.dispatch();
    });
  }

  /** Tasks running now (tests, status). */
  get busy(): number {
    return this.slots.filter((s) => s.task).length;
  }

  /** Fails what is queued or running and terminates every worker. */
  async close(): Promise<void> {
    this.closed = true;
    for (const task of this.queue.splice(0)) settle(task, new StageFailure('aborted', 'the stage pool is closed'));
    await Promise.all(
      this.slots.map((slot) => {
        const task = slot.task;
        const done = this.retire(slot);
        if (task) settle(task, new StageFailure('aborted', 'the stage pool is closed'));
        return done;
      }),
    );
  }

  private dispatch(): void {
    for (const slot of this.slots) {
      if (this.queue.length === 0) return;
      if (slot.task) continue;
      const task = this.queue.shift() as Task;
      slot.task = task;
      slot.worker ??= this.spawn(slot);
      slot.worker.postMessage(task.input);
    }
  }

  private spawn(slot: Slot): Worker {
    const worker = new Worker(WORKER_SCRIPT, {
      workerData: { stagesModule: this.stagesModule },
      ...(this.opts.memoryMb !== undefined ? { resourceLimits: { maxOldGenerationSizeMb: this.opts.memoryMb } } : {}),
    });
    worker.on('message', (reply: WorkerReply) => {
      const task = slot.task;
      if (slot.worker !== worker || !task) return;
      slot.task = undefined;
      settle(task, reply.ok ? reply.metrics : new StageFailure(reply.error.code, reply.error.message));
      this.dispatch();
    });
    worker.on('error', (err: Error & { code?: string }) => {
      const why = err.code === 'ERR_WORKER_OUT_OF_MEMORY' ? `ran out of memory (limit ${this.opts.memoryMb ?? 'default'} MB)` : `crashed: ${err.message}`;
      this.crashed(slot, worker, why);
    });
    worker.on('exit', (code) => this.crashed(slot, worker, `exited with code ${code}`));
    return worker;
  }

  /** A worker died on its own: its task fails with the reason, the slot gets a fresh worker when next needed. */
  private crashed(slot: Slot, worker: Worker, why: string): void {
    if (slot.worker !== worker) return; // retired on purpose, or already reported ('error' comes before 'exit')
    const task = slot.task;
    slot.worker = undefined;
    slot.task = undefined;
    this.opts.log?.warn({ stage: task?.input.stage, movie: task?.input.movie, why }, 'stage worker died');
    if (task) settle(task, new StageFailure('error', `${task.input.stage}: the worker thread ${why}`));
    if (!this.closed) this.dispatch();
  }

  private cancel(task: Task, failure: StageFailure): void {
    const queued = this.queue.indexOf(task);
    if (queued >= 0) {
      this.queue.splice(queued, 1);
      settle(task, failure);
      return;
    }
    const slot = this.slots.find((s) => s.task === task);
    if (!slot) return;
    // A stage cannot be interrupted from outside its thread: the worker goes, and the slot gets a new one.
    void this.retire(slot);
    settle(task, failure);
    this.dispatch();
  }

  private retire(slot: Slot): Promise<void> {
    const worker = slot.worker;
    slot.worker = undefined;
    slot.task = undefined;
    if (!worker) return Promise.resolve();
    return worker.terminate().then(
      () => undefined,
      () => undefined,
    );
  }
}

function settle(task: Task, outcome: MovieMetrics | StageFailure): void {
  task.cleanup();
  if (outcome instanceof StageFailure) task.reject(outcome);
  else task.resolve(outcome);
}
