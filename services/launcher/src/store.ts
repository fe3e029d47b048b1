/**
 * The launcher's durable record of sessions, written before the backend is asked anything: a
 * `starting` row is an intent, so a launcher killed mid-start finds it on restart and resolves
 * it instead of leaving a container nobody owns. States move only along the whitelist below.
 */
import { AppError, type Database, openDatabase } from '@cloudlet/core';

export const SESSION_STATES = ['starting', 'running', 'stopping', 'stopped', 'failed'] as const;
export type SessionState = (typeof SESSION_STATES)[number];

const TRANSITIONS: Record<SessionState, readonly SessionState[]> = {
  starting: ['running', 'stopping', 'failed'],
  running: ['stopping', 'stopped'],
  stopping: ['stopped', 'failed'],
  stopped: [],
  failed: [],
};

export const ACTIVE_STATES: readonly SessionState[] = ['starting', 'running', 'stopping'];

export interface Session {
  id: string;
  owner: string;
  username: string;
  uid: number;
  app: string;
  backend: string;
  name: string;
  state: SessionState;
  host: string | undefined;
  port: number | undefined;
  createdAt: number;
  readyAt: number | undefined;
  lastActivity: number;
  endedAt: number | undefined;
  reason: string | undefined;
}

interface Row {
  id: string;
  owner: string;
  username: string;
  uid: number;
  app: string;
  backend: string;
  name: string;
  state: SessionState;
  host: string | null;
  port: number | null;
  created_at: number;
  ready_at: number | null;
  last_activity: number;
  ended_at: number | null;
  reason: string | null;
}

export interface Caps {
  perUser: number;
  total: number;
}

export class SessionStore {
  private readonly db: Database;

  constructor(file: string) {
    this.db = openDatabase(file, { mode: 0o600 });
    this.db.exec(`CREATE TABLE IF NOT EXISTS sessions (
      id TEXT PRIMARY KEY,
      owner TEXT NOT NULL,
      username TEXT NOT NULL,
      uid INTEGER NOT NULL,
      app TEXT NOT NULL,
      backend TEXT NOT NULL,
      name TEXT NOT NULL,
      state TEXT NOT NULL,
      host TEXT,
      port INTEGER,
      created_at INTEGER NOT NULL,
      ready_at INTEGER,
      last_activity INTEGER NOT NULL,
      ended_at INTEGER,
      reason TEXT
    );
    CREATE INDEX IF NOT EXISTS sessions_state ON sessions(state);
    CREATE INDEX IF NOT EXISTS sessions_owner ON sessions(owner, state);`);
  }

  /** Records the intent to start, refusing a duplicate id or a session over either cap, atomically. */
  insertStarting(s: Omit<Session, 'state' | 'readyAt' | 'endedAt' | 'reason'>, caps: Caps): Session {
    const active = ACTIVE_STATES.map((st) => `'${st}'`).join(',');
    const insert = this.db.transaction(() => {
      if (this.get(s.id)) {
        throw new AppError(`session ${s.id} already exists`, { code: 'session_exists', status: 409 });
      }
      const mine = (this.db.prepare(`SELECT count(*) AS n FROM sessions WHERE owner = ? AND state IN (${active})`).get(s.owner) as { n: number }).n;
      if (mine >= caps.perUser) {
        throw new AppError(`${s.owner} already has ${mine} session(s), the most allowed per user`, {
          code: 'user_cap',
          status: 429,
          publicMessage: `You already have ${mine} session(s) running; stop one first`,
        });
      }
      const all = (this.db.prepare(`SELECT count(*) AS n FROM sessions WHERE state IN (${active})`).get() as { n: number }).n;
      if (all >= caps.total) {
        throw new AppError(`${all} sessions are running, the most this server allows`, {
          code: 'global_cap',
          status: 503,
          publicMessage: 'The server is full; try again later',
        });
      }
      this.db
        .prepare(
          `INSERT INTO sessions (id, owner, username, uid, app, backend, name, state, host, port, created_at, last_activity)
           VALUES (?, ?, ?, ?, ?, ?, ?, 'starting', ?, ?, ?, ?)`,
        )
        .run(s.id, s.owner, s.username, s.uid, s.app, s.backend, s.name, s.host ?? null, s.port ?? null, s.createdAt, s.lastActivity);
    });
    insert.immediate();
    return this.get(s.id) as Session;
  }

  get(id: string): Session | undefined {
    const row = this.db.prepare('SELECT * FROM sessions WHERE id = ?').get(id) as Row | undefined;
    return row ? fromRow(row) : undefined;
  }

  list(filter: { owner?: string | undefined; states?: readonly SessionState[] } = {}): Session[] {
    const where: string[] = [];
    const args: (string | number)[] = [];
    if (filter.owner !== undefined) {
      where.push('owner = ?');
      args.push(filter.owner);
    }
    if (filter.states) {
      where.push(`state IN (${filter.states.map(() => '?').join(',')})`);
      args.push(...filter.states);
    }
    const sql = `SELECT * FROM sessions${where.length ? ` WHERE ${where.join(' AND ')}` : ''} ORDER BY created_at, id`;
    return (this.db.prepare(sql).all(...args) as Row[]).map(fromRow);
  }

  /** Moves a session along the whitelist; returns false (and changes nothing) for any other move. */
  transition(id: string, to: SessionState, fields: { reason?: string; readyAt?: number; endedAt?: number } = {}): boolean {
    const current = this.get(id);
    if (!current || !TRANSITIONS[current.state].includes(to)) return false;
    const result = this.db
      .prepare(
        `UPDATE sessions SET state = ?, reason = coalesce(?, reason), ready_at = coalesce(?, ready_at), ended_at = coalesce(?, ended_at)
         WHERE id = ? AND state = ?`,
      )
      .run(to, fields.reason ?? null, fields.readyAt ?? null, fields.endedAt ?? null, id, current.state);
    return result.changes === 1;
  }

  touch(id: string, at: number): boolean {
    return this.db.prepare("UPDATE sessions SET last_activity = max(last_activity, ?) WHERE id = ? AND state = 'running'").run(at, id).changes === 1;
  }

  close(): void {
    this.db.close();
  }
}

function fromRow(r: Row): Session {
  return {
    id: r.id,
    owner: r.owner,
    username: r.username,
    uid: r.uid,
    app: r.app,
    backend: r.backend,
    name: r.name,
    state: r.state,
    host: r.host ?? undefined,
    port: r.port ?? undefined,
    createdAt: r.created_at,
    readyAt: r.ready_at ?? undefined,
    lastActivity: r.last_activity,
    endedAt: r.ended_at ?? undefined,
    reason: r.reason ?? undefined,
  };
}
