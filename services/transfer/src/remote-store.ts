/**
 * Remote jobs and follow sessions in the transfer queue's SQLite database (tables created by
 * Queue's schema, `IF NOT EXISTS`, so a database from before these features simply gains them).
 */
import type Database from 'better-sqlite3';
import { AppError } from '@cloudlet/core';
import { REMOTE_TRANSITIONS, type RemoteState } from './slurm-status';

export const REMOTE_SCHEMA = `
  CREATE TABLE IF NOT EXISTS remote_jobs (
    id TEXT PRIMARY KEY,
    person TEXT NOT NULL,
    cluster TEXT NOT NULL,
    template TEXT NOT NULL,
    vals TEXT NOT NULL,
    script TEXT NOT NULL,
    job_dir TEXT NOT NULL,
    slurm_name TEXT NOT NULL,
    slurm_id TEXT,
    state TEXT NOT NULL,
    slurm_state TEXT,
    state_from TEXT,
    exit_code TEXT,
    reason TEXT,
    follow_id TEXT,
    attempted INTEGER NOT NULL DEFAULT 0,
    misses INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
  );
  CREATE TABLE IF NOT EXISTS follows (
    id TEXT PRIMARY KEY,
    person TEXT NOT NULL,
    cluster TEXT NOT NULL,
    dest TEXT NOT NULL,
    rule TEXT,
    state TEXT NOT NULL,
    arrived INTEGER NOT NULL DEFAULT 0,
    batches INTEGER NOT NULL DEFAULT 0,
    reason TEXT,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
  );
  CREATE TABLE IF NOT EXISTS follow_movies (
    follow_id TEXT NOT NULL REFERENCES follows (id),
    movie_id INTEGER NOT NULL,
    source TEXT NOT NULL,
    transfer_job TEXT,
    state TEXT NOT NULL,
    reason TEXT,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (follow_id, movie_id)
  );
`;

export interface RemoteJob {
  id: string;
  person: string;
  cluster: string;
  template: string;
  values: Record<string, unknown>;
  script: string;
  jobDir: string;
  slurmName: string;
  slurmId: string | null;
  state: RemoteState;
  slurmState: string | null;
  stateFrom: string | null;
  exitCode: string | null;
  reason: string | null;
  followId: string | null;
  /** sbatch may have run: a restart looks the job up by name before anything else. */
  attempted: boolean;
  misses: number;
  createdAt: number;
  updatedAt: number;
}

interface RemoteJobRow {
  id: string;
  person: string;
  cluster: string;
  template: string;
  vals: string;
  script: string;
  job_dir: string;
  slurm_name: string;
  slurm_id: string | null;
  state: RemoteState;
  slurm_state: string | null;
  state_from: string | null;
  exit_code: string | null;
  reason: string | null;
  follow_id: string | null;
  attempted: number;
  misses: number;
  created_at: number;
  updated_at: number;
}

function toJob(r: RemoteJobRow): RemoteJob {
  return {
    id: r.id,
    person: r.person,
    cluster: r.cluster,
    template: r.template,
    values: JSON.parse(r.vals) as Record<string, unknown>,
    script: r.script,
    jobDir: r.job_dir,
    slurmName: r.slurm_name,
    slurmId: r.slurm_id,
    state: r.state,
    slurmState: r.slurm_state,
    stateFrom: r.state_from,
    exitCode: r.exit_code,
    reason: r.reason,
    followId: r.follow_id,
    attempted: r.attempted === 1,
    misses: r.misses,
    createdAt: r.created_at,
    updatedAt: r.updated_at,
  };
}

export interface NewRemoteJob {
  id: string;
  person: string;
  cluster: string;
  template: string;
  values: Record<string, unknown>;
  script: string;
  jobDir: string;
  slurmName: string;
  followId?: string | undefined;
}

export interface StateUpdate {
  state: RemoteState;
  slurmId?: string | null;
  slurmState?: string | null;
  stateFrom?: string | null;
  exitCode?: string | null;
  reason?: string | null;
  misses?: number;
}

export class RemoteJobStore {
  constructor(readonly db: Database.Database) {}

  /** A new job in `submitting`, or the existing one of the same id (untouched). */
  add(job: NewRemoteJob, now = Date.now()): { job: RemoteJob; created: boolean } {
    return this.db.transaction(() => {
      const existing = this.get(job.id);
      if (existing) return { job: existing, created: false };
      this.db
        .prepare("INSERT INTO remote_jobs (id, person, cluster, template, vals, script, job_dir, slurm_name, state, follow_id, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'submitting', ?, ?, ?)")
        .run(job.id, job.person, job.cluster, job.template, JSON.stringify(job.values), job.script, job.jobDir, job.slurmName, job.followId ?? null, now, now);
      return { job: this.get(job.id) as RemoteJob, created: true };
    })();
  }

  get(id: string): RemoteJob | undefined {
    const row = this.db.prepare('SELECT * FROM remote_jobs WHERE id = ?').get(id) as RemoteJobRow | undefined;
    return row ? toJob(row) : undefined;
  }

  list(filter: { person?: string | undefined; states?: readonly RemoteState[] | undefined; followId?: string | undefined } = {}): RemoteJob[] {
    const rows = this.db
      .prepare('SELECT * FROM remote_jobs WHERE (@person IS NULL OR person = @person) AND (@follow IS NULL OR follow_id = @follow) ORDER BY created_at, id')
      .all({ person: filter.person ?? null, follow: filter.followId ?? null }) as RemoteJobRow[];
    return rows.map(toJob).filter((j) => !filter.states || filter.states.includes(j.state));
  }

  markAttempted(id: string): void {
    this.db.prepare('UPDATE remote_jobs SET attempted = 1, updated_at = ? WHERE id = ?').run(Date.now(), id);
  }

  /** Moves a job along its whitelist; the same state again only refreshes the fields. */
  update(id: string, u: StateUpdate): RemoteJob {
    return this.db.transaction(() => {
      const job = this.get(id);
      if (!job) throw new AppError(`no remote job ${id}`, { code: 'not_found', status: 404 });
      if (job.state !== u.state && !REMOTE_TRANSITIONS[job.state].includes(u.state)) {
        throw new AppError(`remote job ${id}: ${job.state} -> ${u.state} is not a transition`, { code: 'bad_transition', status: 409 });
      }
      const pick = <K extends keyof StateUpdate>(k: K, current: StateUpdate[K]): StateUpdate[K] => (u[k] !== undefined ? u[k] : current);
      this.db
        .prepare('UPDATE remote_jobs SET state = ?, slurm_id = ?, slurm_state = ?, state_from = ?, exit_code = ?, reason = ?, misses = ?, updated_at = ? WHERE id = ?')
        .run(u.state, pick('slurmId', job.slurmId), pick('slurmState', job.slurmState), pick('stateFrom', job.stateFrom), pick('exitCode', job.exitCode), pick('reason', job.reason), pick('misses', job.misses), Date.now(), id);
      return this.get(id) as RemoteJob;
    })();
  }
}

export interface FollowRule {
  /** Submit the template once this many new micrographs have arrived on the cluster. */
  every: number;
  template: string;
  values: Record<string, unknown>;
}

export type FollowState = 'active' | 'stopped';
export type FollowMovieState = 'sending' | 'arrived' | 'failed';

export interface Follow {
  id: string;
  person: string;
  cluster: string;
  dest: string;
  rule: FollowRule | null;
  state: FollowState;
  /** Micrographs arrived since the last submission. */
  arrived: number;
  batches: number;
  reason: string | null;
  createdAt: number;
  updatedAt: number;
}

interface FollowRow {
  id: string;
  person: string;
  cluster: string;
  dest: string;
  rule: string | null;
  state: FollowState;
  arrived: number;
  batches: number;
  reason: string | null;
  created_at: number;
  updated_at: number;
}

export interface FollowMovie {
  followId: string;
  movieId: number;
  source: string;
  transferJob: string | null;
  state: FollowMovieState;
  reason: string | null;
}

function toFollow(r: FollowRow): Follow {
  return { id: r.id, person: r.person, cluster: r.cluster, dest: r.dest, rule: r.rule === null ? null : (JSON.parse(r.rule) as FollowRule), state: r.state, arrived: r.arrived, batches: r.batches, reason: r.reason, createdAt: r.created_at, updatedAt: r.updated_at };
}

export class FollowStore {
  constructor(readonly db: Database.Database) {}

  add(f: { id: string; person: string; cluster: string; dest: string; rule: FollowRule | null }, now = Date.now()): { follow: Follow; created: boolean } {
    return this.db.transaction(() => {
      const existing = this.get(f.id);
      if (existing) return { follow: existing, created: false };
      this.db
        .prepare("INSERT INTO follows (id, person, cluster, dest, rule, state, created_at, updated_at) VALUES (?, ?, ?, ?, ?, 'active', ?, ?)")
        .run(f.id, f.person, f.cluster, f.dest, f.rule ? JSON.stringify(f.rule) : null, now, now);
      return { follow: this.get(f.id) as Follow, created: true };
    })();
  }

  get(id: string): Follow | undefined {
    const row = this.db.prepare('SELECT * FROM follows WHERE id = ?').get(id) as FollowRow | undefined;
    return row ? toFollow(row) : undefined;
  }

  list(state?: FollowState): Follow[] {
    return (this.db.prepare('SELECT * FROM follows WHERE (? IS NULL OR state = ?) ORDER BY created_at, id').all(state ?? null, state ?? null) as FollowRow[]).map(toFollow);
  }

  setState(id: string, state: FollowState, reason: string | null = null): Follow {
    const done = this.db.prepare('UPDATE follows SET state = ?, reason = ?, updated_at = ? WHERE id = ?').run(state, reason, Date.now(), id);
    if (done.changes === 0) throw new AppError(`no follow ${id}`, { code: 'not_found', status: 404 });
    return this.get(id) as Follow;
  }

  /** A session asked for again with another rule keeps its count and takes the new rule. */
  setRule(id: string, rule: FollowRule | null): Follow {
    this.db.prepare('UPDATE follows SET rule = ?, updated_at = ? WHERE id = ?').run(rule ? JSON.stringify(rule) : null, Date.now(), id);
    return this.get(id) as Follow;
  }

  movie(followId: string, movieId: number): FollowMovie | undefined {
    const r = this.db.prepare('SELECT * FROM follow_movies WHERE follow_id = ? AND movie_id = ?').get(followId, movieId) as
      | { follow_id: string; movie_id: number; source: string; transfer_job: string | null; state: FollowMovieState; reason: string | null }
      | undefined;
    return r && { followId: r.follow_id, movieId: r.movie_id, source: r.source, transferJob: r.transfer_job, state: r.state, reason: r.reason };
  }

  movies(followId: string, state?: FollowMovieState): FollowMovie[] {
    const rows = this.db.prepare('SELECT movie_id FROM follow_movies WHERE follow_id = ? AND (? IS NULL OR state = ?) ORDER BY movie_id').all(followId, state ?? null, state ?? null) as { movie_id: number }[];
    return rows.map((r) => this.movie(followId, r.movie_id) as FollowMovie);
  }

  /** Follow movies whose products travel in this transfer job. */
  byTransferJob(transferJob: string): FollowMovie[] {
    const rows = this.db.prepare('SELECT follow_id, movie_id FROM follow_movies WHERE transfer_job = ?').all(transferJob) as { follow_id: string; movie_id: number }[];
    return rows.map((r) => this.movie(r.follow_id, r.movie_id) as FollowMovie);
  }

  setMovie(m: { followId: string; movieId: number; source: string; transferJob: string | null; state: FollowMovieState; reason?: string | null }): void {
    this.db
      .prepare(
        'INSERT INTO follow_movies (follow_id, movie_id, source, transfer_job, state, reason, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?) ' +
          'ON CONFLICT (follow_id, movie_id) DO UPDATE SET source = excluded.source, transfer_job = excluded.transfer_job, state = excluded.state, reason = excluded.reason, updated_at = excluded.updated_at',
      )
      .run(m.followId, m.movieId, m.source, m.transferJob, m.state, m.reason ?? null, Date.now());
  }

  /**
   * Marks a movie arrived and counts it, in one transaction; when the rule's count is reached the
   * counter goes down by `every` and `onBatch(batch)` runs inside the same transaction (it records
   * the remote job), so a crash can neither lose nor repeat a submission.
   */
  arrive(followId: string, movieId: number, onBatch: (follow: Follow, batch: number) => void): void {
    this.db.transaction(() => {
      const m = this.movie(followId, movieId);
      if (!m || m.state === 'arrived') return;
      this.db.prepare("UPDATE follow_movies SET state = 'arrived', reason = NULL, updated_at = ? WHERE follow_id = ? AND movie_id = ?").run(Date.now(), followId, movieId);
      this.db.prepare('UPDATE follows SET arrived = arrived + 1, updated_at = ? WHERE id = ?').run(Date.now(), followId);
      const follow = this.get(followId) as Follow;
      if (follow.rule && follow.arrived >= follow.rule.every) {
        this.db.prepare('UPDATE follows SET arrived = arrived - ?, batches = batches + 1 WHERE id = ?').run(follow.rule.every, followId);
        onBatch(follow, follow.batches + 1);
      }
    })();
  }
}
