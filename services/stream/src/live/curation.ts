/**
 * Curation: which exposures are good enough to keep. Thresholds are judged against the metrics
 * the steps already recorded, so editing a threshold re-judges every exposure at once without
 * reprocessing anything; a person's manual accept or reject always wins over the thresholds.
 *
 * A threshold on a metric an exposure does not have (yet) does not judge it: a movie whose CTF
 * step has not run is "pending" on CTF, not rejected.
 */
import { z } from 'zod';
import { AppError, formatIssues } from '@cloudlet/core';
import type { MovieMetrics } from '../preprocess/metrics';

/** The metrics curation can judge, with what a person reads next to them. */
export const JUDGED_METRICS = {
  defocus_um: { label: 'Defocus', unit: 'um', of: (m: MovieMetrics) => (m.defocusU_A !== undefined && m.defocusV_A !== undefined ? (m.defocusU_A + m.defocusV_A) / 2 / 1e4 : undefined) },
  ctfFitResolution_A: { label: 'CTF fit resolution', unit: 'A', of: (m: MovieMetrics) => m.ctfFitResolution_A },
  astigmatism_A: { label: 'Astigmatism', unit: 'A', of: (m: MovieMetrics) => m.astigmatism_A },
  totalMotion_px: { label: 'Total motion', unit: 'px', of: (m: MovieMetrics) => m.totalMotion_px },
  maxFrameMotion_px: { label: 'Largest frame-to-frame motion', unit: 'px', of: (m: MovieMetrics) => m.maxFrameMotion_px },
  iceRatio: { label: 'Ice ring power', unit: '', of: (m: MovieMetrics) => m.iceRatio },
  particles: { label: 'Particles', unit: '', of: (m: MovieMetrics) => m.particles },
} as const;

export type JudgedMetric = keyof typeof JUDGED_METRICS;
export const JUDGED_METRIC_NAMES = Object.keys(JUDGED_METRICS) as JudgedMetric[];

const finite = z.number().refine(Number.isFinite, 'a finite number');
const bound = z
  .strictObject({ min: finite.optional(), max: finite.optional() })
  .refine((b) => b.min === undefined || b.max === undefined || b.min <= b.max, 'min must not exceed max');

export const thresholdsSchema = z.strictObject(Object.fromEntries(JUDGED_METRIC_NAMES.map((k) => [k, bound.optional()])) as Record<JudgedMetric, z.ZodOptional<typeof bound>>);
export type Thresholds = Partial<Record<JudgedMetric, { min?: number | undefined; max?: number | undefined }>>;

/** Sensible starting points for a 300 kV single-particle session; the person tunes them live. */
export const DEFAULT_THRESHOLDS: Thresholds = {
  ctfFitResolution_A: { max: 6 },
  defocus_um: { min: 0.3, max: 4 },
  totalMotion_px: { max: 50 },
};

/**
 * Thresholds from a form or JSON body: numbers may arrive as strings ("6.5"), an empty string
 * means "no bound"; anything else that is not a number is refused with the field named.
 */
export function parseThresholds(input: unknown): Thresholds {
  const coerced = coerceNumbers(input);
  const parsed = thresholdsSchema.safeParse(coerced);
  if (!parsed.success) throw new AppError(`invalid thresholds: ${formatIssues(parsed.error).join('; ')}`, { code: 'bad_request', status: 400, publicMessage: `Invalid thresholds: ${formatIssues(parsed.error).join('; ')}` });
  const out: Thresholds = {};
  for (const [k, v] of Object.entries(parsed.data) as [JudgedMetric, { min?: number; max?: number } | undefined][]) {
    if (v && (v.min !== undefined || v.max !== undefined)) out[k] = v;
  }
  return out;
}

function coerceNumbers(input: unknown): unknown {
  if (typeof input !== 'object' || input === null) return input;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(input)) {
    if (typeof v !== 'object' || v === null) {
      out[k] = v;
      continue;
    }
    const b: Record<string, unknown> = {};
    for (const [side, value] of Object.entries(v as Record<string, unknown>)) {
      if (value === '' || value === null) continue;
      b[side] = typeof value === 'string' && /^\s*-?(\d+\.?\d*|\.\d+)(e-?\d+)?\s*$/i.test(value) ? Number(value) : value;
    }
    out[k] = b;
  }
  return out;
}

export type Manual = 'accept' | 'reject' | null;

export interface Judgement {
  verdict: 'accepted' | 'rejected' | 'pending';
  /** Why: the thresholds broken, or the manual mark; empty when accepted on the thresholds. */
  reasons: string[];
  manual: Manual;
}

function fmt(n: number): string {
  return Number.isInteger(n) ? String(n) : n.toPrecision(3);
}

/**
 * Judges one exposure. `complete` says whether every step has run (a movie still in the
 * pipeline is pending unless a threshold already rejects it).
 */
export function judge(metrics: MovieMetrics, thresholds: Thresholds, manual: Manual, complete: boolean): Judgement {
  if (manual === 'accept') return { verdict: 'accepted', reasons: ['accepted by hand'], manual };
  if (manual === 'reject') return { verdict: 'rejected', reasons: ['rejected by hand'], manual };
  const reasons: string[] = [];
  for (const name of JUDGED_METRIC_NAMES) {
    const bound = thresholds[name];
    if (!bound) continue;
    const { label, unit, of } = JUDGED_METRICS[name];
    const value = of(metrics);
    if (value === undefined) continue;
    const u = unit ? ` ${unit}` : '';
    if (bound.min !== undefined && value < bound.min) reasons.push(`${label} ${fmt(value)}${u} < ${fmt(bound.min)}${u}`);
    if (bound.max !== undefined && value > bound.max) reasons.push(`${label} ${fmt(value)}${u} > ${fmt(bound.max)}${u}`);
  }
  if (reasons.length > 0) return { verdict: 'rejected', reasons, manual };
  return { verdict: complete ? 'accepted' : 'pending', reasons, manual };
}
