/**
 * Reading Slurm's answers about remote jobs: squeue while a job is queued or running, then the
 * accounting record (sacct; `sacct -c` where a site records finished jobs in a jobcomp file
 * instead of slurmdbd), then `scontrol show job` while the controller still remembers it. The
 * same rules as the stream's local Slurm executor (services/stream/src/executor-slurm-script.ts),
 * here for commands whose output comes back over SSH.
 */

/** A remote job's life as Cloudlet records it; Slurm's own word is kept beside it. */
export const REMOTE_STATES = ['submitting', 'pending', 'running', 'completed', 'failed', 'cancelled', 'timeout', 'rejected', 'blocked', 'unknown'] as const;
export type RemoteState = (typeof REMOTE_STATES)[number];

export const FINAL_STATES: ReadonlySet<RemoteState> = new Set(['completed', 'failed', 'cancelled', 'timeout', 'rejected', 'blocked']);

/** Whitelisted moves; a restarted service may find a job in any later state than it recorded. */
export const REMOTE_TRANSITIONS: Record<RemoteState, readonly RemoteState[]> = {
  submitting: ['pending', 'running', 'completed', 'failed', 'cancelled', 'timeout', 'rejected', 'blocked', 'unknown'],
  pending: ['running', 'completed', 'failed', 'cancelled', 'timeout', 'unknown'],
  running: ['pending', 'completed', 'failed', 'cancelled', 'timeout', 'unknown'],
  unknown: ['pending', 'running', 'completed', 'failed', 'cancelled', 'timeout'],
  completed: [],
  failed: [],
  cancelled: [],
  timeout: [],
  rejected: [],
  blocked: [],
};

/** Cloudlet's state for one of Slurm's job state words (`CANCELLED by 0` included). */
export function stateFromSlurm(slurm: string): RemoteState {
  const word = (slurm.split(/[\s+]/)[0] ?? '').toUpperCase();
  switch (word) {
    case 'PENDING':
    case 'REQUEUED':
    case 'REQUEUE_HOLD':
    case 'REQUEUE_FED':
    case 'RESV_DEL_HOLD':
      return 'pending';
    case 'RUNNING':
    case 'CONFIGURING':
    case 'COMPLETING':
    case 'SUSPENDED':
    case 'STOPPED':
    case 'RESIZING':
    case 'SIGNALING':
    case 'STAGE_OUT':
      return 'running';
    case 'COMPLETED':
      return 'completed';
    case 'CANCELLED':
      return 'cancelled';
    case 'TIMEOUT':
      return 'timeout';
    case 'FAILED':
    case 'NODE_FAIL':
    case 'OUT_OF_MEMORY':
    case 'BOOT_FAIL':
    case 'DEADLINE':
    case 'PREEMPTED':
    case 'REVOKED':
      return 'failed';
    default:
      return 'unknown';
  }
}

export interface SlurmRecord {
  id: string;
  name: string;
  state: string;
  /** "exit:signal" as Slurm prints it; undefined from squeue. */
  exitCode?: string | undefined;
}

/** `squeue -h -o '%i|%T|%j'` */
export const SQUEUE_FORMAT = '%i|%T|%j';

export function parseSqueue(stdout: string): SlurmRecord[] {
  const out: SlurmRecord[] = [];
  for (const line of stdout.split('\n')) {
    const [id, state, ...name] = line.trim().split('|');
    if (!id || !/^\d+$/.test(id) || !state) continue;
    out.push({ id, state, name: name.join('|') });
  }
  return out;
}

/** `sacct -X -n -P -o JobID,JobName,State,ExitCode` */
export const SACCT_FIELDS = 'JobID,JobName,State,ExitCode';

export function parseSacct(stdout: string): SlurmRecord[] {
  const out: SlurmRecord[] = [];
  for (const line of stdout.split('\n')) {
    const [id, name, state, exitCode] = line.trim().split('|');
    if (!id || !/^\d+$/.test(id) || name === undefined || !state) continue;
    out.push({ id, name, state, exitCode });
  }
  return out;
}

/** `scontrol show job -o ID`: one line of Key=Value pairs. */
export function parseScontrol(stdout: string): SlurmRecord | undefined {
  const field = (k: string): string | undefined => new RegExp(`(?:^|\\s)${k}=(\\S*)`).exec(stdout)?.[1];
  const id = field('JobId');
  const state = field('JobState');
  if (!id || !state) return undefined;
  return { id, name: field('JobName') ?? '', state, exitCode: field('ExitCode') };
}

/** The job id from `sbatch --parsable` ("123" or "123;cluster"). */
export function parseSbatch(stdout: string): string | undefined {
  return /^(\d+)(?:;\S+)?$/.exec(stdout.trim())?.[1];
}

/** The last lines of sbatch's complaint, without its "sbatch: error:" prefixes. */
export function sbatchReason(stderr: string): string {
  const lines = stderr
    .split('\n')
    .map((l) => l.replace(/^sbatch: error: /, '').trim())
    .filter(Boolean);
  return lines.slice(-3).join('; ').slice(0, 500) || 'sbatch failed without a message';
}
