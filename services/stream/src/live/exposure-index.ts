/**
 * The dashboard's view of the session in memory: one compact row per exposure, judged against
 * the thresholds and marks in force. Built once from the ledger, then kept current movie by
 * movie (onMovie), so a page load, a threshold edit or a summary never re-reads and re-parses
 * ten thousand ledger rows. A threshold edit re-judges from the metrics kept here: it reads no
 * file and writes no movie.
 */
import { judge, JUDGED_METRIC_NAMES, JUDGED_METRICS, type JudgedMetric, type Judgement, type Manual, type Thresholds } from './curation';
import type { MovieMetrics } from '../preprocess/metrics';

/** What the dashboard reads of a ledger movie (the Ledger's Movie has all of it). */
export interface DashboardMovie {
  id: number;
  path: string;
  mtimeMs: number;
  state: string;
  step: string | null;
  stepIndex: number;
  reason: string | null;
  times: Record<string, number>;
  metrics: MovieMetrics;
}

/** Images the page may ask for, by the name the stages write them under. */
export const THUMBNAILS = ['sum.png', 'ctf.png', 'spectrum.png'] as const;
const THUMBNAIL_KEYS: Record<(typeof THUMBNAILS)[number], keyof NonNullable<MovieMetrics['files']>> = { 'sum.png': 'sumThumbnail', 'ctf.png': 'ctfPlot', 'spectrum.png': 'spectrumThumbnail' };

export type Verdict = Judgement['verdict'] | 'failed';

/** One exposure as the page's strip, plots and table use it. Metrics rounded to 4 digits: plenty for the eye, a third of the bytes. */
export type ExposureRow = {
  id: number;
  name: string;
  /** Acquisition time: the movie's last write, epoch ms. */
  acquired: number;
  /** When its metrics were complete, epoch ms. */
  done: number | null;
  state: string;
  step: string | null;
  stepIndex: number;
  verdict: Verdict;
  reasons: string[];
  manual: Manual;
  /** Which of THUMBNAILS the steps wrote. */
  thumbs: string[];
} & Partial<Record<JudgedMetric, number>>;

interface Entry {
  row: ExposureRow;
  /** Only what judging and the summary need: no trajectories, no file lists. */
  metrics: MovieMetrics;
}

const KEPT_METRICS: (keyof MovieMetrics)[] = ['defocusU_A', 'defocusV_A', 'ctfFitResolution_A', 'astigmatism_A', 'totalMotion_px', 'maxFrameMotion_px', 'iceRatio', 'particles', 'movieBytes', 'reducedBytes'];

function round4(v: number): number {
  return Number(v.toPrecision(4));
}

function baseName(p: string): string {
  return p.slice(p.lastIndexOf('/') + 1);
}

export class ExposureIndex {
  private readonly entries = new Map<number, Entry>();
  private thresholds: Thresholds;
  private readonly marks: Map<number, Exclude<Manual, null>>;
  /** Bumped on every change, so callers can cache what they derive (JSON, summaries). */
  version = 0;

  constructor(movies: Iterable<DashboardMovie>, thresholds: Thresholds, marks: Map<number, Exclude<Manual, null>>) {
    this.thresholds = thresholds;
    this.marks = marks;
    for (const m of movies) this.entries.set(m.id, this.entry(m));
  }

  private entry(m: DashboardMovie): Entry {
    const metrics: MovieMetrics = {};
    for (const k of KEPT_METRICS) {
      const v = m.metrics[k];
      if (typeof v === 'number') (metrics as Record<string, number>)[k] = v;
    }
    const files = m.metrics.files ?? {};
    const row: ExposureRow = {
      id: m.id,
      name: baseName(m.path),
      acquired: Math.round(m.mtimeMs),
      done: m.times.done ?? null,
      state: m.state,
      step: m.step,
      stepIndex: m.stepIndex,
      verdict: 'pending',
      reasons: [],
      manual: null,
      thumbs: THUMBNAILS.filter((t) => files[THUMBNAIL_KEYS[t]] !== undefined),
    };
    for (const k of JUDGED_METRIC_NAMES) {
      const v = JUDGED_METRICS[k].of(metrics);
      if (v !== undefined && Number.isFinite(v)) row[k] = round4(v);
    }
    const entry = { row, metrics };
    this.judge(entry);
    return entry;
  }

  /** Judged from the unrounded metrics, so a threshold at the edge gives what the exports say. */
  private judge(e: Entry): void {
    const { row } = e;
    const manual = this.marks.get(row.id) ?? null;
    if ((row.state === 'failed' || row.state === 'rejected') && manual === null) {
      // The pipeline gave up on it (a damaged movie, a step that kept failing): no metrics to judge.
      row.verdict = 'failed';
      row.reasons = [row.state === 'failed' ? 'processing failed' : 'not a usable movie'];
      row.manual = null;
      return;
    }
    const j = judge(e.metrics, this.thresholds, manual, row.state === 'done');
    row.verdict = j.verdict;
    row.reasons = j.reasons;
    row.manual = j.manual;
  }

  /** A movie changed (queued, a step started or ended, done, failed): its row, re-judged. */
  upsert(m: DashboardMovie): ExposureRow {
    const e = this.entry(m);
    this.entries.set(m.id, e);
    this.version++;
    return e.row;
  }

  get(id: number): ExposureRow | undefined {
    return this.entries.get(id)?.row;
  }

  judgement(id: number): Judgement | undefined {
    const e = this.entries.get(id);
    if (!e) return undefined;
    return judge(e.metrics, this.thresholds, this.marks.get(id) ?? null, e.row.state === 'done');
  }

  setThresholds(t: Thresholds): void {
    this.thresholds = t;
    for (const e of this.entries.values()) this.judge(e);
    this.version++;
  }

  currentThresholds(): Thresholds {
    return this.thresholds;
  }

  setMark(id: number, manual: Manual): ExposureRow | undefined {
    if (manual === null) this.marks.delete(id);
    else this.marks.set(id, manual);
    const e = this.entries.get(id);
    if (!e) return undefined;
    this.judge(e);
    this.version++;
    return e.row;
  }

  rows(): ExposureRow[] {
    return Array.from(this.entries.values(), (e) => e.row);
  }

  get size(): number {
    return this.entries.size;
  }

  /** Every row's verdict, compactly: what a page needs after a threshold edit. */
  verdicts(): [number, Verdict, string[]][] {
    return Array.from(this.entries.values(), (e) => [e.row.id, e.row.verdict, e.row.reasons]);
  }

  /** The numbers behind the headline: one pass, plus one sort of the lags. */
  stats(now: number): SessionStats {
    let accepted = 0;
    let rejected = 0;
    let pending = 0;
    let failed = 0;
    let movieBytes = 0;
    let reducedBytes = 0;
    let acquiredLastHour = 0;
    let doneLastHour = 0;
    let first = Infinity;
    let newest: { done: number; lag: number } | null = null;
    let lastAcquired = -Infinity;
    const lags: number[] = [];
    for (const { row, metrics } of this.entries.values()) {
      if (row.verdict === 'accepted') accepted++;
      else if (row.verdict === 'rejected') rejected++;
      else if (row.verdict === 'failed') failed++;
      else pending++;
      if (metrics.movieBytes !== undefined && metrics.reducedBytes !== undefined && metrics.reducedBytes > 0) {
        movieBytes += metrics.movieBytes;
        reducedBytes += metrics.reducedBytes;
      }
      first = Math.min(first, row.acquired);
      lastAcquired = Math.max(lastAcquired, row.acquired);
      if (row.acquired >= now - 3_600_000) acquiredLastHour++;
      if (row.done !== null) {
        const lag = Math.max(0, row.done - row.acquired) / 1000;
        lags.push(lag);
        if (row.done >= now - 3_600_000) doneLastHour++;
        if (!newest || row.done > newest.done) newest = { done: row.done, lag };
      }
    }
    lags.sort((a, b) => a - b);
    // A session younger than an hour is rated over its own span (at least a minute, so the first movies do not read as thousands per hour).
    const span = Math.max(60_000, Math.min(3_600_000, now - first));
    const perHour = (n: number): number => (Number.isFinite(first) ? Math.round((n * 3_600_000) / span) : 0);
    return {
      exposures: this.entries.size,
      accepted,
      rejected,
      pending,
      failed,
      acquiredPerHour: perHour(acquiredLastHour),
      processedPerHour: perHour(doneLastHour),
      lagNowS: newest ? round4(newest.lag) : null,
      lagP95S: lags.length > 0 ? round4(lags[Math.min(lags.length - 1, Math.ceil(lags.length * 0.95) - 1)] ?? 0) : null,
      reduction: reducedBytes > 0 ? round4(movieBytes / reducedBytes) : null,
      movieBytes,
      reducedBytes,
      lastAcquired: Number.isFinite(lastAcquired) ? lastAcquired : null,
    };
  }
}

export interface SessionStats {
  exposures: number;
  accepted: number;
  rejected: number;
  pending: number;
  failed: number;
  acquiredPerHour: number;
  processedPerHour: number;
  /** Seconds from the newest finished movie's last write to its metrics. */
  lagNowS: number | null;
  lagP95S: number | null;
  /** Movie bytes per reduced byte so far. */
  reduction: number | null;
  movieBytes: number;
  reducedBytes: number;
  lastAcquired: number | null;
}
