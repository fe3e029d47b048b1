/**
 * End-to-end accuracy checks of the stages on synthetic movies with known answers, shared by
 * the *.int.test.ts files: the movie is written as an 8-bit MRC, every stage runs through
 * STAGES into a temporary folder, and the results are compared with the truth.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { mergeMetrics, type MovieMetrics } from '../metrics';
import { writeMrc } from '../mrc';
import { STAGES } from '../stages';
import type { StageName, StageOptions } from '../stage-types';
import { type Point, syntheticStream } from '../synthetic';

export interface AccuracyCase {
  size: number;
  frames: number;
  seed: number;
  total: Point;
  defocusU_A: number;
  defocusV_A: number;
  angle_deg: number;
  particles?: { count: number; radius_px: number };
}

export interface AccuracyResult {
  metrics: MovieMetrics;
  driftRms_px: number;
  defocusErr: number;
  angleErr_deg: number;
  recall: number;
  precision: number;
}

export const OPTIONS: StageOptions = {
  optics: { voltage_kV: 300, cs_mm: 2.7, amplitudeContrast: 0.07, dosePerFrame_ePerA2: 1 },
  motion: { bin: 2, iterations: 8, patches: null },
  sum: { reducedBin: 2 },
  ctf: { tile: 512, minRes_A: 30, maxRes_A: 5, minDefocus_A: 2000, maxDefocus_A: 50000, phaseShift: false, ccThreshold: 0.3 },
  picking: { radiusMin_A: 15, radiusMax_A: 25, threshold: 6 },
  thumbnails: { maxSide: 256 },
};

/** Drift that is fast at first and settles, with a wobble (no straight line to assume). */
export function trajectory(frames: number, total: Point): Point[] {
  const tau = frames / 4;
  const end = 1 - Math.exp(-(frames - 1) / tau);
  return Array.from({ length: frames }, (_, i) => {
    const t = (1 - Math.exp(-i / tau)) / end;
    return { x: total.x * t + 0.2 * Math.sin(i * 0.9), y: total.y * t - 0.15 * Math.cos(i * 0.7) + 0.15 };
  });
}

export async function runCase(c: AccuracyCase, stages: StageName[], options: StageOptions = OPTIONS): Promise<AccuracyResult> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'stages-accuracy-'));
  try {
    const drift = trajectory(c.frames, c.total);
    const s = await syntheticStream({
      width: c.size, height: c.size, frames: c.frames, seed: c.seed, pixelSize_A: 1, dosePerFrame: 1, bFactor_A2: 40,
      ctf: { defocusU_A: c.defocusU_A, defocusV_A: c.defocusV_A, astigmatismAngle_deg: c.angle_deg }, drift, particles: c.particles,
    });
    const movie = path.join(dir, 'movie.mrc');
    await writeMrc(movie, { width: c.size, height: c.size, frames: s.frames(), mode: 0, pixelSizeA: 1 });
    const out = path.join(dir, 'out');
    fs.mkdirSync(out);
    let metrics: MovieMetrics = {};
    for (const stage of stages) metrics = mergeMetrics(metrics, await STAGES[stage]({ stage, movie, out, options, previous: metrics }));
    const shifts = metrics.shifts_px ?? [];
    const d0 = drift[0] as Point;
    const se = shifts.reduce((t, p, i) => t + (p.x - ((drift[i] as Point).x - d0.x)) ** 2 + (p.y - ((drift[i] as Point).y - d0.y)) ** 2, 0);
    const angle = Math.abs((metrics.astigmatismAngle_deg ?? NaN) - c.angle_deg) % 180;
    const picks = stages.includes('picking') ? readStar(path.join(out, 'picks.star')) : [];
    const radius = c.particles?.radius_px ?? 1;
    const score = matchPicks(picks, s.truth.particles, radius / 2, c.size, options.picking.radiusMax_A);
    return {
      metrics,
      driftRms_px: Math.sqrt(se / Math.max(1, shifts.length)),
      defocusErr: Math.max(Math.abs((metrics.defocusU_A ?? NaN) - c.defocusU_A) / c.defocusU_A, Math.abs((metrics.defocusV_A ?? NaN) - c.defocusV_A) / c.defocusV_A),
      angleErr_deg: Math.min(angle, 180 - angle),
      ...score,
    };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

function readStar(file: string): Point[] {
  return fs.readFileSync(file, 'utf8').split('\n').filter((l) => /^\s*-?\d/.test(l)).map((l) => {
    const [x, y] = l.trim().split(/\s+/).map(Number);
    return { x: x as number, y: y as number };
  });
}

/**
 * Greedy one-to-one matching within `tolerance`, closest pairs first. Recall counts only the
 * particles at least `edge` from a border, where the picker is allowed to pick.
 */
export function matchPicks(picks: Point[], truth: Point[], tolerance: number, size: number, edge: number): { recall: number; precision: number } {
  const pairs: { d: number; p: number; t: number }[] = [];
  picks.forEach((p, i) => truth.forEach((t, j) => {
    const d = Math.hypot(p.x - t.x, p.y - t.y);
    if (d <= tolerance) pairs.push({ d, p: i, t: j });
  }));
  pairs.sort((a, b) => a.d - b.d);
  const usedP = new Set<number>();
  const usedT = new Set<number>();
  for (const { p, t } of pairs) {
    if (usedP.has(p) || usedT.has(t)) continue;
    usedP.add(p);
    usedT.add(t);
  }
  const inside = truth.map((t, j) => ({ t, j })).filter(({ t }) => t.x >= edge && t.y >= edge && t.x < size - edge && t.y < size - edge);
  return {
    recall: inside.length ? inside.filter(({ j }) => usedT.has(j)).length / inside.length : NaN,
    precision: picks.length ? usedP.size / picks.length : 0,
  };
}
