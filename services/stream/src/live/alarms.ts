/**
 * Alarms: rules a person sets for the session ("CTF fit worse than 5 A for 3 movies in a row",
 * "no new movie for 10 minutes"), checked as each movie finishes and on a clock. An alarm fires
 * once when its condition starts (an episode) and clears once when it ends; nothing repeats
 * while the condition holds. Every firing and clearing goes to an outbox in SQLite and from
 * there to a webhook (Slack-compatible JSON) and by email; a receiver that is down keeps the
 * message in the outbox, retried with backoff, across restarts, until it is delivered.
 */
import type { Database } from 'better-sqlite3';
import { z } from 'zod';
import { errorMessage, type Logger, openDatabase } from '@cloudlet/core';
import type { MovieMetrics } from '../preprocess/metrics';

const positive = z.number().positive();

export const alarmRuleSchema = z.discriminatedUnion('kind', [
  z.strictObject({ kind: z.literal('ctf_worse'), above_A: positive, in_a_row: z.number().int().min(1).default(3) }),
  z.strictObject({ kind: z.literal('defocus_outside'), min_um: z.number().min(0), max_um: positive, in_a_row: z.number().int().min(1).default(1) }).refine((r) => r.min_um < r.max_um, 'min_um must be below max_um'),
  z.strictObject({ kind: z.literal('no_new_movie'), minutes: positive }),
  z.strictObject({ kind: z.literal('lag_above'), seconds: positive }),
  z.strictObject({ kind: z.literal('disk_nearly_full'), free_percent_below: z.number().gt(0).lt(100) }),
]);
export type AlarmRule = z.infer<typeof alarmRuleSchema>;

export const alarmsSection = z
  .strictObject({
    rules: z.array(alarmRuleSchema).default([]),
    /** Slack-compatible incoming webhook (POST {"text": ...}). */
    webhook_url: z.url().optional(),
    email: z
      .strictObject({
        smtp_host: z.string().min(1),
        smtp_port: z.number().int().min(1).max(65535).default(25),
        /** Implicit TLS (port 465); otherwise STARTTLS when the server offers it. */
        secure: z.boolean().default(false),
        from: z.string().min(3),
        to: z.array(z.string().min(3)).min(1),
      })
      .optional(),
    /** First retry after a failed delivery; doubles to at most max_backoff_s. */
    retry_s: z.number().positive().default(5),
    max_backoff_s: z.number().positive().default(600),
  })
  .prefault({});
export type AlarmsConfig = z.infer<typeof alarmsSection>;

export interface AlarmState {
  rule: number;
  name: string;
  active: boolean;
  since: number | null;
  message: string | null;
}

/** What the clock-driven rules look at. */
export interface Vitals {
  now: number;
  /** When the newest movie was found, or null before the first. */
  lastMovieAt: number | null;
  /** How far processing runs behind acquisition now, seconds. */
  lagS: number;
  /** Free space on the output file system, percent. */
  diskFreePercent: number;
}

export function describeRule(rule: AlarmRule): string {
  switch (rule.kind) {
    case 'ctf_worse':
      return `CTF fit worse than ${rule.above_A} A for ${rule.in_a_row} movies in a row`;
    case 'defocus_outside':
      return `defocus outside ${rule.min_um}-${rule.max_um} um${rule.in_a_row > 1 ? ` for ${rule.in_a_row} movies in a row` : ''}`;
    case 'no_new_movie':
      return `no new movie for ${rule.minutes} min`;
    case 'lag_above':
      return `processing more than ${rule.seconds} s behind acquisition`;
    case 'disk_nearly_full':
      return `less than ${rule.free_percent_below}% disk free`;
  }
}

export interface AlarmEvent {
  type: 'fired' | 'cleared';
  rule: string;
  message: string;
  at: number;
}

/** The rules' state machine; pure, so tests drive it with movies and clocks of their own. */
export class AlarmRules {
  private readonly states: AlarmState[];
  private readonly streaks: number[];

  constructor(private readonly rules: readonly AlarmRule[]) {
    this.states = rules.map((r, i) => ({ rule: i, name: describeRule(r), active: false, since: null, message: null }));
    this.streaks = rules.map(() => 0);
  }

  get current(): readonly AlarmState[] {
    return this.states;
  }

  /** A movie's metrics are complete. */
  movie(name: string, m: MovieMetrics, at: number): AlarmEvent[] {
    const events: AlarmEvent[] = [];
    this.rules.forEach((rule, i) => {
      let bad: string | null;
      if (rule.kind === 'ctf_worse') {
        if (m.ctfFitResolution_A === undefined) return;
        bad = m.ctfFitResolution_A > rule.above_A ? `${name}: CTF fit ${m.ctfFitResolution_A.toFixed(1)} A` : null;
      } else if (rule.kind === 'defocus_outside') {
        if (m.defocusU_A === undefined || m.defocusV_A === undefined) return;
        const um = (m.defocusU_A + m.defocusV_A) / 2 / 1e4;
        bad = um < rule.min_um || um > rule.max_um ? `${name}: defocus ${um.toFixed(2)} um` : null;
      } else {
        return;
      }
      this.streaks[i] = bad ? (this.streaks[i] ?? 0) + 1 : 0;
      const threshold = rule.in_a_row;
      const event = this.set(i, (this.streaks[i] ?? 0) >= threshold, bad ?? `${name} is back within bounds`, at);
      if (event) events.push(event);
    });
    return events;
  }

  /** The clock: rules about time, lag and disk. */
  tick(v: Vitals): AlarmEvent[] {
    const events: AlarmEvent[] = [];
    this.rules.forEach((rule, i) => {
      let on: boolean;
      let message: string;
      if (rule.kind === 'no_new_movie') {
        if (v.lastMovieAt === null) return; // before the first movie there is nothing to miss
        const idleMin = (v.now - v.lastMovieAt) / 60_000;
        on = idleMin >= rule.minutes;
        message = on ? `no new movie for ${idleMin.toFixed(0)} min` : 'movies are arriving again';
      } else if (rule.kind === 'lag_above') {
        on = v.lagS > rule.seconds;
        message = on ? `processing is ${v.lagS.toFixed(0)} s behind acquisition` : `processing has caught up (${v.lagS.toFixed(0)} s behind)`;
      } else if (rule.kind === 'disk_nearly_full') {
        on = v.diskFreePercent < rule.free_percent_below;
        message = on ? `${v.diskFreePercent.toFixed(1)}% disk free` : `${v.diskFreePercent.toFixed(1)}% disk free again`;
      } else {
        return;
      }
      const event = this.set(i, on, message, v.now);
      if (event) events.push(event);
    });
    return events;
  }

  private set(i: number, on: boolean, message: string, at: number): AlarmEvent | undefined {
    const s = this.states[i] as AlarmState;
    if (on === s.active) return undefined;
    s.active = on;
    s.since = on ? at : null;
    s.message = on ? message : null;
    return { type: on ? 'fired' : 'cleared', rule: s.name, message, at };
  }
}

export interface Channel {
  name: 'webhook' | 'email';
  send(event: AlarmEvent, session: string): Promise<void>;
}

export function webhookChannel(url: string): Channel {
  return {
    name: 'webhook',
    async send(event, session) {
      const icon = event.type === 'fired' ? ':rotating_light:' : ':white_check_mark:';
      const res = await fetch(url, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ text: `${icon} ${session}: ${event.type === 'fired' ? 'ALARM' : 'cleared'}: ${event.rule}. ${event.message}` }),
        signal: AbortSignal.timeout(10_000),
      });
      if (!res.ok) throw new Error(`the webhook answered HTTP ${res.status}`);
    },
  };
}

export async function emailChannel(o: NonNullable<AlarmsConfig['email']>): Promise<Channel> {
  const nodemailer = await import('nodemailer');
  const transport = nodemailer.createTransport({ host: o.smtp_host, port: o.smtp_port, secure: o.secure, connectionTimeout: 10_000, greetingTimeout: 10_000, socketTimeout: 20_000 });
  return {
    name: 'email',
    async send(event, session) {
      await transport.sendMail({
        from: o.from,
        to: o.to,
        subject: `[cloudlet] ${session}: ${event.type === 'fired' ? 'ALARM' : 'cleared'}: ${event.rule}`,
        text: `${event.message}\n\nRule: ${event.rule}\nAt: ${new Date(event.at).toISOString()}\nSession: ${session}\n`,
      });
    },
  };
}

interface OutboxRow {
  id: number;
  channel: string;
  event: string;
  attempts: number;
  next_at: number;
  last_error: string | null;
}

/**
 * Deliveries that must not be lost: one row per (event, channel), deleted only once the
 * channel took it. A failed send is retried with exponential backoff; rows survive restarts.
 */
export class AlarmOutbox {
  private readonly db: Database;
  private timer: NodeJS.Timeout | undefined;
  private flushing: Promise<void> | undefined;

  constructor(
    file: string,
    private readonly channels: readonly Channel[],
    private readonly o: { session: string; retryMs: number; maxBackoffMs: number; log: Logger },
  ) {
    this.db = openDatabase(file);
    this.db.exec(`CREATE TABLE IF NOT EXISTS alarm_outbox (
      id INTEGER PRIMARY KEY AUTOINCREMENT,
      channel TEXT NOT NULL,
      event TEXT NOT NULL,
      attempts INTEGER NOT NULL DEFAULT 0,
      next_at INTEGER NOT NULL,
      last_error TEXT
    )`);
  }

  post(event: AlarmEvent): void {
    const insert = this.db.prepare('INSERT INTO alarm_outbox (channel, event, next_at) VALUES (?, ?, ?)');
    for (const c of this.channels) insert.run(c.name, JSON.stringify(event), Date.now());
    void this.flush();
  }

  pending(): { channel: string; event: AlarmEvent; attempts: number; lastError: string | null }[] {
    return (this.db.prepare('SELECT * FROM alarm_outbox ORDER BY id').all() as OutboxRow[]).map((r) => ({ channel: r.channel, event: JSON.parse(r.event) as AlarmEvent, attempts: r.attempts, lastError: r.last_error }));
  }

  start(intervalMs = 1000): void {
    this.timer = setInterval(() => void this.flush(), intervalMs);
    this.timer.unref();
    void this.flush();
  }

  /** Sends what is due; one flush at a time. */
  flush(): Promise<void> {
    this.flushing ??= this.deliverDue().finally(() => {
      this.flushing = undefined;
    });
    return this.flushing;
  }

  private async deliverDue(): Promise<void> {
    const due = this.db.prepare('SELECT * FROM alarm_outbox WHERE next_at <= ? ORDER BY id').all(Date.now()) as OutboxRow[];
    for (const row of due) {
      const channel = this.channels.find((c) => c.name === row.channel);
      if (!channel) {
        // The site removed this channel from the config since: nothing can deliver it.
        this.db.prepare('DELETE FROM alarm_outbox WHERE id = ?').run(row.id);
        continue;
      }
      try {
        await channel.send(JSON.parse(row.event) as AlarmEvent, this.o.session);
        this.db.prepare('DELETE FROM alarm_outbox WHERE id = ?').run(row.id);
      } catch (err) {
        const attempts = row.attempts + 1;
        const backoff = Math.min(this.o.retryMs * 2 ** (attempts - 1), this.o.maxBackoffMs);
        this.db.prepare('UPDATE alarm_outbox SET attempts = ?, next_at = ?, last_error = ? WHERE id = ?').run(attempts, Date.now() + backoff, errorMessage(err), row.id);
        this.o.log.warn({ channel: row.channel, attempts, retryInMs: backoff, error: errorMessage(err) }, 'alarm not delivered; kept for retry');
      }
    }
  }

  async close(): Promise<void> {
    clearInterval(this.timer);
    await this.flushing;
    this.db.close();
  }
}
