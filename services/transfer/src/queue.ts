/**
 * The durable job queue: SQLite (WAL), one row per transfer job and one per file, each with an
 * explicit state machine. A job's id is derived from what it asks for, so submitting the same
 * job twice finds the first one, and a restart finds every job and file where it was.
 */
import crypto from 'node:crypto';
import type Database from 'better-sqlite3';
import { AppError, openDatabase } from '@cloudlet/core';
import type { SourceFile } from './paths';
import { REMOTE_SCHEMA } from './remote-store';

export const JOB_STATES = ['queued', 'running', 'done', 'failed', 'blocked'] as const;
export type JobState = (typeof JOB_STATES)[number];
export const FILE_STATES = ['queued', 'sending', 'sent', 'verified', 'failed'] as const;
export type FileState = (typeof FILE_STATES)[number];

const JOB_TRANSITIONS: Record<JobState, readonly JobState[]> = {
  queued: ['running', 'blocked', 'failed'],
  running: ['queued', 'done', 'failed', 'blocked'],
  done: ['queued'],
  failed: ['queued'],
  blocked: ['queued'],
};

/** A verified file goes back to queued only when a re-verify finds the remote copy changed. */
const FILE_TRANSITIONS: Record<FileState, readonly FileState[]> = {
  queued: ['sending', 'failed'],
  sending: ['sent', 'queued', 'failed'],
  sent: ['verified', 'queued', 'failed'],
  verified: ['queued'],
  failed: ['queued'],
};

export interface JobSpec {
  person: string;
  cluster: string;
  /** The resolved local source folder. */
  source: string;
  /** The named files (relative to source), or undefined for the whole folder. */
  files?: readonly string[] | undefined;
  /** The normalized remote destination folder. */
  dest: string;
}

/** Stable across restarts and resubmissions: a hash of what the job asks for, nothing else. */
export function jobId(spec: JobSpec): string {
  const files = spec.files ? [...spec.files].sort() : null;
  const canonical = JSON.stringify([spec.person, spec.cluster, spec.source, spec.dest, files]);
  return crypto.createHash('sha256').update(canonical).digest('hex').slice(0, 24);
}

export interface Job {
  id: string;
  person: string;
  cluster: string;
  source: string;
  files: string[] | null;
  dest: string;
  state: JobState;
  reason: string | null;
  createdAt: number;
  updatedAt: number;
}

export interface FileRow {
  jobId: string;
  rel: string;
  local: string;
  remote: string;
  size: number;
  state: FileState;
  bytes: number;
  sha256: string | null;
  attempts: number;
  reason: string | null;
}

interface JobDbRow {
  id: string;
  person: string;
  cluster: string;
  source: string;
  files: string | null;
  dest: string;
  state: JobState;
  reason: string | null;
  created_at: number;
  updated_at: number;
}

interface FileDbRow {
  job_id: string;
  rel: string;
  local: string;
  remote: string;
  size: number;
  state: FileState;
  bytes: number;
  sha256: string | null;
  attempts: number;
  reason: string | null;
}

function toJob(r: JobDbRow): Job {
  return { id: r.id, person: r.person, cluster: r.cluster, source: r.source, files: r.files === null ? null : (JSON.parse(r.files) as string[]), dest: r.dest, state: r.state, reason: r.reason, createdAt: r.created_at, updatedAt: r.updated_at };
}

function toFile(r: FileDbRow): FileRow {
  return { jobId: r.job_id, rel: r.rel, local: r.local, remote: r.remote, size: r.size, state: r.state, bytes: r.bytes, sha256: r.sha256, attempts: r.attempts, reason: r.reason };
}

export type FileFields = { reason?: string | null; sha256?: string | null; bytes?: number; attempt?: boolean };

export class Queue {
  readonly db: Database.Database;
  // Prepared once (with the move statements below): a job of 20,000 small files moves each file
  // three times or more.
  private readonly selectFile: Database.Statement;

  constructor(file: string) {
    this.db = openDatabase(file);
    this.db.exec(`
      CREATE TABLE IF NOT EXISTS jobs (
        id TEXT PRIMARY KEY,
        person TEXT NOT NULL,
        cluster TEXT NOT NULL,
        source TEXT NOT NULL,
        files TEXT,
        dest TEXT NOT NULL,
        state TEXT NOT NULL,
        reason TEXT,
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL
      );
      CREATE TABLE IF NOT EXISTS files (
        job_id TEXT NOT NULL REFERENCES jobs (id),
        rel TEXT NOT NULL,
        local TEXT NOT NULL,
        remote TEXT NOT NULL,
        size INTEGER NOT NULL,
        state TEXT NOT NULL,
        bytes INTEGER NOT NULL DEFAULT 0,
        sha256 TEXT,
        attempts INTEGER NOT NULL DEFAULT 0,
        reason TEXT,
        PRIMARY KEY (job_id, rel)
      );
    `);
    // Remote jobs and follow sessions share this database (remote-store.ts).
    this.db.exec(REMOTE_SCHEMA);
    this.selectFile = this.db.prepare('SELECT * FROM files WHERE job_id = ? AND rel = ?');
  }

  close(): void {
    this.db.close();
  }

  /** A new job with its files, or the existing job of the same id (untouched). */
  add(spec: JobSpec, files: readonly SourceFile[], now = Date.now()): { job: Job; created: boolean } {
    const id = jobId(spec);
    return this.db.transaction(() => {
      const existing = this.job(id);
      if (existing) return { job: existing, created: false };
      this.db
        .prepare("INSERT INTO jobs (id, person, cluster, source, files, dest, state, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, 'queued', ?, ?)")
        .run(id, spec.person, spec.cluster, spec.source, spec.files ? JSON.stringify([...spec.files].sort()) : null, spec.dest, now, now);
      const insert = this.db.prepare("INSERT INTO files (job_id, rel, local, remote, size, state) VALUES (?, ?, ?, ?, ?, 'queued')");
      for (const f of files) insert.run(id, f.rel, f.local, `${spec.dest === '/' ? '' : spec.dest}/${f.rel}`, f.size);
      return { job: this.job(id) as Job, created: true };
    })();
  }

  job(id: string): Job | undefined {
    const row = this.db.prepare('SELECT * FROM jobs WHERE id = ?').get(id) as JobDbRow | undefined;
    return row ? toJob(row) : undefined;
  }

  jobs(filter: { person?: string | undefined; state?: JobState | undefined } = {}): Job[] {
    const rows = this.db
      .prepare('SELECT * FROM jobs WHERE (@person IS NULL OR person = @person) AND (@state IS NULL OR state = @state) ORDER BY created_at, id')
      .all({ person: filter.person ?? null, state: filter.state ?? null }) as JobDbRow[];
    return rows.map(toJob);
  }

  files(jobId: string, state?: FileState): FileRow[] {
    const rows = this.db
      .prepare('SELECT * FROM files WHERE job_id = ? AND (? IS NULL OR state = ?) ORDER BY rel')
      .all(jobId, state ?? null, state ?? null) as FileDbRow[];
    return rows.map(toFile);
  }

  file(jobId: string, rel: string): FileRow | undefined {
    const row = this.selectFile.get(jobId, rel) as FileDbRow | undefined;
    return row ? toFile(row) : undefined;
  }

  counts(jobId: string): Record<FileState, number> & { bytes: number; totalBytes: number } {
    const out = { ...(Object.fromEntries(FILE_STATES.map((s) => [s, 0])) as Record<FileState, number>), bytes: 0, totalBytes: 0 };
    for (const r of this.db.prepare('SELECT state, COUNT(*) AS n, SUM(size) AS size FROM files WHERE job_id = ? GROUP BY state').all(jobId) as { state: FileState; n: number; size: number }[]) {
      out[r.state] = r.n;
      out.totalBytes += r.size;
      if (r.state === 'verified' || r.state === 'sent') out.bytes += r.size;
    }
    return out;
  }

  setJob(id: string, to: JobState, reason: string | null = null): Job {
    return this.db.transaction(() => {
      const job = this.job(id);
      if (!job) throw new AppError(`no transfer job ${id}`, { code: 'not_found', status: 404 });
      if (job.state !== to && !JOB_TRANSITIONS[job.state].includes(to)) {
        throw new AppError(`job ${id}: ${job.state} -> ${to} is not a transition`, { code: 'bad_transition', status: 409 });
      }
      this.db.prepare('UPDATE jobs SET state = ?, reason = ?, updated_at = ? WHERE id = ?').run(to, reason, Date.now(), id);
      return this.job(id) as Job;
    })();
  }

  setFile(jobId: string, rel: string, to: FileState, fields: FileFields = {}): FileRow {
    return this.db.transaction(() => this.move(jobId, rel, to, fields))();
  }

  /**
   * Moves many files of a job at once, in one transaction: a batch of thousands of small files
   * then costs one commit instead of one per file. All or none move.
   */
  setFiles(jobId: string, rels: readonly string[], to: FileState, fields: FileFields | ((rel: string) => FileFields) = {}): FileRow[] {
    return this.db.transaction(() => rels.map((rel) => this.move(jobId, rel, to, typeof fields === 'function' ? fields(rel) : fields)))();
  }

  /** One UPDATE ... RETURNING per file, guarded by the states `to` may come from. */
  private move(jobId: string, rel: string, to: FileState, fields: FileFields): FileRow {
    const row = this.moveStatement(to).get({
      job: jobId,
      rel,
      set_reason: fields.reason !== undefined ? 1 : 0,
      reason: fields.reason ?? null,
      set_sha256: fields.sha256 !== undefined ? 1 : 0,
      sha256: fields.sha256 ?? null,
      bytes: fields.bytes ?? null,
      attempt: fields.attempt ? 1 : 0,
    }) as FileDbRow | undefined;
    if (row) return toFile(row);
    const file = this.file(jobId, rel);
    if (!file) throw new AppError(`no file ${rel} in job ${jobId}`, { code: 'not_found', status: 404 });
    throw new AppError(`job ${jobId} file ${rel}: ${file.state} -> ${to} is not a transition`, { code: 'bad_transition', status: 409 });
  }

  private readonly moves = new Map<FileState, Database.Statement>();

  private moveStatement(to: FileState): Database.Statement {
    let statement = this.moves.get(to);
    if (!statement) {
      const from = FILE_STATES.filter((s) => s === to || FILE_TRANSITIONS[s].includes(to));
      statement = this.db.prepare(`
        UPDATE files SET
          state = '${to}',
          reason = CASE WHEN @set_reason THEN @reason ELSE reason END,
          sha256 = CASE WHEN @set_sha256 THEN @sha256 ELSE sha256 END,
          bytes = COALESCE(@bytes, bytes),
          attempts = attempts + @attempt
        WHERE job_id = @job AND rel = @rel AND state IN (${from.map((s) => `'${s}'`).join(', ')})
        RETURNING *`);
      this.moves.set(to, statement);
    }
    return statement;
  }

  /** After a crash or a stop: what was in flight goes back to queued (rsync resumes partials). */
  recover(): void {
    this.db.transaction(() => {
      this.db.prepare("UPDATE files SET state = 'queued' WHERE state IN ('sending', 'sent')").run();
      this.db.prepare("UPDATE jobs SET state = 'queued', updated_at = ? WHERE state = 'running'").run(Date.now());
    })();
  }

  /** Failed files get a fresh set of tries (a resubmission after the cause was fixed). */
  requeueFailed(jobId: string): void {
    this.db.prepare("UPDATE files SET state = 'queued', attempts = 0, reason = NULL WHERE job_id = ? AND state = 'failed'").run(jobId);
  }
}
