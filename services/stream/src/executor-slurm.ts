/**
 * Steps as Slurm batch jobs: `sbatch --parsable`, a poll of `squeue` for every job this executor
 * follows (one call per interval, whatever their number), the final state from `sacct` (or from
 * the jobcomp file via `sacct -c` where there is no slurmdbd, or from `scontrol show job` while the
 * controller still remembers the job). Every Slurm command is an argument array with a time limit;
 * a controller that does not answer makes the step `unavailable`, never a hang.
 *
 * Never twice: the job name and comment carry the step's key. Before submitting, run() looks for a
 * job with that key in the controller's memory, and in the accounting records too when an earlier
 * sbatch for it ended without an answer; adopt() does the same for a restarted service.
 */
import { execFile, type ExecFileException } from 'node:child_process';
import fs from 'node:fs';
import { setTimeout as delay } from 'node:timers/promises';
import type { Logger } from '@cloudlet/core';
import type { Executor, StepJob, StepOutcome } from './executor';
import {
  buildBatchScript,
  checkScriptOptions,
  type JobRecord,
  latest,
  outcomeFromRecord,
  parseSacct,
  parseScontrolJob,
  parseSqueue,
  SACCT_FIELDS,
  slurmComment,
  slurmJobName,
  SQUEUE_FORMAT,
  validateJob,
} from './executor-slurm-script';

export interface SlurmExecutorOptions {
  partition?: string;
  account?: string;
  /** More sbatch arguments from the operator (e.g. `--qos=high`); they override the script's. */
  extraArgs?: string[];
  /** How often squeue is asked about the jobs being followed. */
  pollIntervalMs?: number;
  /** The most any one Slurm command may take before the controller counts as unreachable. */
  commandTimeoutMs?: number;
  /** Environment for the Slurm commands (SLURM_CONF, PATH); PATH is also what jobs get. */
  env?: NodeJS.ProcessEnv;
  /** Where batch scripts are written (kept: they show exactly what ran). */
  scriptDir: string;
  log: Logger;
}

/** A Slurm command failed or did not answer: the step is `unavailable`, not failed. */
class SlurmUnreachable extends Error {
  constructor(
    message: string,
    readonly stderr = '',
  ) {
    super(message);
  }
}

/** Consecutive failed polls before the jobs being followed are reported unavailable. */
const MAX_POLL_FAILURES = 3;
/** How far back a restarted service looks for jobs that finished while it was away. */
const LOOKBACK = 'now-7days';
const NAMES_PER_QUERY = 100;

type Gone = { gone: true } | { gone: false; reason: string };

export function createSlurmExecutor(options: SlurmExecutorOptions): Required<Executor> {
  checkScriptOptions(options);
  const pollMs = options.pollIntervalMs ?? 2000;
  const commandTimeoutMs = options.commandTimeoutMs ?? 15_000;
  const env = options.env ?? process.env;
  const log = options.log.child({ executor: 'slurm' });
  const closed = new AbortController();
  /** Keys whose last sbatch ended without an answer: the job may exist although we never learnt its id. */
  const uncertain = new Set<string>();
  const waiters = new Map<string, ((result: Gone) => void)[]>();
  let poller: Promise<void> | undefined;
  /** Where finished jobs are recorded here; learnt from the first answer. */
  let records: 'sacct' | 'jobcomp' | 'none' = 'sacct';

  function command(cmd: string, args: readonly string[]): Promise<string> {
    return new Promise((resolve, reject) => {
      execFile(cmd, args, { env, timeout: commandTimeoutMs, killSignal: 'SIGKILL', maxBuffer: 64 * 1024 * 1024, encoding: 'utf8' }, (err: ExecFileException | null, stdout, stderr) => {
        if (!err) return resolve(stdout);
        const detail = stderr.trim().split('\n').filter(Boolean).pop()?.slice(0, 300);
        if (err.code === 'ENOENT') reject(new SlurmUnreachable(`${cmd} not found: is Slurm installed and on PATH?`));
        else if (err.killed) reject(new SlurmUnreachable(`${cmd} did not answer within ${commandTimeoutMs / 1000} s`, stderr));
        else reject(new SlurmUnreachable(`${cmd}: ${detail ?? err.message}`, stderr));
      });
    });
  }

  /** Finished jobs as the accounting records know them; [] where nothing is recorded. */
  async function finished(args: readonly string[]): Promise<JobRecord[]> {
    if (records === 'sacct') {
      try {
        return parseSacct(await command('sacct', ['-X', '-n', '-P', '-o', SACCT_FIELDS, ...args]));
      } catch (err) {
        if (!(err instanceof SlurmUnreachable && /accounting storage is disabled/i.test(err.stderr))) throw err;
        records = 'jobcomp';
        log.info('no slurmdbd here: final states come from the jobcomp file (sacct -c)');
      }
    }
    if (records === 'jobcomp') {
      try {
        // sacct -c reads the jobcomp file itself and ignores --name; callers filter.
        return parseSacct(await command('sacct', ['-c', '-X', '-n', '-P', '-o', SACCT_FIELDS, ...args]));
      } catch (err) {
        if (!(err instanceof SlurmUnreachable) || /did not answer/.test(err.message)) throw err;
        records = 'none';
        log.warn({ reason: err.message }, 'no job accounting here: final states come from scontrol only');
      }
    }
    return [];
  }

  async function finishedByName(names: readonly string[]): Promise<Map<string, JobRecord>> {
    const found = new Map<string, JobRecord>();
    for (let i = 0; i < names.length; i += NAMES_PER_QUERY) {
      const chunk = names.slice(i, i + NAMES_PER_QUERY);
      const wanted = new Set(chunk);
      const rows = (await finished(['-S', LOOKBACK, `--name=${chunk.join(',')}`])).filter((r) => wanted.has(r.name));
      for (const name of wanted) {
        const last = latest(rows.filter((r) => r.name === name));
        if (last) found.set(name, last);
      }
    }
    return found;
  }

  async function finalOutcome(id: string, key: string, since: number): Promise<StepOutcome> {
    const name = slurmJobName(key);
    // Accounting can trail the queue by a moment; scontrol remembers the job for MinJobAge.
    for (let attempt = 0; attempt < 5 && !closed.signal.aborted; attempt++) {
      // By name too: job ids start again from 1 when a controller loses its state.
      const record =
        (await finished(['-j', id])).filter((r) => r.id === id && r.name === name).pop() ??
        parseScontrolJob(await command('scontrol', ['show', 'job', '-o', id]).catch((err: unknown) => {
          if (err instanceof SlurmUnreachable && /Invalid job id/i.test(err.stderr)) return '';
          throw err;
        }));
      const outcome = record && outcomeFromRecord(record, (Date.now() - since) / 1000);
      if (outcome) return outcome;
      await sleep(pollMs);
    }
    return { status: 'unavailable', reason: `job ${id} left the queue but Slurm reports no final state for it` };
  }

  async function pollQueue(): Promise<void> {
    let failures = 0;
    while (waiters.size > 0 && !closed.signal.aborted) {
      await sleep(pollMs);
      if (closed.signal.aborted) break;
      const ids = [...waiters.keys()];
      let out: string;
      try {
        out = await command('squeue', ['-h', '-j', ids.join(','), '-o', '%i|%T']).catch((err: unknown) => {
          // With a single id, a job the controller has already forgotten is an error.
          if (err instanceof SlurmUnreachable && /Invalid job id/i.test(err.stderr)) return '';
          throw err;
        });
        failures = 0;
      } catch (err) {
        if (!(err instanceof SlurmUnreachable)) throw err;
        log.warn({ reason: err.message, failures: ++failures }, 'squeue failed');
        if (failures < MAX_POLL_FAILURES) continue;
        for (const id of ids) settle(id, { gone: false, reason: `lost contact with slurmctld while following job ${id}: ${err.message}` });
        continue;
      }
      const queued = new Set(out.split('\n').map((line) => line.split('|')[0]));
      for (const id of ids) if (!queued.has(id)) settle(id, { gone: true });
    }
    for (const id of [...waiters.keys()]) settle(id, { gone: false, reason: 'executor closed' });
    poller = undefined;
  }

  function settle(id: string, result: Gone): void {
    for (const resolve of waiters.get(id) ?? []) resolve(result);
    waiters.delete(id);
  }

  function leftQueue(id: string): Promise<Gone> {
    if (closed.signal.aborted) return Promise.resolve({ gone: false, reason: 'executor closed' });
    return new Promise((resolve) => {
      waiters.set(id, [...(waiters.get(id) ?? []), resolve]);
      poller ??= pollQueue().catch((err: unknown) => {
        log.error({ err }, 'slurm poller failed');
        for (const waiting of [...waiters.keys()]) settle(waiting, { gone: false, reason: 'slurm poller failed' });
        poller = undefined;
      });
    });
  }

  function sleep(ms: number): Promise<void> {
    return delay(ms, undefined, { signal: closed.signal }).catch(() => undefined);
  }

  async function follow(id: string, key: string, since: number, signal?: AbortSignal): Promise<StepOutcome> {
    const cancel = (): void => {
      log.info({ jobId: id, key }, 'cancelling slurm job');
      command('scancel', [id]).catch((err: unknown) => log.warn({ jobId: id, reason: (err as Error).message }, 'scancel failed'));
    };
    signal?.addEventListener('abort', cancel, { once: true });
    if (signal?.aborted) cancel();
    try {
      const left = await leftQueue(id);
      if (!left.gone) {
        log.warn({ jobId: id, key, reason: left.reason }, 'stopped following slurm job');
        return { status: 'unavailable', reason: left.reason };
      }
      const outcome = await finalOutcome(id, key, since);
      log.info({ jobId: id, key, status: outcome.status }, 'slurm job ended');
      return outcome;
    } finally {
      signal?.removeEventListener('abort', cancel);
    }
  }

  /** A job already carrying this key: from the queue, or from the records when a submit went unanswered. */
  async function existing(key: string): Promise<{ id: string; record?: JobRecord } | undefined> {
    const name = slurmJobName(key);
    const live = parseSqueue(await command('squeue', ['-h', '-t', 'all', `--name=${name}`, '-o', SQUEUE_FORMAT]));
    const match = latest(live.filter((j) => j.name === name && j.comment === slurmComment(key)));
    if (match) return { id: match.id };
    if (!uncertain.has(key)) return undefined;
    const record = (await finishedByName([name])).get(name);
    return record && { id: record.id, record };
  }

  async function submit(job: StepJob): Promise<string> {
    const script = buildBatchScript(job, options);
    try {
      await fs.promises.mkdir(options.scriptDir, { recursive: true, mode: 0o700 });
      await fs.promises.writeFile(script.file, script.text, { mode: 0o600 });
    } catch (err) {
      throw new SlurmUnreachable(`cannot write the batch script: ${(err as Error).message}`);
    }
    let out: string;
    try {
      out = await command('sbatch', ['--parsable', ...(options.extraArgs ?? []), script.file]);
    } catch (err) {
      // It may have reached the controller before the answer was lost: look before submitting again.
      uncertain.add(job.key);
      throw err;
    }
    uncertain.delete(job.key);
    const id = /^(\d+)/.exec(out.trim())?.[1];
    if (!id) throw new SlurmUnreachable(`sbatch printed no job id: ${JSON.stringify(out.slice(0, 200))}`);
    log.info({ jobId: id, key: job.key, name: script.name }, 'slurm job submitted');
    return id;
  }

  async function run(job: StepJob, signal?: AbortSignal): Promise<StepOutcome> {
    validateJob(job);
    if (closed.signal.aborted) return { status: 'unavailable', reason: 'executor closed' };
    if (signal?.aborted) return { status: 'failed', reason: 'cancelled', exitCode: null, seconds: 0 };
    const since = Date.now();
    try {
      const found = await existing(job.key);
      const recorded = found?.record && outcomeFromRecord(found.record, 0);
      if (recorded) return recorded;
      if (found) {
        uncertain.delete(job.key);
        log.info({ jobId: found.id, key: job.key }, 'following the slurm job already submitted for this step');
      }
      const id = found?.id ?? (await submit(job));
      return await follow(id, job.key, since, signal);
    } catch (err) {
      if (!(err instanceof SlurmUnreachable)) throw err;
      log.warn({ key: job.key, reason: err.message }, 'slurm unavailable');
      return { status: 'unavailable', reason: err.message };
    }
  }

  async function adopt(keys: readonly string[]): Promise<Map<string, Promise<StepOutcome>>> {
    const adopted = new Map<string, Promise<StepOutcome>>();
    const byName = new Map(keys.map((k) => [slurmJobName(k), k]));
    if (byName.size === 0) return adopted;
    const since = Date.now();
    try {
      const live = parseSqueue(await command('squeue', ['-h', '--me', '-t', 'all', '-o', SQUEUE_FORMAT]));
      for (const [name, key] of byName) {
        const job = latest(live.filter((j) => j.name === name && j.comment === slurmComment(key)));
        if (job) adopted.set(key, follow(job.id, key, since));
      }
      const rest = [...byName].filter(([, key]) => !adopted.has(key)).map(([name]) => name);
      for (const [name, record] of await finishedByName(rest)) {
        const key = byName.get(name);
        const outcome = outcomeFromRecord(record, 0);
        if (key !== undefined && outcome) adopted.set(key, Promise.resolve(outcome));
      }
    } catch (err) {
      if (!(err instanceof SlurmUnreachable)) throw err;
      log.warn({ reason: err.message }, 'slurm unavailable: cannot tell which steps still run there');
      for (const key of byName.values()) {
        if (adopted.has(key)) continue;
        // Whatever runs them next must look in the records before submitting.
        uncertain.add(key);
        adopted.set(key, Promise.resolve({ status: 'unavailable', reason: err.message }));
      }
    }
    log.info({ asked: byName.size, adopted: adopted.size }, 'adopted slurm jobs');
    return adopted;
  }

  return {
    name: 'slurm',
    run,
    adopt,
    async close() {
      // Jobs keep running in Slurm; a restarted service adopts them.
      closed.abort();
      await poller;
    },
  };
}
