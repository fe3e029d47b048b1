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
import { AppError, errorMessage, type Logger, logError, remoteId, rsyncFiles, SshError, type SshTarget } from '@cloudlet/core';
import type { UserMap } from '@cloudlet/usermap';
import type { ClusterConfig, TransferConfig } from './config';
import { confineRemote, listSource } from './paths';
import { type FileRow, type Job, Queue } from './queue';
import { Progress } from './progress';
import { type Batch, type BatchStats, diskFullOr, localSha256, planBatches, remoteSha256, RemoteDiskFull, rsyncBatch, SshMux } from './send';

const OWN_LOGIN_BYTES = 64 * 1024 * 1024;

/** A run's files after rsync, with their local digests (taken while it sent). */
interface Sent {
  rows: FileRow[];
  local: Promise<Map<string, string>>;
  /** The run stopped on a full disk: what landed is checked, the rest is not tried again. */
  failure: RemoteDiskFull | undefined;
}

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
  type: 'job' | 'file' | 'batch' | 'progress';
  job: string;
  [field: string]: unknown;
}

export interface TransfererDeps {
  config: TransferConfig;
  queue: Queue;
  usermap: () => UserMap;
  log: Logger;
  /**
   * Runs between a batch's copy and its check. A seam for fault tests, which corrupt a remote
   * copy here: rsync's own checksum already catches damage in flight, so a mismatch in real life
   * comes from the remote storage or a writer there, which no test can time.
   */
  afterSend?: (files: readonly FileRow[]) => Promise<void> | void;
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
    const { target } = await this.identity(job, this.abort.signal);
    const mismatched: FileRow[] = [];
    for (let i = 0; i < files.length; i += 2000) {
      const chunk = files.slice(i, i + 2000);
      const [remote, local] = await Promise.all([remoteSha256(target, chunk.map((f) => f.remote), this.abort.signal), localSha256(chunk.map((f) => f.local))]);
      mismatched.push(...chunk.filter((f) => remote.get(f.remote) !== local.get(f.local)));
    }
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
      const { target, mux } = await this.identity(job, signal, true);
      await this.sendAll(job, target, signal, mux);
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

  /**
   * The SSH target for the job's person, after `id` there matched the usermap; with `openMux`,
   * also a shared login for the job's first round, made alongside the check to save a round of
   * handshakes (it writes nothing, and is closed if the check fails).
   */
  private async identity(job: Job, signal: AbortSignal, openMux = false): Promise<{ target: SshTarget; mux?: SshMux | undefined }> {
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
    const opening = openMux ? SshMux.open(target, signal, this.config.io_timeout_s) : undefined;
    try {
      return { target: await this.checkIdentity(job, target, account, signal), mux: await opening };
    } catch (err) {
      (await opening)?.close();
      throw err;
    }
  }

  private async checkIdentity(job: Job, target: SshTarget, account: { username: string; uid: number; gid: number }, signal: AbortSignal): Promise<SshTarget> {
    const seen = await remoteId(target, { signal }).catch((err: unknown) => {
      // sshd answers a missing account exactly as a key it does not accept, on purpose.
      if (err instanceof SshError && err.code === 'ssh_failed' && /Permission denied/.test(err.message)) {
        throw new Blocked(
          `cannot log in to cluster ${job.cluster} as ${account.username}: the account does not exist there or does not accept the service's key (${errorMessage(err)}). ` +
            `Check the clusters entry for ${job.cluster} of person ${job.person} in the usermap, and that the account's authorized_keys holds the service's public key`,
          err,
        );
      }
      throw err;
    });
    if (seen.uid !== account.uid || seen.user !== account.username) {
      throw new Blocked(
        `identity mismatch on cluster ${job.cluster}: logging in as ${account.username} gives ${seen.user} uid ${seen.uid} gid ${seen.gid}, but the usermap records ${account.username} uid ${account.uid} gid ${account.gid} for person ${job.person}; ` +
          `files would be written with the wrong owner. Fix the clusters entry for ${job.cluster} of person ${job.person} in the usermap (or the account on the cluster), then resubmit`,
      );
    }
    if (seen.gid !== account.gid) this.log.warn({ job: job.id, cluster: job.cluster, remote_gid: seen.gid, usermap_gid: account.gid }, 'remote primary group differs from the usermap');
    return target;
  }

  private async sendAll(job: Job, target: SshTarget, signal: AbortSignal, firstMux: SshMux | undefined): Promise<void> {
    try {
      await this.sendRounds(job, target, signal, firstMux);
    } finally {
      firstMux?.close();
    }
  }

  private async sendRounds(job: Job, target: SshTarget, signal: AbortSignal, firstMux: SshMux | undefined): Promise<void> {
    const progress = new Progress(job.id, this.queue.counts(job.id), (e) => this.publish(e));
    for (let round = 0; ; round++) {
      const pending = this.queue.files(job.id, 'queued');
      if (pending.length === 0) return;
      if (round > 0) await sleep(this.config.retry_backoff_ms * 2 ** (round - 1), signal);
      const batches = planBatches(job.source, pending, this.config.parallel);
      // One login per round, not per run; a fresh one each retry round, since a cut link can
      // leave a master that no longer carries anything.
      const mux = round === 0 ? firstMux : await SshMux.open(target, signal, this.config.io_timeout_s);
      // The first fatal error (host key, stop, disk full) lets runs in flight end but starts no more.
      let stop: Error | undefined;
      const next = batches.values();
      const fail = (err: unknown): void => {
        stop ??= err instanceof Error ? err : new Error(String(err));
      };
      const checks: Promise<void>[] = [];
      const worker = async (): Promise<void> => {
        for (let b = next.next(); !b.done && stop === undefined; b = next.next()) {
          try {
            const sent = await this.send(job, target, b.value, progress, signal, mux);
            // Checked while this worker's next rsync runs, so the check's round trips and the
            // remote hashing overlap a send instead of stalling the worker.
            if (sent) checks.push(this.check(job, target, b.value, sent, signal, mux).catch(fail));
          } catch (err) {
            fail(err);
          }
        }
      };
      try {
        await Promise.all(Array.from({ length: Math.min(this.config.parallel, batches.length) }, worker));
        await Promise.all(checks);
      } finally {
        mux?.close();
      }
      progress.emit(this.queue.counts(job.id), true);
      if (stop instanceof RemoteDiskFull) throw this.parkUnsent(job, stop);
      if (stop !== undefined) throw stop;
    }
  }

  /** One rsync run; undefined when it failed and its files went back to the queue (or failed). */
  private async send(job: Job, target: SshTarget, batch: Batch, progress: Progress, signal: AbortSignal, mux: SshMux | undefined): Promise<Sent | undefined> {
    const rels = batch.files.map((f) => f.rel);
    const rows = this.queue.setFiles(job.id, rels, 'sending', { attempt: true });
    // Hashed while rsync sends, so the local half of the check costs no wall time of its own.
    const local = localSha256(batch.files.map((f) => f.local));
    local.catch(() => undefined);
    const cap = this.config.bandwidth_kibps;
    const opts = {
      bandwidthKiBps: cap ? Math.max(1, Math.floor(cap / this.config.parallel)) : 0,
      // A resend: the remote copy may have the same size and mtime but wrong bytes.
      checksum: batch.resend,
      idleTimeoutSeconds: this.config.io_timeout_s,
      signal,
      onProgress: (bytes: number) => progress.inflight(batch, bytes),
    };
    let failure: RemoteDiskFull | undefined;
    try {
      // A big file gets a login of its own: its own ssh and sshd, so the cipher work of several
      // big files spreads over the cores instead of queuing in the one shared master.
      const shared = batch.files.length > 1 || batch.bytes < OWN_LOGIN_BYTES ? mux : undefined;
      const stats = batch.direct ? await rsyncBatch(target, job.source, job.dest, rels, opts, shared) : await this.sendIndirect(target, rows[0] as FileRow, opts);
      progress.inflight(batch, batch.bytes);
      this.queue.setFiles(job.id, rels, 'sent');
      this.publish({ type: 'batch', job: job.id, files: rels.length, bytes: batch.bytes, literal_bytes: stats.literalBytes, matched_bytes: stats.matchedBytes });
    } catch (err) {
      progress.inflight(batch, 0);
      if (signal.aborted || (err instanceof SshError && err.code === 'ssh_host_key')) throw err;
      // Cut mid-run: nothing is known to have landed whole, and asking would wait on the same
      // broken link. A full disk is different: what did land is checked and kept.
      if (!(err instanceof RemoteDiskFull)) {
        this.retryOrFail(job, rows, `send failed: ${errorMessage(err)}`);
        return undefined;
      }
      failure = err;
    }
    return { rows, local, failure };
  }

  /** One check of what a run sent: each file leaves here verified, or back in the queue (or failed). */
  private async check(job: Job, target: SshTarget, batch: Batch, sent: Sent, signal: AbortSignal, mux: SshMux | undefined): Promise<void> {
    const { rows, local, failure } = sent;
    await this.deps.afterSend?.(batch.files);
    let remote: Map<string, string>;
    try {
      remote = await remoteSha256(target, batch.files.map((f) => f.remote), signal, mux);
    } catch (err) {
      if (signal.aborted || (err instanceof SshError && err.code === 'ssh_host_key')) throw err;
      this.retryOrFail(job, rows, `verify failed: ${errorMessage(err)}`);
      if (failure !== undefined) throw failure;
      return;
    }
    const digests = await local;
    const good = new Map(batch.files.filter((f) => remote.get(f.remote) === digests.get(f.local)).map((f) => [f.rel, f]));
    const goodRels = [...good.keys()];
    if (failure !== undefined) this.queue.setFiles(job.id, goodRels, 'sent');
    const byRel = (rel: string): FileRow => good.get(rel) as FileRow;
    for (const row of this.queue.setFiles(job.id, goodRels, 'verified', (rel) => ({ sha256: digests.get(byRel(rel).local) ?? null, bytes: byRel(rel).size, reason: null }))) {
      this.publish({ type: 'file', job: job.id, rel: row.rel, state: row.state, attempts: row.attempts });
    }
    const bad = rows.filter((f) => !good.has(f.rel));
    if (failure !== undefined) {
      this.queue.setFiles(job.id, bad.map((f) => f.rel), 'queued', { reason: errorMessage(failure) });
      throw failure;
    }
    for (const f of bad) {
      this.retryOrFail(job, [f], `verify failed: remote sha256 ${remote.get(f.remote) ?? '(missing or unreadable)'} differs from local ${digests.get(f.local) ?? '?'}`);
    }
  }

  /** A file reached through a symlink inside the roots: sent alone, from the path it resolved to. */
  private async sendIndirect(target: SshTarget, file: FileRow, opts: { bandwidthKiBps: number; checksum: boolean; idleTimeoutSeconds: number; signal: AbortSignal; onProgress: (bytes: number) => void }): Promise<BatchStats> {
    try {
      return await rsyncFiles(target, [{ local: file.local, remote: file.remote }], opts);
    } catch (err) {
      throw diskFullOr(err, `${target.host}:${file.remote}`);
    }
  }

  /** After a full disk: every file not verified fails with a reason saying what to do. */
  private parkUnsent(job: Job, cause: RemoteDiskFull): RemoteDiskFull {
    const unsent = this.queue.files(job.id, 'queued');
    const message = `${cause.message}; ${unsent.length} file(s) not sent. Free space on the cluster and resubmit: verified files are not sent again`;
    this.queue.setFiles(job.id, unsent.map((f) => f.rel), 'failed', { reason: cause.message });
    return new RemoteDiskFull(message);
  }

  /** Back to the queue for another round, or failed once out of tries; one log line per run. */
  private retryOrFail(job: Job, files: readonly FileRow[], reason: string): void {
    const out = files.filter((f) => f.attempts >= this.config.retries).map((f) => f.rel);
    const again = files.filter((f) => f.attempts < this.config.retries).map((f) => f.rel);
    this.queue.setFiles(job.id, out, 'failed', { reason });
    this.queue.setFiles(job.id, again, 'queued', { reason });
    this.log.warn({ job: job.id, files: files.length, first: files[0]?.rel, failed: out.length, reason }, 'file transfer try failed');
    for (const rel of [...out, ...again]) this.publish({ type: 'file', job: job.id, rel, state: out.includes(rel) ? 'failed' : 'queued', reason });
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
