/**
 * What a person decided about the session's curation, kept across restarts: the thresholds
 * (one JSON value) and the manual marks (movie id -> accept | reject). It lives in the ledger's
 * SQLite file so a session is one file to keep or move, but on its own connection and in its own
 * tables: the ledger's tables stay the runner's alone, and an edit here never writes a movie
 * row (which is how "re-judged without reprocessing" can be checked from the ledger).
 */
import type { Database } from 'better-sqlite3';
import { AppError, openDatabase } from '@cloudlet/core';
import { DEFAULT_THRESHOLDS, type Manual, type Thresholds, thresholdsSchema } from './curation';

export type Mark = Exclude<Manual, null>;

export class CurationStore {
  private readonly db: Database;

  constructor(file: string) {
    this.db = openDatabase(file);
    this.db.exec(`
      CREATE TABLE IF NOT EXISTS curation_settings (key TEXT PRIMARY KEY, value TEXT NOT NULL, updated INTEGER NOT NULL);
      CREATE TABLE IF NOT EXISTS curation_marks (movie_id INTEGER PRIMARY KEY, mark TEXT NOT NULL CHECK (mark IN ('accept', 'reject')), updated INTEGER NOT NULL);
    `);
  }

  /** The thresholds in force: the last ones saved, or the defaults before any edit. */
  thresholds(): Thresholds {
    const row = this.db.prepare("SELECT value FROM curation_settings WHERE key = 'thresholds'").get() as { value: string } | undefined;
    if (!row) return structuredClone(DEFAULT_THRESHOLDS);
    // Saved values were validated on the way in; a row that no longer parses is damage, not input.
    const parsed = thresholdsSchema.safeParse(JSON.parse(row.value));
    if (!parsed.success) throw new AppError(`stored curation thresholds are not valid: ${row.value}`, { code: 'curation_damaged' });
    return parsed.data;
  }

  /** Saves thresholds already validated by parseThresholds. */
  setThresholds(thresholds: Thresholds, now = Date.now()): void {
    this.db
      .prepare("INSERT INTO curation_settings (key, value, updated) VALUES ('thresholds', ?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value, updated = excluded.updated")
      .run(JSON.stringify(thresholds), now);
  }

  marks(): Map<number, Mark> {
    const rows = this.db.prepare('SELECT movie_id, mark FROM curation_marks').all() as { movie_id: number; mark: Mark }[];
    return new Map(rows.map((r) => [r.movie_id, r.mark]));
  }

  mark(movieId: number): Manual {
    const row = this.db.prepare('SELECT mark FROM curation_marks WHERE movie_id = ?').get(movieId) as { mark: Mark } | undefined;
    return row?.mark ?? null;
  }

  /** A person's mark; null takes it back, so the thresholds judge the exposure again. */
  setMark(movieId: number, mark: Manual, now = Date.now()): void {
    if (mark === null) {
      this.db.prepare('DELETE FROM curation_marks WHERE movie_id = ?').run(movieId);
      return;
    }
    this.db
      .prepare('INSERT INTO curation_marks (movie_id, mark, updated) VALUES (?, ?, ?) ON CONFLICT(movie_id) DO UPDATE SET mark = excluded.mark, updated = excluded.updated')
      .run(movieId, mark, now);
  }

  close(): void {
    this.db.close();
  }
}
