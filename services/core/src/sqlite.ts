/**
 * SQLite as every service here uses it for durable state: the folder made, WAL (readers never
 * block the writer; a CLI may read while the service writes), synchronous=NORMAL (durable at
 * every checkpoint, safe against a process crash), and a busy timeout for the second process.
 */
import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';

export type { Database } from 'better-sqlite3';

export function openDatabase(file: string, options: { mode?: number } = {}): Database.Database {
  fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
  const db = new Database(file);
  if (options.mode !== undefined) fs.chmodSync(file, options.mode);
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = NORMAL');
  db.pragma('busy_timeout = 5000');
  return db;
}
