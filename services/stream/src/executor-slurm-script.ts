/**
 * The pure half of the Slurm executor: the batch script a step becomes, and how Slurm's answers
 * (sacct, scontrol, squeue) read back as outcomes. No Slurm needed to test any of it.
 *
 * Quoting, learnt from Slurm 22.05 itself: bash sees every value inside single quotes. sbatch's
 * #SBATCH parser takes double-quoted values but a line cannot carry a newline, and slurmd expands
 * `%` patterns in output paths (`%%` is a literal %) and drops every backslash in them. So a
 * path goes into an #SBATCH line only when it survives that; the script body `cd`s and
 * redirects into the log file itself in every case, so a hostile name changes nothing but where
 * Slurm's own messages (time limit, cancellation) land.
 */
import crypto from 'node:crypto';
import path from 'node:path';
import type { StepJob, StepOutcome } from './executor';

const CONTROL_ESCAPES: Readonly<Record<string, string>> = { '\n': '\\n', '\r': '\\r', '\t': '\\t' };

/**
 * Bash single quotes: nothing inside is special; an embedded ' becomes '\''. Control characters
 * step out into $'\n' escapes: sbatch refuses a script holding "\r\n", and one command per line
 * keeps the script readable.
 */
export function shellQuote(value: string): string {
  const escape = (c: string): string => CONTROL_ESCAPES[c] ?? `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`;
  const quoted = value.replaceAll("'", `'\\''`).replace(/[\x00-\x1f\x7f]+/g, (run) => `'$'${Array.from(run, escape).join('')}''`);
  return `'${quoted}'`;
}

function keyHash(key: string): string {
  return crypto.createHash('sha256').update(key).digest('hex');
}

/**
 * Readable and unique: the sanitized key for people running squeue, a hash so that two keys that
 * sanitize alike still differ (jobcomp records carry the name but not the comment).
 */
export function slurmJobName(key: string): string {
  return `cloudlet-${key.replace(/[^A-Za-z0-9._-]+/g, '_').slice(0, 48)}-${keyHash(key).slice(0, 12)}`;
}

/** The full key, percent-encoded outside a plain set so it fits an #SBATCH line and squeue's `|` columns. */
export function slurmComment(key: string): string {
  return Array.from(new TextEncoder().encode(key), (byte) => {
    const c = String.fromCharCode(byte);
    return /[A-Za-z0-9._/:=+@,-]/.test(c) ? c : `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  }).join('');
}

/** An #SBATCH value in double quotes, or undefined when sbatch/slurmd would not pass it through intact. */
function sbatchValue(value: string, kind: 'path' | 'output'): string | undefined {
  if (/[\x00-\x1f\x7f"\\]/.test(value)) return undefined;
  return `"${kind === 'output' ? value.replaceAll('%', '%%') : value}"`;
}

const NAME_RE = /^[A-Za-z_][A-Za-z0-9_]*$/;
const PLAIN_RE = /^[A-Za-z0-9._-]+$/;
/** Slurm checks time limits about every 30 s; the margin keeps that from ending a step early. */
const TIME_MARGIN_MIN = 1;

export interface ScriptOptions {
  scriptDir: string;
  partition?: string;
  account?: string;
}

export interface BatchScript {
  name: string;
  file: string;
  text: string;
}

/** Throws on a job no executor could run as given: those are programming errors upstream. */
export function validateJob(job: StepJob): void {
  const problems: string[] = [];
  if (job.argv.length === 0) problems.push('argv is empty');
  const texts = [job.key, job.cwd, job.logFile, ...job.argv, ...Object.entries(job.env).flat()];
  if (texts.some((t) => t.includes('\0'))) problems.push('a value contains a NUL byte');
  for (const k of Object.keys(job.env)) if (!NAME_RE.test(k)) problems.push(`env name ${JSON.stringify(k)} is not [A-Za-z_][A-Za-z0-9_]*`);
  if (!path.isAbsolute(job.cwd) || !path.isAbsolute(job.logFile)) problems.push('cwd and logFile must be absolute');
  if (!(Number.isFinite(job.timeoutS) && job.timeoutS > 0)) problems.push(`timeoutS ${job.timeoutS} is not a positive number`);
  if (problems.length > 0) throw new TypeError(`slurm executor: bad job ${JSON.stringify(job.key)}: ${problems.join('; ')}`);
}

export function checkScriptOptions(options: ScriptOptions): void {
  for (const [what, value] of [['partition', options.partition], ['account', options.account]] as const) {
    if (value !== undefined && !PLAIN_RE.test(value)) throw new TypeError(`slurm executor: ${what} ${JSON.stringify(value)} is not [A-Za-z0-9._-]+`);
  }
  if (!path.isAbsolute(options.scriptDir) || sbatchValue(options.scriptDir, 'output') === undefined) {
    throw new TypeError(`slurm executor: scriptDir ${JSON.stringify(options.scriptDir)} must be an absolute path without quotes, backslashes or control characters`);
  }
}

export function buildBatchScript(job: StepJob, options: ScriptOptions): BatchScript {
  validateJob(job);
  const base = path.join(options.scriptDir, `job-${keyHash(job.key).slice(0, 16)}`);
  const name = slurmJobName(job.key);
  const directives = [
    `--job-name=${name}`,
    `--comment=${slurmComment(job.key)}`,
    `--time=${Math.ceil(job.timeoutS / 60) + TIME_MARGIN_MIN}`,
    `--chdir=${sbatchValue(job.cwd, 'path') ?? sbatchValue(options.scriptDir, 'path')}`,
    `--output=${sbatchValue(job.logFile, 'output') ?? sbatchValue(`${base}.out`, 'output')}`,
    `--error=${sbatchValue(job.logFile, 'output') ?? sbatchValue(`${base}.out`, 'output')}`,
    '--open-mode=append',
    // The pipeline decides retries; a requeue after a node failure would run the step twice.
    '--no-requeue',
    // Like the local executor: PATH and the step's own env, not the service's environment.
    '--export=PATH',
    ...(options.partition ? [`--partition=${options.partition}`] : []),
    ...(options.account ? [`--account=${options.account}`] : []),
  ];
  const lines = [
    '#!/bin/bash',
    ...directives.map((d) => `#SBATCH ${d}`),
    'set -euo pipefail',
    `exec >>${shellQuote(job.logFile)} 2>&1`,
    `cd -- ${shellQuote(job.cwd)}`,
    ...Object.entries(job.env).map(([k, v]) => `export ${k}=${shellQuote(v)}`),
    `exec -- ${job.argv.map(shellQuote).join(' ')}`,
  ];
  return { name, file: `${base}.sh`, text: `${lines.join('\n')}\n` };
}

/** One job as Slurm's accounting (sacct), jobcomp or controller memory (scontrol) reports it. */
export interface JobRecord {
  id: string;
  name: string;
  state: string;
  /** "exit:signal", as Slurm prints it. */
  exitCode: string;
  elapsedS: number;
}

/** `sacct -X -n -P -o JobID,JobName,State,ExitCode,ElapsedRaw` */
export const SACCT_FIELDS = 'JobID,JobName,State,ExitCode,ElapsedRaw';

export function parseSacct(stdout: string): JobRecord[] {
  const records: JobRecord[] = [];
  for (const line of stdout.split('\n')) {
    const [id, name, state, exitCode, elapsed] = line.trim().split('|');
    if (!id || name === undefined || !state || !exitCode) continue;
    records.push({ id, name, state, exitCode, elapsedS: Number(elapsed) || 0 });
  }
  return records;
}

/** `scontrol show job -o ID`: one line of Key=Value pairs. */
export function parseScontrolJob(stdout: string): JobRecord | undefined {
  const field = (k: string): string | undefined => new RegExp(`(?:^|\\s)${k}=(\\S*)`).exec(stdout)?.[1];
  const id = field('JobId');
  const state = field('JobState');
  if (!id || !state) return undefined;
  return { id, name: field('JobName') ?? '', state, exitCode: field('ExitCode') ?? '0:0', elapsedS: parseDuration(field('RunTime') ?? '') };
}

/** Slurm durations: [D-]HH:MM:SS, MM:SS. */
export function parseDuration(text: string): number {
  const m = /^(?:(\d+)-)?(?:(\d+):)?(\d+):(\d+)$/.exec(text);
  if (!m) return 0;
  return Number(m[1] ?? 0) * 86400 + Number(m[2] ?? 0) * 3600 + Number(m[3]) * 60 + Number(m[4]);
}

export interface QueueEntry {
  id: string;
  state: string;
  name: string;
  comment: string;
}

/** `squeue -h -o '%i|%T|%j|%k'` */
export const SQUEUE_FORMAT = '%i|%T|%j|%k';

export function parseSqueue(stdout: string): QueueEntry[] {
  return stdout
    .split('\n')
    .map((line) => line.trim().split('|'))
    .filter((cols): cols is [string, string, string, string] => cols.length === 4 && /^\d+$/.test(cols[0] ?? ''))
    .map(([id, state, name, comment]) => ({ id, state, name, comment }));
}

/** The most recent of several jobs (highest id; the later line on a tie, as after a controller lost its state). */
export function latest<T extends { id: string }>(jobs: readonly T[]): T | undefined {
  return jobs.reduce<T | undefined>((best, job) => (best === undefined || Number(job.id) >= Number(best.id) ? job : best), undefined);
}

/** The outcome a final state stands for; undefined while the job has not ended. */
export function outcomeFromRecord(record: JobRecord, watchedS: number): StepOutcome | undefined {
  const seconds = Math.round(Math.max(record.elapsedS, watchedS) * 1000) / 1000;
  const state = (record.state.split(/[\s+]/)[0] ?? '').toUpperCase();
  const [exit, signal] = record.exitCode.split(':').map(Number);
  const killedBy = signal ? signal : 0;
  const exitCode = killedBy || exit === undefined || Number.isNaN(exit) ? null : exit;
  const failed = (reason: string): StepOutcome => ({ status: 'failed', reason, exitCode, seconds });
  switch (state) {
    case 'COMPLETED':
      return { status: 'ok', seconds };
    case 'TIMEOUT':
      return { status: 'timeout', seconds };
    case 'CANCELLED':
      return { status: 'failed', reason: 'cancelled', exitCode: null, seconds };
    case 'FAILED':
      return failed(killedBy ? `killed by signal ${killedBy}` : `exit code ${exit}`);
    case 'OUT_OF_MEMORY':
      return failed('out of memory');
    case 'NODE_FAIL':
      return failed('node failure');
    case 'BOOT_FAIL':
    case 'DEADLINE':
    case 'PREEMPTED':
    case 'REVOKED':
      return failed(`slurm: ${state.toLowerCase()}`);
    default:
      return undefined;
  }
}
