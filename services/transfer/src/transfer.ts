/**
 * Runs transfer jobs from the queue, one job at a time with `parallel` files in flight.
 *
 * Trust model (first cut): the service holds one SSH key per cluster, and a person's cluster
 * account accepts it (they add its public half to their authorized_keys). Which account a job
 * logs in to comes from the usermap alone, never from the request, and before any file moves
 * the service asks that account `id` over a pinned host key: if the uid or username differ
 * from the usermap's record the job is blocked, because files written there would belong to
 * someone else (the pilot's UID:GID failure). Anyone who can submit jobs for a person can
 * therefore write under that person's allowed remote roots, so the API must only be reachable
 * through the portal, which names the signed-in person.
 */
import { EventEmitter } from 'node:events';
import { AppError, errorMessage, type Logger, logError, remoteId, rsyncFiles, sha256File, SshError, type SshTarget, verifyRemote } from '@cloudlet/core';
import type { UserMap } from '@cloudlet/usermap';
import type { ClusterConfig, TransferConfig } from './config';
import { confineRemote, listSource } from './paths';
import { type FileRow, type Job, Queue } from './queue';

export interface SubmitRequest {
  person: string;
  cluster: string;
  /** Absolute local folder, under one of `local_roots`. */
  source: string;
  /** Only these files (relative to source); the whole folder when absent. */
  files?: readonly string[] | undefined;
  /** Absolute remote folder, under one of the cluster's `allowed_remote_roots`. */
  dest: string;
}

export interface TransferEvent {
  type: 'job' | 'file' | 'progress';
  job: string;
  [field: string]: unknown;
}

export interface TransfererDeps {
  config: TransferConfig;
  queue: Queue;
  usermap: () => UserMap;
  log: Logger;
}

/** A job that cannot go on until someone fixes its cause (usermap, host key, config). */
class Blocked extends AppError {
  constructor(message: string, cause?: unknown) {
    super(message, { code: 'transfer_blocked', status: 409, publicMessage: message, cause });
  }
}

export class Transferer extends EventEmitter {
  private readonly config: TransferConfig;
  private readonly queue: Queue;
  private readonly log: Logger;
  private abort = new AbortController();
  private loop: Promise<void> | undefined;
  private wake: (() => void) | undefined;
  private stopping = false;
  /** The job being run, if any. */
  active: string | undefined;

  constructor(private readonly deps: TransfererDeps) {
    super();
    this.config = deps.config;
    this.queue = deps.queue;
    this.log = deps.log;
  }

  /** Adds a job, or finds the same one; a failed or blocked one is given another go. */
  submit(req: SubmitRequest): { job: Job; created: boolean } {
    const cluster = this.cluster(req.cluster);
    if (!this.deps.usermap().person(req.person)) throw new AppError(`unknown person ${JSON.stringify(req.person)}`, { code: 'unknown_person', status: 400 });
    const dest = confineRemote(cluster.allowed_remote_roots, req.dest);
    const { base, files } = listSource(this.config.local_roots, req.source, req.files);
    const result = this.queue.add({ person: req.person, cluster: cluster.id, source: base, files: req.files, dest }, files);
    let job = result.job;
    if (!result.created && (job.state === 'failed' || job.state === 'blocked')) {
      this.queue.requeueFailed(job.id);
      job = this.queue.setJob(job.id, 'queued');
    }
    if (result.created || job.state === 'queued') {
      this.log.info({ job: job.id, person: job.person, cluster: job.cluster, files: files.length, created: result.created }, 'transfer queued');
      this.publish({ type: 'job', job: job.id, state: job.state });
      this.kick();
    }
    return { job, created: result.created };
  }

  start(): void {
    this.queue.recover();
    this.stopping = false;
    this.abort = new AbortController();
    this.loop = this.run();
  }

  /** Stops between or inside files: rsync is killed, its partial kept for the next start. */
  async stop(): Promise<void> {
    this.stopping = true;
    this.abort.abort();
    this.kick();
    await this.loop;
  }

  /**
   * Checks every verified file of a finished job again; a changed remote copy goes back to the
   * queue and is sent again. Returns how many were checked and how many differed.
   */
  async reverify(id: string): Promise<{ checked: number; mismatched: string[] }> {
    const job = this.queue.job(id);
    if (!job) throw new AppError(`no transfer job ${id}`, { code: 'not_found', status: 404 });
    if (job.state === 'running' || job.state === 'queued') throw new AppError(`job ${id} is ${job.state}; verify it once it has finished`, { code: 'job_busy', status: 409 });
    const files = this.queue.files(id, 'verified');
    const target = await this.identity(job, this.abort.signal);
    const result = await verifyRemote(target, files.map((f) => ({ local: f.local, remote: f.remote })), { signal: this.abort.signal });
    const bad = new Set(result.mismatches.map((m) => m.remote));
    const mismatched = files.filter((f) => bad.has(f.remote));
    for (const f of mismatched) this.queue.setFile(id, f.rel, 'queued', { reason: 'the remote copy changed after it was verified' });
    if (mismatched.length > 0) {
      this.log.warn({ job: id, files: mismatched.length }, 'verified files changed on the remote side; sending them again');
      this.queue.setJob(id, 'queued');
      this.kick();
    }
    return { checked: files.length, mismatched: mismatched.map((f) => f.rel) };
  }

  private cluster(id: string): ClusterConfig {
    const cluster = this.config.clusters.find((c) => c.id === id);
    if (!cluster) throw new AppError(`unknown cluster ${JSON.stringify(id)} (configured: ${this.config.clusters.map((c) => c.id).join(', ') || 'none'})`, { code: 'unknown_cluster', status: 400 });
    return cluster;
  }

  private publish(event: TransferEvent): void {
    this.emit('event', event);
  }

  private kick(): void {
    const wake = this.wake;
    this.wake = undefined;
    wake?.();
  }

  private async run(): Promise<void> {
    while (!this.stopping) {
      const next = this.queue.jobs({ state: 'queued' })[0];
      if (!next) {
        await new Promise<void>((resolve) => {
          this.wake = resolve;
        });
        continue;
      }
      this.active = next.id;
      try {
        await this.runJob(next);
      } catch (err) {
        // A bug or a broken ledger, not a transfer failure: park the job so the loop goes on.
        logError(this.log, err, 'transfer job crashed', { job: next.id });
        this.queue.recover();
        this.queue.setJob(next.id, 'failed', `internal error: ${errorMessage(err)}`);
      } finally {
        this.active = undefined;
      }
    }
  }

  private async runJob(job: Job): Promise<void> {
    const signal = this.abort.signal;
    this.queue.setJob(job.id, 'running');
    this.publish({ type: 'job', job: job.id, state: 'running' });
    let state: Job['state'];
    let reason: string | null = null;
    try {
      const target = await this.identity(job, signal);
      await this.sendAll(job, target, signal);
      const failed = this.queue.files(job.id, 'failed');
      state = failed.length === 0 ? 'done' : 'failed';
      if (failed[0]) reason = `${failed.length} file(s) failed; ${failed[0].rel}: ${failed[0].reason ?? 'unknown'}`;
    } catch (err) {
      if (this.stopping) {
        this.queue.recover();
        this.log.info({ job: job.id }, 'transfer paused by stop');
        return;
      }
      const hostKey = err instanceof SshError && err.code === 'ssh_host_key';
      state = err instanceof Blocked || hostKey ? 'blocked' : 'failed';
      reason = hostKey ? `${errorMessage(err)}; if the cluster's key really changed, update known_hosts_file for cluster ${job.cluster}` : errorMessage(err);
    }
    this.queue.setJob(job.id, state, reason);
    (state === 'done' ? this.log.info.bind(this.log) : this.log.warn.bind(this.log))({ job: job.id, state, reason }, 'transfer finished');
    this.publish({ type: 'job', job: job.id, state, reason, counts: this.queue.counts(job.id) });
  }

  /** The SSH target for the job's person, after `id` there matched the usermap. */
  private async identity(job: Job, signal: AbortSignal): Promise<SshTarget> {
    const cluster = this.config.clusters.find((c) => c.id === job.cluster);
    if (!cluster) throw new Blocked(`cluster ${job.cluster} is not configured any more: add it to transfer.clusters`);
    const person = this.deps.usermap().person(job.person);
    if (!person) throw new Blocked(`person ${job.person} is not in the usermap`);
    if (person.status !== 'active') throw new Blocked(`person ${job.person} is ${person.status}; only active people transfer`);
    const account = person.clusters.find((c) => c.cluster === job.cluster);
    if (!account) {
      throw new Blocked(`person ${job.person} has no account on cluster ${job.cluster} in the usermap: add {cluster: ${job.cluster}, username, uid, gid} to their clusters, as \`ssh ${cluster.host} id\` reports it`);
    }
    const target: SshTarget = { host: cluster.host, port: cluster.port, user: account.username, keyFile: cluster.key_file, knownHostsFile: cluster.known_hosts_file };
    const seen = await remoteId(target, { signal });
    if (seen.uid !== account.uid || seen.user !== account.username) {
      throw new Blocked(
        `identity mismatch on cluster ${job.cluster}: logging in as ${account.username} gives ${seen.user} uid ${seen.uid} gid ${seen.gid}, but the usermap records ${account.username} uid ${account.uid} gid ${account.gid} for person ${job.person}; ` +
          `files would be written with the wrong owner. Fix the clusters entry for ${job.cluster} of person ${job.person} in the usermap (or the account on the cluster), then resubmit`,
      );
    }
    if (seen.gid !== account.gid) this.log.warn({ job: job.id, cluster: job.cluster, remote_gid: seen.gid, usermap_gid: account.gid }, 'remote primary group differs from the usermap');
    return target;
  }

  private async sendAll(job: Job, target: SshTarget, signal: AbortSignal): Promise<void> {
    const progress = new Progress(job.id, this.queue.counts(job.id), (e) => this.publish(e));
    for (let round = 0; ; round++) {
      const pending = this.queue.files(job.id, 'queued');
      if (pending.length === 0) return;
      if (round > 0) await sleep(this.config.retry_backoff_ms * 2 ** (round - 1), signal);
      for (let i = 0; i < pending.length; i += this.config.parallel) {
        const chunk = pending.slice(i, i + this.config.parallel);
        const results = await Promise.allSettled(chunk.map((f) => this.sendOne(job, target, f, progress, signal)));
        const fatal = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
        if (fatal) throw fatal.reason;
        const sent = results.flatMap((r) => (r.status === 'fulfilled' && r.value ? [r.value] : []));
        await this.verify(job, target, sent, signal);
        progress.emit(this.queue.counts(job.id), true);
      }
    }
  }

  /** Sends one file; returns it when sent, undefined when this try failed (retried later). */
  private async sendOne(job: Job, target: SshTarget, file: FileRow, progress: Progress, signal: AbortSignal): Promise<FileRow | undefined> {
    const sending = this.queue.setFile(job.id, file.rel, 'sending', { attempt: true });
    try {
      await rsyncFiles(target, [{ local: file.local, remote: file.remote }], {
        bandwidthKiBps: this.config.bandwidth_kibps,
        // A resend: the remote copy may have the same size and mtime but wrong bytes.
        checksum: sending.attempts > 1,
        signal,
        onProgress: (bytes) => progress.inflight(file.rel, bytes),
      });
      progress.inflight(file.rel, file.size);
      return this.queue.setFile(job.id, file.rel, 'sent', { bytes: file.size, reason: null });
    } catch (err) {
      progress.inflight(file.rel, 0);
      if (signal.aborted || (err instanceof SshError && err.code === 'ssh_host_key')) throw err;
      this.giveUpOrRetry(job, sending, `send failed: ${errorMessage(err)}`);
      return undefined;
    }
  }

  private async verify(job: Job, target: SshTarget, files: readonly FileRow[], signal: AbortSignal): Promise<void> {
    if (files.length === 0) return;
    const result = await verifyRemote(target, files.map((f) => ({ local: f.local, remote: f.remote })), { signal });
    const bad = new Map(result.mismatches.map((m) => [m.remote, m]));
    for (const f of files) {
      const mismatch = bad.get(f.remote);
      if (mismatch) {
        this.giveUpOrRetry(job, f, `verify failed: remote sha256 ${mismatch.remoteSha256 ?? '(unreadable)'} differs from local ${mismatch.localSha256}`);
      } else {
        // verifyRemote reports only mismatches; the digest is kept so a reader can check later.
        const row = this.queue.setFile(job.id, f.rel, 'verified', { sha256: await sha256File(f.local), reason: null });
        this.publish({ type: 'file', job: job.id, rel: row.rel, state: row.state, attempts: row.attempts });
      }
    }
  }

  private giveUpOrRetry(job: Job, file: FileRow, reason: string): void {
    const to = file.attempts >= this.config.retries ? 'failed' : 'queued';
    const row = this.queue.setFile(job.id, file.rel, to, { reason });
    this.log.warn({ job: job.id, file: file.rel, attempts: row.attempts, state: to, reason }, 'file transfer try failed');
    this.publish({ type: 'file', job: job.id, rel: row.rel, state: row.state, attempts: row.attempts, reason });
  }
}

/** Bytes, files, rate and ETA for one job run, published at most every 250 ms. */
class Progress {
  private readonly started = Date.now();
  private readonly inFlight = new Map<string, number>();
  private lastEmit = 0;
  private baseBytes: number;
  private sentThisRun = 0;

  constructor(
    private readonly job: string,
    private counts: ReturnType<Queue['counts']>,
    private readonly publish: (e: TransferEvent) => void,
  ) {
    this.baseBytes = counts.bytes;
  }

  inflight(rel: string, bytes: number): void {
    this.sentThisRun += bytes - (this.inFlight.get(rel) ?? 0);
    if (bytes === 0) this.inFlight.delete(rel);
    else this.inFlight.set(rel, bytes);
    this.emit(this.counts, false);
  }

  emit(counts: ReturnType<Queue['counts']>, force: boolean): void {
    this.counts = counts;
    const now = Date.now();
    if (!force && now - this.lastEmit < 250) return;
    this.lastEmit = now;
    const elapsed = Math.max(now - this.started, 1) / 1000;
    const rate = this.sentThisRun / elapsed;
    const bytes = Math.min(this.baseBytes + this.sentThisRun, counts.totalBytes);
    const left = counts.totalBytes - bytes;
    this.publish({
      type: 'progress',
      job: this.job,
      bytes,
      total_bytes: counts.totalBytes,
      files_verified: counts.verified,
      files_total: counts.queued + counts.sending + counts.sent + counts.verified + counts.failed,
      rate_bps: Math.round(rate),
      eta_s: rate > 0 ? Math.round(left / rate) : null,
    });
  }
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(new SshError('stopped', 'ssh_aborted'));
    const timer = setTimeout(resolve, ms);
    signal.addEventListener('abort', () => {
      clearTimeout(timer);
      reject(new SshError('stopped', 'ssh_aborted'));
    }, { once: true });
  });
}
