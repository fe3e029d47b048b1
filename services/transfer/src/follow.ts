/**
 * Follow mode: while a session is active, every movie the stream service finishes (its `done`
 * event on /api/events) has its products sent to the cluster through the ordinary transfer
 * queue, and a rule may submit a job template each time N more micrographs have arrived there.
 *
 * The stream's events carry no ids to resume from, so each (re)connection first asks
 * /api/movies?state=done and handles anything not yet seen; transfer jobs are keyed by what they
 * send, so catching up twice sends nothing twice and verified files are never sent again. A
 * movie counts as arrived when its transfer job is done (verified), and the count lives in the
 * database, moved in the same transaction that records the remote job it triggers.
 *
 * What the stream sends today for a finished movie is `{type: 'done', movie: {id, path, ...}}`:
 * its output folder is derived the way the stream's runner names it (`<output_dir>/<id, 6
 * digits>_<stem>`), unless the event carries `movie.out`; `movie.metrics.files`, when present,
 * names the products to send instead of the whole folder.
 */
import crypto from 'node:crypto';
import { EventEmitter } from 'node:events';
import path from 'node:path';
import { AppError, errorMessage, type Logger, logError } from '@cloudlet/core';
import type { UserMap } from '@cloudlet/usermap';
import { findCluster } from './account';
import type { TransferConfig } from './config';
import { confineRemote } from './paths';
import type { Queue } from './queue';
import type { RemoteJobs } from './remote-jobs';
import type { Follow, FollowMovie, FollowRule, FollowStore, RemoteJobStore } from './remote-store';
import { type SseEvent, SseClient } from './sse';
import type { Transferer, TransferEvent } from './transfer';

/** The part of the stream's movie summary follow mode reads. */
export interface StreamMovie {
  id: number;
  path: string;
  out?: string;
  metrics?: { files?: Record<string, string> };
}

export interface FollowRequest {
  person: string;
  cluster: string;
  /** Remote folder under which each movie's products land, in a folder named like its output folder. */
  dest: string;
  rule?: { every: number; template: string; values?: Record<string, unknown> | undefined } | undefined;
}

export interface FollowerDeps {
  config: TransferConfig;
  follows: FollowStore;
  remoteStore: RemoteJobStore;
  transferer: Transferer;
  queue: Queue;
  remoteJobs: RemoteJobs;
  usermap: () => UserMap;
  log: Logger;
}

const SAFE_NAME = /[^A-Za-z0-9._-]/g;

export class Follower extends EventEmitter {
  private readonly log: Logger;
  private client: SseClient | undefined;
  private readonly onTransfer = (e: TransferEvent): void => {
    if (e.type === 'job' && e.state === 'done') for (const m of this.deps.follows.byTransferJob(e.job)) this.arrive(m);
  };

  constructor(private readonly deps: FollowerDeps) {
    super();
    this.log = deps.log.child({ component: 'follow' });
  }

  /** A new session, or the same one (person, cluster, dest) again, made active. */
  create(req: FollowRequest): { follow: Follow; created: boolean } {
    const cluster = findCluster(this.deps.config, req.cluster);
    if (!this.deps.usermap().person(req.person)) throw new AppError(`unknown person ${JSON.stringify(req.person)}`, { code: 'unknown_person', status: 400 });
    const dest = confineRemote(cluster.allowed_remote_roots, req.dest);
    let rule: FollowRule | null = null;
    if (req.rule) {
      rule = { every: req.rule.every, template: req.rule.template, values: req.rule.values ?? {} };
      // Refuse a rule that could never be submitted now, not at the Nth micrograph.
      this.deps.remoteJobs.prepare({ person: req.person, cluster: cluster.id, template: rule.template, values: ruleValues(rule, dest) });
    }
    const id = crypto.createHash('sha256').update(JSON.stringify([req.person, cluster.id, dest])).digest('hex').slice(0, 16);
    const result = this.deps.follows.add({ id, person: req.person, cluster: cluster.id, dest, rule });
    if (!result.created && JSON.stringify(result.follow.rule) !== JSON.stringify(rule)) this.deps.follows.setRule(id, rule);
    const follow = result.follow.state === 'active' && result.created ? result.follow : this.deps.follows.setState(id, 'active');
    this.log.info({ follow: id, person: req.person, cluster: cluster.id, every: rule?.every ?? null, created: result.created }, 'follow active');
    this.connect();
    return { follow, created: result.created };
  }

  setState(id: string, state: 'active' | 'stopped'): Follow {
    const follow = this.deps.follows.setState(id, state);
    this.log.info({ follow: id, state }, 'follow state');
    this.connect();
    return follow;
  }

  start(): void {
    this.deps.transferer.on('event', this.onTransfer);
    // Transfers that finished while we were away still count.
    for (const f of this.deps.follows.list()) {
      for (const m of this.deps.follows.movies(f.id, 'sending')) {
        if (m.transferJob && this.deps.queue.job(m.transferJob)?.state === 'done') this.arrive(m);
      }
    }
    this.connect();
  }

  async stop(): Promise<void> {
    this.deps.transferer.off('event', this.onTransfer);
    const client = this.client;
    this.client = undefined;
    await client?.stop();
  }

  /** Connections made to the stream so far. */
  get connections(): number {
    return this.client?.connections ?? 0;
  }

  /** One connection while any session is active, none otherwise. */
  private connect(): void {
    const active = this.deps.follows.list('active').length > 0;
    if (active && !this.client) {
      const base = this.deps.config.follow.stream_url.replace(/\/+$/, '');
      this.client = new SseClient({
        url: `${base}/api/events`,
        reconnectMs: this.deps.config.follow.reconnect_ms,
        log: this.log,
        onOpen: () => this.catchUp(`${base}/api/movies?state=done`),
        onEvent: (e) => this.onEvent(e),
      });
      this.client.start();
    } else if (!active && this.client) {
      const client = this.client;
      this.client = undefined;
      void client.stop();
    }
  }

  private async catchUp(url: string): Promise<void> {
    try {
      const res = await fetch(url, { signal: AbortSignal.timeout(30_000) });
      if (!res.ok) throw new Error(`answered ${res.status}`);
      const movies: unknown = await res.json();
      if (!Array.isArray(movies)) throw new Error('the answer is not a list');
      for (const m of movies) this.movieDone(m);
    } catch (err) {
      // Events still flow; the next reconnection catches up again.
      this.log.warn({ reason: errorMessage(err) }, 'cannot catch up with the stream');
    }
  }

  private onEvent(e: SseEvent): void {
    let event: unknown;
    try {
      event = JSON.parse(e.data);
    } catch {
      this.log.warn({ event: e.event }, 'stream event is not JSON');
      return;
    }
    const { type, movie } = (event ?? {}) as { type?: unknown; movie?: unknown };
    if (type === 'done') this.movieDone(movie);
  }

  private movieDone(raw: unknown): void {
    const movie = raw as Partial<StreamMovie> | null;
    if (!movie || typeof movie.id !== 'number' || !Number.isInteger(movie.id) || typeof movie.path !== 'string') {
      this.log.warn({ movie: (movie as { id?: unknown } | null)?.id }, 'stream movie without id or path; ignored');
      return;
    }
    for (const follow of this.deps.follows.list('active')) {
      try {
        this.send(follow, movie as StreamMovie);
      } catch (err) {
        logError(this.log, err, 'follow failed to handle a movie', { follow: follow.id, movie: movie.id });
      }
    }
  }

  private send(follow: Follow, movie: StreamMovie): void {
    const seen = this.deps.follows.movie(follow.id, movie.id);
    if (seen?.state === 'arrived') return;
    const source = typeof movie.out === 'string' && path.isAbsolute(movie.out) ? movie.out : this.outputDir(movie);
    const names = movie.metrics?.files ? Object.values(movie.metrics.files).filter((f) => typeof f === 'string') : [];
    const record = { followId: follow.id, movieId: movie.id, source };
    try {
      const { job } = this.deps.transferer.submit({
        person: follow.person,
        cluster: follow.cluster,
        source,
        files: names.length > 0 ? [...new Set(names)] : undefined,
        dest: `${follow.dest === '/' ? '' : follow.dest}/${path.basename(source)}`,
      });
      this.deps.follows.setMovie({ ...record, transferJob: job.id, state: 'sending' });
      this.emit('event', { type: 'follow', follow: follow.id, movie: movie.id, state: 'sending', transfer_job: job.id });
      if (job.state === 'done') this.arrive({ ...record, transferJob: job.id, state: 'sending', reason: null });
    } catch (err) {
      // A folder missing or refused: recorded; the next catch-up tries again.
      this.deps.follows.setMovie({ ...record, transferJob: null, state: 'failed', reason: errorMessage(err) });
      this.log.warn({ follow: follow.id, movie: movie.id, reason: errorMessage(err) }, 'follow cannot send a movie');
    }
  }

  /** Where the stream's runner puts a movie's products (services/stream/src/runner.ts outputDir). */
  private outputDir(movie: StreamMovie): string {
    const stem = path.basename(movie.path).replace(/\.[^.]*$/, '').replace(SAFE_NAME, '_');
    return path.join(path.resolve(this.deps.config.follow.output_root), `${String(movie.id).padStart(6, '0')}_${stem}`);
  }

  private arrive(m: FollowMovie): void {
    const batches: string[] = [];
    try {
      this.deps.follows.arrive(m.followId, m.movieId, (follow, batch) => {
        const rule = follow.rule as FollowRule;
        const job = this.deps.remoteJobs.prepare({ person: follow.person, cluster: follow.cluster, template: rule.template, values: ruleValues(rule, follow.dest), key: `${follow.id}:${batch}`, followId: follow.id });
        this.deps.remoteStore.add(job);
        batches.push(job.id);
      });
    } catch (err) {
      // Rolled back: the movie stays `sending` and is counted at the next start.
      this.deps.follows.setState(m.followId, this.deps.follows.get(m.followId)?.state ?? 'active', `the rule cannot submit: ${errorMessage(err)}`);
      logError(this.log, err, 'follow rule failed', { follow: m.followId });
      return;
    }
    this.emit('event', { type: 'follow', follow: m.followId, movie: m.movieId, state: 'arrived' });
    for (const id of batches) {
      this.log.info({ follow: m.followId, job: id }, 'follow rule submits a remote job');
      this.deps.remoteJobs.send(id).catch((err: unknown) => logError(this.log, err, 'follow rule submission failed', { follow: m.followId, job: id }));
    }
  }
}

function ruleValues(rule: FollowRule, dest: string): Record<string, unknown> {
  return { dest, ...rule.values };
}
