/**
 * Slurm batch jobs on the clusters, submitted as the person's own cluster account over SSH
 * (ssh2, host key pinned), from job templates (job-templates.ts).
 *
 * A job is recorded in `submitting` before anything reaches the cluster. Then: `id` there must
 * match the usermap (as for transfers), the rendered script goes to `<job_dir>/job.sh` on stdin
 * (never in argv), and `sbatch --parsable` runs with `--job-name=cloudlet-<id>`: the name lets a
 * restarted service find a job whose id it never learnt (squeue --name, then the accounting
 * records). States come from squeue while the job is there, then from sacct (`sacct -c` where
 * finished jobs go to a jobcomp file; `scontrol show job` while the controller remembers it).
 *
 * Nothing Slurm refused is retried: the job becomes `rejected` with sbatch's own words. What is
 * retried is a login that failed before sbatch ran, which Slurm never saw.
 */
import crypto from 'node:crypto';
import { EventEmitter } from 'node:events';
import { AppError, errorMessage, type Logger, logError, SshError } from '@cloudlet/core';
import type { UserMap } from '@cloudlet/usermap';
import { AccountBlocked, checkIdentity, type ClusterAccount, findCluster, parseId, resolveAccount } from './account';
import type { ClusterConfig, TransferConfig } from './config';
import { loadTemplate, plainValues, resolveValues } from './job-templates';
import type { NewRemoteJob, RemoteJob, RemoteJobStore, StateUpdate } from './remote-store';
import { type SshControl, withControl } from './ssh-control';
import { FINAL_STATES, parseSacct, parseSbatch, parseScontrol, parseSqueue, SACCT_FIELDS, sbatchReason, type SlurmRecord, SQUEUE_FORMAT, stateFromSlurm } from './slurm-status';

export interface RemoteSubmitRequest {
  person: string;
  cluster: string;
  template: string;
  values?: unknown;
  /** Submitting again with the same key finds the first job instead of making a second. */
  key?: string | undefined;
  followId?: string | undefined;
}

export interface RemoteJobEvent {
  type: 'remote-job';
  job: string;
  state: string;
  slurm_state: string | null;
  from: string | null;
  reason: string | null;
}

export interface RemoteJobsDeps {
  config: TransferConfig;
  store: RemoteJobStore;
  usermap: () => UserMap;
  log: Logger;
}

/** Polls in which a job with a Slurm id is in neither squeue nor the records before it is `unknown`. */
const MAX_MISSES = 8;
/** Polls to wait for the accounting record of a job that left the queue before asking scontrol. */
const RECORD_WAIT_POLLS = 3;
const ACTIVE = ['submitting', 'pending', 'running', 'unknown'] as const;
/** Keeps one squeue command line short whatever the number of jobs. */
const NAMES_PER_QUERY = 100;

/** slurmd expands %-patterns in --output; a literal % in the folder must be doubled. */
function outputPattern(jobDir: string): string {
  return `${jobDir.replaceAll('%', '%%')}/slurm-%j.out`;
}

export class RemoteJobs extends EventEmitter {
  private readonly config: TransferConfig;
  private readonly store: RemoteJobStore;
  private readonly log: Logger;
  /** Jobs a send() is working on: the poller leaves them alone. */
  private readonly sending = new Set<string>();
  /** Cancelled while its sbatch was under way: cancelled as soon as Slurm names it. */
  private readonly cancelOnSubmit = new Set<string>();
  /** Where each cluster keeps finished jobs, learnt from the first answer. */
  private readonly records = new Map<string, 'sacct' | 'jobcomp' | 'none'>();
  private loop: Promise<void> | undefined;
  private wake: (() => void) | undefined;
  private stopping = false;

  constructor(private readonly deps: RemoteJobsDeps) {
    super();
    this.config = deps.config;
    this.store = deps.store;
    this.log = deps.log.child({ component: 'remote-jobs' });
  }

  /** Checks the request and renders the script; nothing is stored or sent. */
  prepare(req: RemoteSubmitRequest): NewRemoteJob {
    const cluster = findCluster(this.config, req.cluster);
    if (!this.deps.usermap().person(req.person)) throw new AppError(`unknown person ${JSON.stringify(req.person)}`, { code: 'unknown_person', status: 400 });
    const template = loadTemplate(this.config.remote_jobs.templates_dir, req.template);
    const values = resolveValues(template, req.values, cluster.allowed_remote_roots);
    const id =
      req.key === undefined
        ? crypto.randomBytes(10).toString('hex')
        : crypto.createHash('sha256').update(JSON.stringify([req.person, cluster.id, template.name, req.key])).digest('hex').slice(0, 20);
    const plain = plainValues(values);
    const jobDir = `${String(plain.dest)}/cloudlet-job-${id}`;
    const slurmName = `cloudlet-${id}`;
    const account = this.deps.usermap().person(req.person)?.clusters.find((c) => c.cluster === cluster.id);
    const script = template.render(values, { job_dir: jobDir, job_name: slurmName, job_id: id, user: account?.username ?? '', cluster: cluster.id });
    return { id, person: req.person, cluster: cluster.id, template: template.name, values: plain, script, jobDir, slurmName, followId: req.followId };
  }

  /** Records and submits a job; resolves once sbatch answered (or the job is parked with a reason). */
  async submit(req: RemoteSubmitRequest): Promise<{ job: RemoteJob; created: boolean }> {
    const prepared = this.prepare(req);
    const { job, created } = this.store.add(prepared);
    if (!created && JSON.stringify(job.values) !== JSON.stringify(prepared.values)) {
      throw new AppError(`key ${JSON.stringify(req.key)} already names remote job ${job.id}, with other values`, { code: 'key_reused', status: 409 });
    }
    if (!created) return { job, created };
    this.log.info({ job: job.id, person: job.person, cluster: job.cluster, template: job.template }, 'remote job recorded');
    return { job: await this.send(job.id), created };
  }

  /** Submits a job in `submitting` that sbatch has not seen yet. */
  async send(id: string): Promise<RemoteJob> {
    const job = this.store.get(id);
    if (!job || job.state !== 'submitting' || job.attempted || this.sending.has(id)) return job as RemoteJob;
    this.sending.add(id);
    try {
      const account = resolveAccount(this.config, this.deps.usermap(), job.person, job.cluster);
      const outcome = await withControl(account.target, this.config.remote_jobs.command_timeout_ms, (c) => this.sbatch(c, job, account));
      return this.set(job, outcome);
    } catch (err) {
      const now = this.store.get(id) as RemoteJob;
      if (err instanceof AccountBlocked || (err instanceof SshError && err.code === 'ssh_host_key')) {
        const reason = err instanceof SshError ? `${errorMessage(err)}; if the cluster's key really changed, update known_hosts_file for cluster ${job.cluster}` : errorMessage(err);
        return this.set(now, { state: 'blocked', reason });
      }
      if (!(err instanceof SshError)) throw err;
      // Slurm may or may not have it (attempted): the poller looks it up by name, or tries again.
      this.log.warn({ job: id, attempted: now.attempted, reason: errorMessage(err) }, 'remote job submission interrupted');
      return this.set(now, { state: 'submitting', reason: `waiting: ${errorMessage(err)}` });
    } finally {
      this.sending.delete(id);
      this.cancelOnSubmit.delete(id);
    }
  }

  private async sbatch(c: SshControl, job: RemoteJob, account: ClusterAccount): Promise<StateUpdate> {
    const seen = parseId((await c.run(['sh', '-c', 'id -u && id -g && id -un'])).stdout);
    if (!seen) throw new SshError(`id on cluster ${job.cluster} gave no identity`, 'ssh_failed');
    checkIdentity(seen, account, job.person);
    const script = `${job.jobDir}/job.sh`;
    const write = await c.run(['sh', '-c', 'umask 077 && mkdir -p -- "$1" && cat > "$1/job.sh"', 'sh', job.jobDir], { stdin: job.script });
    if (write.code !== 0) return { state: 'failed', reason: `cannot write the batch script to ${script}: ${write.stderr.trim().slice(0, 300)}` };
    this.store.markAttempted(job.id);
    const res = await c.run(
      slurmArgv(account.cluster, ['sbatch', '--parsable', `--job-name=${job.slurmName}`, `--comment=cloudlet:${job.id}`, `--chdir=${job.jobDir}`, `--output=${outputPattern(job.jobDir)}`, script]),
    );
    if (res.code !== 0) return { state: 'rejected', reason: `Slurm refused the job: ${sbatchReason(res.stderr)}` };
    const slurmId = parseSbatch(res.stdout);
    if (!slurmId) return { state: 'failed', reason: `sbatch printed no job id: ${JSON.stringify(res.stdout.slice(0, 200))}` };
    if (this.cancelOnSubmit.has(job.id)) await c.run(slurmArgv(account.cluster, ['scancel', slurmId]));
    return { state: 'pending', slurmId, slurmState: 'PENDING', stateFrom: 'sbatch', reason: null };
  }

  /** Asks Slurm to cancel; the poller records the end. */
  async cancel(id: string): Promise<RemoteJob> {
    const job = this.store.get(id);
    if (!job) throw new AppError(`no remote job ${id}`, { code: 'not_found', status: 404 });
    if (FINAL_STATES.has(job.state)) throw new AppError(`remote job ${id} is already ${job.state}`, { code: 'job_finished', status: 409 });
    if (job.state === 'submitting' && !job.attempted && !this.sending.has(id)) return this.set(job, { state: 'cancelled', reason: 'cancelled before it reached Slurm' });
    if (this.sending.has(id)) {
      this.cancelOnSubmit.add(id);
      return job;
    }
    const account = resolveAccount(this.config, this.deps.usermap(), job.person, job.cluster);
    const res = await withControl(account.target, this.config.remote_jobs.command_timeout_ms, (c) =>
      c.run(slurmArgv(account.cluster, ['scancel', ...(job.slurmId ? [job.slurmId] : ['--me', `--name=${job.slurmName}`])])),
    );
    if (res.code !== 0) throw new AppError(`scancel on ${job.cluster} failed: ${res.stderr.trim().slice(0, 300)}`, { code: 'cancel_failed', status: 502, publicMessage: `scancel failed: ${res.stderr.trim().slice(0, 300)}` });
    this.log.info({ job: id, slurm_id: job.slurmId }, 'remote job cancel requested');
    this.kick();
    return this.store.get(id) as RemoteJob;
  }

  start(): void {
    this.stopping = false;
    this.loop = this.run();
  }

  async stop(): Promise<void> {
    this.stopping = true;
    this.kick();
    await this.loop;
  }

  /** Polls now instead of at the next interval. */
  kick(): void {
    const wake = this.wake;
    this.wake = undefined;
    wake?.();
  }

  private async run(): Promise<void> {
    while (!this.stopping) {
      try {
        await this.pollOnce();
      } catch (err) {
        logError(this.log, err, 'remote job poll failed');
      }
      if (this.stopping) break;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, this.config.remote_jobs.poll_interval_ms);
        this.wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
  }

  /** One look at every job not yet finished, one SSH login per (person, cluster). */
  async pollOnce(): Promise<void> {
    const groups = new Map<string, RemoteJob[]>();
    for (const job of this.store.list({ states: ACTIVE })) {
      if (this.sending.has(job.id)) continue;
      if (job.state === 'submitting' && !job.attempted) {
        await this.send(job.id);
        continue;
      }
      const key = JSON.stringify([job.person, job.cluster]);
      groups.set(key, [...(groups.get(key) ?? []), job]);
    }
    for (const jobs of groups.values()) {
      const first = jobs[0] as RemoteJob;
      try {
        const account = resolveAccount(this.config, this.deps.usermap(), first.person, first.cluster);
        await withControl(account.target, this.config.remote_jobs.command_timeout_ms, (c) => this.pollGroup(c, account.cluster, jobs));
      } catch (err) {
        // The jobs go on in Slurm whatever we can see: keep them, say why on the next look.
        this.log.warn({ person: first.person, cluster: first.cluster, jobs: jobs.length, reason: errorMessage(err) }, 'cannot reach the cluster to poll remote jobs');
      }
    }
  }

  private async pollGroup(c: SshControl, cluster: ClusterConfig, jobs: readonly RemoteJob[]): Promise<void> {
    // By name, not by id: it also finds a job whose id was never recorded, and an id Slurm has
    // forgotten is an error for `squeue -j` but simply absent here.
    const queued: SlurmRecord[] = [];
    for (let i = 0; i < jobs.length; i += NAMES_PER_QUERY) {
      const names = jobs.slice(i, i + NAMES_PER_QUERY).map((j) => j.slurmName);
      const res = await c.run(slurmArgv(cluster, ['squeue', '-h', '--me', `--name=${names.join(',')}`, '-o', SQUEUE_FORMAT]));
      if (res.code !== 0) throw new SshError(`squeue on ${cluster.id} failed: ${res.stderr.trim().slice(0, 300)}`, 'ssh_failed');
      queued.push(...parseSqueue(res.stdout));
    }
    for (const job of jobs) {
      const live = latest(queued.filter((r) => r.name === job.slurmName && (!job.slurmId || r.id === job.slurmId)));
      if (live) {
        this.set(job, { state: stateFromSlurm(live.state), slurmId: live.id, slurmState: live.state, stateFrom: 'squeue', misses: 0, reason: null });
        continue;
      }
      const record = await this.finalRecord(c, cluster, job);
      if (record) {
        const state = stateFromSlurm(record.rec.state);
        this.set(job, { state: state === 'unknown' ? job.state : state, slurmId: record.rec.id, slurmState: record.rec.state, stateFrom: record.from, exitCode: record.rec.exitCode ?? null, misses: 0, reason: null });
      } else if (job.misses + 1 >= MAX_MISSES) {
        this.set(
          job,
          job.slurmId
            ? { state: 'unknown', reason: `job ${job.slurmId} left the queue but Slurm reports no final state for it` }
            : { state: 'failed', reason: `the submission was interrupted and Slurm has no job named ${job.slurmName}: submit it again` },
        );
      } else {
        this.store.update(job.id, { state: job.state, misses: job.misses + 1 });
      }
    }
  }

  /** The job as the records (sacct, or sacct -c) or the controller's memory (scontrol) know it. */
  private async finalRecord(c: SshControl, cluster: ClusterConfig, job: RemoteJob): Promise<{ rec: SlurmRecord; from: string } | undefined> {
    const mine = (r: SlurmRecord): boolean => r.name === job.slurmName && (!job.slurmId || r.id === job.slurmId);
    const select = job.slurmId ? ['-j', job.slurmId] : ['-S', 'now-7days', `--name=${job.slurmName}`];
    let mode = this.records.get(cluster.id) ?? 'sacct';
    if (mode === 'sacct') {
      const res = await c.run(slurmArgv(cluster, ['sacct', '-X', '-n', '-P', '-o', SACCT_FIELDS, ...select]));
      if (res.code === 0) {
        const rec = latest(parseSacct(res.stdout).filter(mine));
        if (rec) return { rec, from: 'sacct' };
      } else if (/accounting storage is disabled/i.test(res.stderr)) {
        mode = 'jobcomp';
        this.log.info({ cluster: cluster.id }, 'no slurmdbd on this cluster: final states come from the jobcomp file (sacct -c)');
      }
    }
    if (mode === 'jobcomp') {
      // sacct -c ignores --name: the filter above picks our job.
      const res = await c.run(slurmArgv(cluster, ['sacct', '-c', '-X', '-n', '-P', '-o', SACCT_FIELDS, ...select]));
      if (res.code === 0) {
        const rec = latest(parseSacct(res.stdout).filter(mine));
        if (rec) {
          this.records.set(cluster.id, mode);
          return { rec, from: 'sacct' };
        }
      } else {
        mode = 'none';
        this.log.warn({ cluster: cluster.id, reason: res.stderr.trim().slice(0, 200) }, 'no readable job accounting on this cluster: final states come from scontrol only');
      }
    }
    this.records.set(cluster.id, mode);
    // The records trail the queue by a moment: give them a few polls before asking the controller.
    if (mode !== 'none' && job.misses < RECORD_WAIT_POLLS) return undefined;
    const res = await c.run(slurmArgv(cluster, ['scontrol', 'show', 'job', '-o', ...(job.slurmId ? [job.slurmId] : [])]));
    if (res.code !== 0) return undefined;
    const rec = latest(res.stdout.split('\n').flatMap((line) => parseScontrol(line) ?? []).filter(mine));
    return rec && { rec, from: 'scontrol' };
  }

  private set(job: RemoteJob, u: StateUpdate): RemoteJob {
    const before = this.store.get(job.id) as RemoteJob;
    // A finished job stays as it ended: a stale answer (a poll that raced a cancel) changes nothing.
    if (FINAL_STATES.has(before.state) && before.state !== u.state) return before;
    const after = this.store.update(job.id, u);
    if (after.state !== before.state || after.slurmState !== before.slurmState) {
      const event: RemoteJobEvent = { type: 'remote-job', job: after.id, state: after.state, slurm_state: after.slurmState, from: after.stateFrom, reason: after.reason };
      (FINAL_STATES.has(after.state) && after.state !== 'completed' ? this.log.warn.bind(this.log) : this.log.info.bind(this.log))(
        { job: after.id, slurm_id: after.slurmId, state: after.state, slurm_state: after.slurmState, from: after.stateFrom, reason: after.reason },
        'remote job state',
      );
      this.emit('event', event);
    }
    return after;
  }
}

/** `env NAME=value ... cmd args` when the cluster needs an environment for its Slurm commands. */
export function slurmArgv(cluster: ClusterConfig, argv: readonly string[]): string[] {
  const env = Object.entries(cluster.slurm_env).map(([k, v]) => `${k}=${v}`);
  return env.length > 0 ? ['env', ...env, ...argv] : [...argv];
}

/** The most recent of several jobs (highest id). */
function latest<T extends { id: string }>(jobs: readonly T[]): T | undefined {
  return jobs.reduce<T | undefined>((best, job) => (best === undefined || Number(job.id) >= Number(best.id) ? job : best), undefined);
}
