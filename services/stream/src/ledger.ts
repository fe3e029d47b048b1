/**
 * The durable ledger: one row per movie in SQLite (WAL), keyed by a content fingerprint so a
 * rename, a touch or a restart never makes a second row for the same movie; an explicit state
 * machine with a timestamp per stage; and a record of every file that was seen but is not (or
 * not yet) a movie, with the reason.
 */
import type Database from 'better-sqlite3';
import { AppError, openDatabase } from '@cloudlet/core';
import { type MovieMetrics, mergeMetrics } from './preprocess/metrics';

export const STATES = ['queued', 'running', 'done', 'failed', 'rejected'] as const;
export type MovieState = (typeof STATES)[number];

/** Allowed transitions; anything else is a bug, and throws. */
const TRANSITIONS: Record<MovieState, readonly MovieState[]> = {
  queued: ['running', 'rejected'],
  running: ['queued', 'done', 'failed', 'rejected'],
  done: ['queued'],
  failed: ['queued', 'rejected'],
  rejected: ['queued'],
};

export interface Movie {
  id: number;
  fingerprint: string;
  root: string;
  path: string;
  size: number;
  mtimeMs: number;
  format: string;
  frames: number;
  width: number;
  height: number;
  state: MovieState;
  /** Index of the next step to run (steps before it are done). */
  stepIndex: number;
  step: string | null;
  attempts: number;
  reason: string | null;
  /** found, settled, queued, `<step>.start`, `<step>.end`, done, failed...: epoch ms. */
  times: Record<string, number>;
  /** What the steps reported so far, merged step by step (preprocess/metrics.ts). */
  metrics: MovieMetrics;
}

export interface NewMovie {
  fingerprint: string;
  root: string;
  path: string;
  size: number;
  mtimeMs: number;
  format: string;
  frames: number;
  width: number;
  height: number;
  foundAt: number;
  settledAt: number;
}

export type SeenStatus = 'settling' | 'movie' | 'rejected' | 'vanished';

interface MovieRow {
  id: number;
  fingerprint: string;
  root: string;
  path: string;
  size: number;
  mtime_ms: number;
  format: string;
  frames: number;
  width: number;
  height: number;
  state: MovieState;
  step_index: number;
  step: string | null;
  attempts: number;
  reason: string | null;
  times: string;
  metrics: string;
}

function toMovie(row: MovieRow): Movie {
  return {
    id: row.id,
    fingerprint: row.fingerprint,
    root: row.root,
    path: row.path,
    size: row.size,
    mtimeMs: row.mtime_ms,
    format: row.format,
    frames: row.frames,
    width: row.width,
    height: row.height,
    state: row.state,
    stepIndex: row.step_index,
    step: row.step,
    attempts: row.attempts,
    reason: row.reason,
    times: JSON.parse(row.times) as Record<string, number>,
    metrics: JSON.parse(row.metrics) as MovieMetrics,
  };
}

export class Ledger {
  readonly db: Database.Database;

  constructor(file: string) {
    this.db = openDatabase(file);
    this.db.exec(`
      CREATE TABLE IF NOT EXISTS movies (
        id INTEGER PRIMARY KEY,
        fingerprint TEXT NOT NULL UNIQUE,
        root TEXT NOT NULL,
        path TEXT NOT NULL,
        size INTEGER NOT NULL,
        mtime_ms INTEGER NOT NULL,
        format TEXT NOT NULL,
        frames INTEGER NOT NULL,
        width INTEGER NOT NULL,
        height INTEGER NOT NULL,
        state TEXT NOT NULL,
        step_index INTEGER NOT NULL DEFAULT 0,
        step TEXT,
        attempts INTEGER NOT NULL DEFAULT 0,
        reason TEXT,
        times TEXT NOT NULL DEFAULT '{}',
        metrics TEXT NOT NULL DEFAULT '{}'
      );
      CREATE INDEX IF NOT EXISTS movies_state ON movies (state, mtime_ms);
      CREATE TABLE IF NOT EXISTS seen (
        root TEXT NOT NULL,
        path TEXT NOT NULL,
        status TEXT NOT NULL,
        reason TEXT,
        size INTEGER,
        mtime_ms INTEGER,
        first_seen INTEGER NOT NULL,
        updated INTEGER NOT NULL,
        movie_id INTEGER,
        PRIMARY KEY (root, path)
      );
    `);
    this.migrate();
  }

  /** Ledgers written before a column existed get it, with its default, in place. */
  private migrate(): void {
    const columns = new Set((this.db.prepare('PRAGMA table_info(movies)').all() as { name: string }[]).map((c) => c.name));
    if (columns.has('metrics')) return;
    try {
      this.db.exec("ALTER TABLE movies ADD COLUMN metrics TEXT NOT NULL DEFAULT '{}'");
    } catch (err) {
      // The service and the CLI may open an old ledger at the same moment; one of them adds it.
      if (!/duplicate column name/.test((err as Error).message)) throw err;
    }
  }

  close(): void {
    this.db.close();
  }

  get(id: number): Movie | undefined {
    const row = this.db.prepare('SELECT * FROM movies WHERE id = ?').get(id) as MovieRow | undefined;
    return row ? toMovie(row) : undefined;
  }

  byFingerprint(fingerprint: string): Movie | undefined {
    const row = this.db.prepare('SELECT * FROM movies WHERE fingerprint = ?').get(fingerprint) as MovieRow | undefined;
    return row ? toMovie(row) : undefined;
  }

  /**
   * A settled, complete movie. New: a row in `queued`. Known (renamed, touched, seen again after
   * a restart): the row keeps its state and history, only its current name is updated.
   */
  ingest(movie: NewMovie, now = Date.now()): { movie: Movie; created: boolean } {
    return this.db.transaction(() => {
      const existing = this.byFingerprint(movie.fingerprint);
      if (existing) {
        if (existing.path !== movie.path || existing.root !== movie.root) {
          this.db.prepare('UPDATE movies SET root = ?, path = ? WHERE id = ?').run(movie.root, movie.path, existing.id);
        }
        this.markSeen(movie.root, movie.path, 'movie', null, movie.size, existing.id, now, movie.mtimeMs);
        return { movie: { ...existing, root: movie.root, path: movie.path }, created: false };
      }
      const times = { found: movie.foundAt, settled: movie.settledAt, queued: now };
      const info = this.db
        .prepare(`INSERT INTO movies (fingerprint, root, path, size, mtime_ms, format, frames, width, height, state, times) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'queued', ?)`)
        .run(movie.fingerprint, movie.root, movie.path, movie.size, Math.round(movie.mtimeMs), movie.format, movie.frames, movie.width, movie.height, JSON.stringify(times));
      const id = Number(info.lastInsertRowid);
      this.markSeen(movie.root, movie.path, 'movie', null, movie.size, id, now, movie.mtimeMs);
      return { movie: this.get(id) as Movie, created: true };
    })();
  }

  /** Merges a step's metrics into the movie's record (later values win; engines and files key by key). */
  mergeMetrics(id: number, update: MovieMetrics): Movie {
    return this.db.transaction(() => {
      const movie = this.get(id);
      if (!movie) throw new AppError(`no movie ${id}`, { code: 'not_found', status: 404 });
      this.db.prepare('UPDATE movies SET metrics = ? WHERE id = ?').run(JSON.stringify(mergeMetrics(movie.metrics, update)), id);
      return this.get(id) as Movie;
    })();
  }

  /**
   * Moves a movie to `to`, checking the transition, stamping `stamp` (defaults to the state name).
   * `metrics` are merged in the same transaction, so a step's numbers and its end are recorded together.
   */
  transition(id: number, to: MovieState, fields: { step?: string | null; stepIndex?: number; reason?: string | null; attempts?: number; stamps?: Record<string, number>; metrics?: MovieMetrics } = {}): Movie {
    return this.db.transaction(() => {
      if (fields.metrics) this.mergeMetrics(id, fields.metrics);
      const movie = this.get(id);
      if (!movie) throw new AppError(`no movie ${id}`, { code: 'not_found', status: 404 });
      if (movie.state !== to && !TRANSITIONS[movie.state].includes(to)) {
        throw new AppError(`movie ${id}: ${movie.state} -> ${to} is not a transition`, { code: 'bad_transition', status: 409 });
      }
      const times = { ...movie.times, ...(fields.stamps ?? { [to]: Date.now() }) };
      this.db
        .prepare('UPDATE movies SET state = ?, step = ?, step_index = ?, reason = ?, attempts = ?, times = ? WHERE id = ?')
        .run(to, fields.step !== undefined ? fields.step : movie.step, fields.stepIndex ?? movie.stepIndex, fields.reason !== undefined ? fields.reason : movie.reason, fields.attempts ?? movie.attempts, JSON.stringify(times), id);
      return this.get(id) as Movie;
    })();
  }

  /** Queued movies in run order. */
  nextQueued(limit: number, order: 'oldest' | 'newest', exclude: ReadonlySet<number>): Movie[] {
    const rows = this.db
      .prepare(`SELECT * FROM movies WHERE state = 'queued' ORDER BY mtime_ms ${order === 'newest' ? 'DESC' : 'ASC'}, id ${order === 'newest' ? 'DESC' : 'ASC'} LIMIT ?`)
      .all(limit + exclude.size) as MovieRow[];
    return rows.map(toMovie).filter((m) => !exclude.has(m.id)).slice(0, limit);
  }

  inState(state: MovieState): Movie[] {
    return (this.db.prepare('SELECT * FROM movies WHERE state = ? ORDER BY id').all(state) as MovieRow[]).map(toMovie);
  }

  all(limit = 100_000): Movie[] {
    return (this.db.prepare('SELECT * FROM movies ORDER BY id LIMIT ?').all(limit) as MovieRow[]).map(toMovie);
  }

  counts(): Record<MovieState, number> {
    const out = Object.fromEntries(STATES.map((s) => [s, 0])) as Record<MovieState, number>;
    for (const row of this.db.prepare('SELECT state, COUNT(*) AS n FROM movies GROUP BY state').all() as { state: MovieState; n: number }[]) out[row.state] = row.n;
    return out;
  }

  /** Files seen that are not movies (yet), with why: the admin's view of what was passed over. */
  markSeen(root: string, relPath: string, status: SeenStatus, reason: string | null, size: number | null, movieId: number | null = null, now = Date.now(), mtimeMs: number | null = null): void {
    this.db
      .prepare(`INSERT INTO seen (root, path, status, reason, size, mtime_ms, first_seen, updated, movie_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
                ON CONFLICT(root, path) DO UPDATE SET status = excluded.status, reason = excluded.reason, size = excluded.size, mtime_ms = excluded.mtime_ms, updated = excluded.updated, movie_id = excluded.movie_id`)
      .run(root, relPath, status, reason, size, mtimeMs === null ? null : Math.round(mtimeMs), now, now, movieId);
  }

  /** Whether this exact file version (size, mtime) was already made a movie or passed over. */
  handled(root: string, relPath: string, size: number, mtimeMs: number): boolean {
    const row = this.db.prepare("SELECT 1 FROM seen WHERE root = ? AND path = ? AND status IN ('movie', 'rejected') AND size = ? AND mtime_ms = ?").get(root, relPath, size, Math.round(mtimeMs));
    return row !== undefined;
  }

  seen(root: string, relPath: string): { status: SeenStatus; reason: string | null; size: number | null; movieId: number | null; firstSeen: number } | undefined {
    const row = this.db.prepare('SELECT status, reason, size, movie_id, first_seen FROM seen WHERE root = ? AND path = ?').get(root, relPath) as
      | { status: SeenStatus; reason: string | null; size: number | null; movie_id: number | null; first_seen: number }
      | undefined;
    return row ? { status: row.status, reason: row.reason, size: row.size, movieId: row.movie_id, firstSeen: row.first_seen } : undefined;
  }

  passedOver(): { root: string; path: string; status: SeenStatus; reason: string | null }[] {
    return this.db.prepare("SELECT root, path, status, reason FROM seen WHERE status IN ('rejected', 'vanished') ORDER BY updated").all() as { root: string; path: string; status: SeenStatus; reason: string | null }[];
  }

  /** Files still watched that could not be checked yet, with why (permission denied...). */
  problems(): { root: string; path: string; reason: string | null }[] {
    return this.db.prepare("SELECT root, path, reason FROM seen WHERE status = 'settling' AND reason IS NOT NULL ORDER BY updated").all() as { root: string; path: string; reason: string | null }[];
  }
}
