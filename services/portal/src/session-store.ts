/**
 * express-session store on SQLite: sessions survive a portal restart, expire on the server
 * (not only in the cookie), and sign-out really ends them. One small table, WAL mode.
 */
import type Database from 'better-sqlite3';
import session from 'express-session';
import { openDatabase } from '@cloudlet/core';

type Callback<T = void> = (err?: unknown, value?: T) => void;

export class SqliteSessionStore extends session.Store {
  private readonly db: Database.Database;
  private readonly sweeper: NodeJS.Timeout;
  private readonly stmts: {
    get: Database.Statement<[string, number], { data: string }>;
    set: Database.Statement<[string, string, number]>;
    destroy: Database.Statement<[string]>;
    touch: Database.Statement<[number, string]>;
    sweep: Database.Statement<[number]>;
  };

  constructor(file: string, private readonly defaultMaxAgeMs: number) {
    super();
    this.db = openDatabase(file, { mode: 0o600 });
    this.db.exec('CREATE TABLE IF NOT EXISTS sessions (sid TEXT PRIMARY KEY, data TEXT NOT NULL, expires INTEGER NOT NULL)');
    this.stmts = {
      get: this.db.prepare('SELECT data FROM sessions WHERE sid = ? AND expires > ?'),
      set: this.db.prepare('INSERT INTO sessions (sid, data, expires) VALUES (?, ?, ?) ON CONFLICT(sid) DO UPDATE SET data = excluded.data, expires = excluded.expires'),
      destroy: this.db.prepare('DELETE FROM sessions WHERE sid = ?'),
      touch: this.db.prepare('UPDATE sessions SET expires = ? WHERE sid = ?'),
      sweep: this.db.prepare('DELETE FROM sessions WHERE expires <= ?'),
    };
    this.sweeper = setInterval(() => this.stmts.sweep.run(Date.now()), 10 * 60_000);
    this.sweeper.unref();
  }

  override get(sid: string, cb: Callback<session.SessionData | null>): void {
    this.run(cb, () => {
      const row = this.stmts.get.get(sid, Date.now());
      return row ? (JSON.parse(row.data) as session.SessionData) : null;
    });
  }

  override set(sid: string, data: session.SessionData, cb?: Callback): void {
    this.run(cb, () => {
      this.stmts.set.run(sid, JSON.stringify(data), this.expiry(data));
    });
  }

  override destroy(sid: string, cb?: Callback): void {
    this.run(cb, () => {
      this.stmts.destroy.run(sid);
    });
  }

  override touch(sid: string, data: session.SessionData, cb?: Callback): void {
    this.run(cb, () => {
      this.stmts.touch.run(this.expiry(data), sid);
    });
  }

  close(): void {
    clearInterval(this.sweeper);
    this.db.close();
  }

  private expiry(data: session.SessionData): number {
    const expires = data.cookie?.expires;
    return expires ? new Date(expires).getTime() : Date.now() + this.defaultMaxAgeMs;
  }

  private run<T>(cb: Callback<T> | undefined, fn: () => T): void {
    let value: T;
    try {
      value = fn();
    } catch (err) {
      cb?.(err);
      return;
    }
    cb?.(undefined, value);
  }
}
