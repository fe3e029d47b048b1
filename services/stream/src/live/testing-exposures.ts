/**
 * A session's worth of exposures for the dashboard's tests and screenshots, written through the
 * real Ledger's public API (ingest, transition) so the rows are what the runner would leave.
 * Metrics follow what a 300 kV single-particle session looks like: a defocus cycled over a
 * range per hole, CTF fits mostly 3-5 A with a tail from thick ice, drift that now and then
 * jumps. Thumbnails are small real PNGs: a noisy micrograph with dark particles, and a
 * spectrum | fit image drawn from the CTF model, so the strip looks like the real thing.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { Ledger, Movie } from '../ledger';
import { ctfModel, DEFAULT_OPTICS } from '../preprocess/ctf-model';
import type { MovieMetrics } from '../preprocess/metrics';
import { encodeGreyPng } from '../preprocess/png';

/** mulberry32: small, seeded, good enough for plausible test data. */
export function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function gauss(rand: () => number): number {
  return Math.sqrt(-2 * Math.log(1 - rand())) * Math.cos(2 * Math.PI * rand());
}

const round = (v: number, d: number): number => Number(v.toFixed(d));

export const MOVIE_BYTES = 163_000_000;
export const PIXEL_SIZE_A = 0.83;

/** One exposure's complete metrics, as the built-in stages would report them. */
export function plausibleMetrics(rand: () => number, i: number): MovieMetrics {
  const thickIce = rand() < 0.09;
  const defocusSteps = [0.8, 1.1, 1.4, 1.7, 2.0, 2.3];
  const df = (defocusSteps[i % defocusSteps.length] ?? 1.4) + gauss(rand) * 0.06 + (rand() < 0.01 ? 3 : 0);
  const astig = Math.exp(Math.log(140) + gauss(rand) * 0.6);
  const ctf = thickIce ? 6 + rand() * 6 : 3.1 + Math.exp(gauss(rand) * 0.35) * 0.9;
  const drift = rand() < 0.05 ? 35 + rand() * 40 : 7 + Math.exp(gauss(rand) * 0.4) * 7;
  const ice = thickIce ? 1.3 + rand() * 0.5 : 1 + gauss(rand) * 0.04;
  const particles = Math.max(0, Math.round((thickIce ? 90 : 310) + gauss(rand) * 60));
  const reduced = Math.round(MOVIE_BYTES / (52 + rand() * 6));
  return {
    engines: { motion: 'builtin', sum: 'builtin', ctf: 'builtin', ice: 'builtin', picking: 'builtin', thumbnails: 'builtin' },
    frames: 50,
    width_px: 4096,
    height_px: 4096,
    pixelSize_A: PIXEL_SIZE_A,
    totalMotion_px: round(drift, 2),
    maxFrameMotion_px: round(drift / (8 + rand() * 6), 2),
    movieBytes: MOVIE_BYTES,
    reducedBytes: reduced,
    reductionRatio: round(MOVIE_BYTES / reduced, 1),
    defocusU_A: round(df * 1e4 + astig / 2, 1),
    defocusV_A: round(df * 1e4 - astig / 2, 1),
    astigmatism_A: round(astig, 1),
    astigmatismAngle_deg: round(rand() * 180, 1),
    ctfFitResolution_A: round(ctf, 2),
    ctfCc: round(0.3 + rand() * 0.5, 3),
    iceRatio: round(ice, 3),
    particles,
    files: { motion: 'motion.json', sum: 'sum.mrc', reduced: 'sum_bin4.mrc', ctf: 'ctf.json', ctfPlot: 'ctf.png', spectrumData: 'spectrum.mrc', ice: 'ice.json', picks: 'picks.star', sumThumbnail: 'sum.png', spectrumThumbnail: 'spectrum.png' },
  };
}

/** A micrograph thumbnail: smoothed noise, dark particles, contrast falling with thick ice. */
export function micrographPng(rand: () => number, m: MovieMetrics, side = 128): Buffer {
  const n = side * side;
  let img = new Float32Array(n);
  for (let i = 0; i < n; i++) img[i] = gauss(rand);
  for (let pass = 0; pass < 2; pass++) {
    const out = new Float32Array(n);
    for (let y = 0; y < side; y++) {
      for (let x = 0; x < side; x++) {
        let s = 0;
        for (let d = -1; d <= 1; d++) s += (img[y * side + Math.min(side - 1, Math.max(0, x + d))] ?? 0) + (img[Math.min(side - 1, Math.max(0, y + d)) * side + x] ?? 0);
        out[y * side + x] = s / 6;
      }
    }
    img = out;
  }
  const contrast = 2.2 / Math.max(1, m.iceRatio ?? 1) ** 3;
  const count = Math.round((m.particles ?? 200) / 6);
  for (let p = 0; p < count; p++) {
    const cx = rand() * side;
    const cy = rand() * side;
    const r = 2.5 + rand() * 1.5;
    for (let y = Math.max(0, Math.floor(cy - r - 1)); y < Math.min(side, cy + r + 1); y++) {
      for (let x = Math.max(0, Math.floor(cx - r - 1)); x < Math.min(side, cx + r + 1); x++) {
        const d = Math.hypot(x - cx, y - cy);
        img[y * side + x] = (img[y * side + x] ?? 0) - contrast * Math.max(0, Math.min(1, r - d + 0.5));
      }
    }
  }
  return encodeGreyPng(toBytes(img, 1, 99), side, side);
}

/** The CTF diagnostic layout the ctf stage writes: measured spectrum left, the fit's CTF^2 right. */
export function ctfPng(rand: () => number, m: MovieMetrics, side = 128): Buffer {
  const model = ctfModel({ defocusU_A: m.defocusU_A ?? 15_000, defocusV_A: m.defocusV_A ?? 15_000, astigmatismAngle_deg: m.astigmatismAngle_deg ?? 0, ...DEFAULT_OPTICS });
  const dk = 1 / (side * PIXEL_SIZE_A * 2);
  const fall = 1 / (m.ctfFitResolution_A ?? 5);
  const left = new Float32Array((side * side) / 2);
  const right = new Float32Array((side * side) / 2);
  const half = side / 2;
  for (let y = 0; y < side; y++) {
    for (let x = 0; x < side; x++) {
      const kx = (x - half) * dk;
      const ky = (y - half) * dk;
      const k = Math.hypot(kx, ky);
      const c2 = model.at(kx, ky) ** 2;
      if (x < half) left[y * half + x] = c2 * Math.exp(-((k / fall) ** 2)) + 0.35 * Math.abs(gauss(rand));
      else right[y * half + (x - half)] = c2;
    }
  }
  const l = toBytes(left, 2, 98);
  const r = toBytes(right, 0, 100);
  const px = new Uint8Array(side * side);
  for (let y = 0; y < side; y++) {
    for (let x = 0; x < side; x++) px[y * side + x] = (x < half ? l[y * half + x] : r[y * half + x - half]) ?? 0;
  }
  return encodeGreyPng(px, side, side);
}

function toBytes(v: Float32Array, lowPct: number, highPct: number): Uint8Array {
  const sorted = Float32Array.from(v).sort();
  const lo = sorted[Math.floor((sorted.length - 1) * (lowPct / 100))] ?? 0;
  const hi = sorted[Math.floor((sorted.length - 1) * (highPct / 100))] ?? 1;
  const out = new Uint8Array(v.length);
  for (let i = 0; i < v.length; i++) out[i] = Math.round(255 * Math.min(1, Math.max(0, ((v[i] ?? 0) - lo) / (hi - lo || 1))));
  return out;
}

export interface FillOptions {
  count: number;
  /** Acquisition time of the newest movie; the rest precede it at `intervalMs`. */
  endMs: number;
  intervalMs: number;
  seed?: number;
  /** Thumbnails are written for this many of the newest movies (writing 10,000 is slow and the page shows a dozen). */
  thumbnails?: number;
  /** The newest few are left in the pipeline: one queued, the others part-way. */
  inFlight?: number;
  outputDir: (movie: Movie) => string;
  /** Movie ids before this one are not used (a second fill continues the first). */
  firstIndex?: number;
}

/** The step names of the built-in pipeline, in order (for stamps and progress). */
const STEPS = ['motion', 'sum', 'ctf', 'ice', 'picking', 'thumbnails'];

/** Adds one exposure; `stage` is how far it got: 'queued', a step index part-way, or 'done' / 'failed'. */
export function addExposure(ledger: Ledger, o: { index: number; acquiredMs: number; rand: () => number; stage: 'queued' | number | 'done' | 'failed'; thumbnails: boolean; outputDir: (m: Movie) => string }): Movie {
  const { index: i, acquiredMs: t, rand } = o;
  const square = Math.floor(i / 60);
  const name = `GridSquare_${2_800_000 + square}/Data/FoilHole_${3_100_000 + Math.floor(i / 6)}_Data_${i % 6}_${String(i).padStart(5, '0')}_fractions.tiff`;
  const { movie } = ledger.ingest({ fingerprint: `sha256:test-${i}`, root: '/data/session', path: name, size: MOVIE_BYTES, mtimeMs: t, format: 'tiff', frames: 50, width: 4096, height: 4096, foundAt: t + 800, settledAt: t + 2800 }, t + 2800);
  if (o.stage === 'queued') return movie;
  const metrics = plausibleMetrics(rand, i);
  const lag = 14_000 + Math.exp(gauss(rand) * 0.35) * 9_000;
  const stepsDone = o.stage === 'done' ? STEPS.length : o.stage === 'failed' ? 2 : o.stage;
  const stamps: Record<string, number> = {};
  STEPS.slice(0, stepsDone).forEach((s, k) => {
    stamps[`${s}.start`] = Math.round(t + 3000 + (k * (lag - 3000)) / STEPS.length);
    stamps[`${s}.end`] = Math.round(t + 3000 + ((k + 1) * (lag - 3000)) / STEPS.length);
  });
  const partial: MovieMetrics = o.stage === 'done' ? metrics : { frames: 50, pixelSize_A: PIXEL_SIZE_A, totalMotion_px: metrics.totalMotion_px, maxFrameMotion_px: metrics.maxFrameMotion_px, ...(stepsDone > 2 ? { defocusU_A: metrics.defocusU_A, defocusV_A: metrics.defocusV_A, astigmatism_A: metrics.astigmatism_A, ctfFitResolution_A: metrics.ctfFitResolution_A } : {}) };
  ledger.transition(movie.id, 'running', { step: STEPS[0] ?? null, stepIndex: 0, stamps: { running: t + 3000 } });
  let done: Movie;
  if (o.stage === 'done') done = ledger.transition(movie.id, 'done', { step: null, stepIndex: STEPS.length, stamps: { ...stamps, done: Math.round(t + lag) }, metrics: partial });
  else if (o.stage === 'failed') done = ledger.transition(movie.id, 'failed', { step: STEPS[2] ?? null, stepIndex: 2, reason: 'ctf: no Thon rings found (is the movie empty?)', stamps: { ...stamps, failed: Math.round(t + lag) }, metrics: partial });
  else done = ledger.transition(movie.id, 'running', { step: STEPS[stepsDone] ?? null, stepIndex: stepsDone, stamps, metrics: partial });
  if (o.thumbnails && o.stage === 'done') {
    const dir = o.outputDir(done);
    fs.mkdirSync(dir, { recursive: true });
    fs.writeFileSync(path.join(dir, 'sum.png'), micrographPng(rand, metrics));
    fs.writeFileSync(path.join(dir, 'ctf.png'), ctfPng(rand, metrics));
    fs.writeFileSync(path.join(dir, 'spectrum.png'), ctfPng(rand, metrics));
  }
  return done;
}

/** Fills a ledger with a session, oldest first, in one transaction. */
export function fillLedger(ledger: Ledger, o: FillOptions): Movie[] {
  const rand = random(o.seed ?? 7);
  const first = o.firstIndex ?? 0;
  const inFlight = o.inFlight ?? 0;
  const thumbs = o.thumbnails ?? 24;
  return ledger.db.transaction(() => {
    const out: Movie[] = [];
    for (let k = 0; k < o.count; k++) {
      const fromEnd = o.count - 1 - k;
      const stage = fromEnd < inFlight ? (fromEnd === 0 ? 'queued' : Math.min(5, fromEnd + 1)) : rand() < 0.006 ? 'failed' : 'done';
      out.push(addExposure(ledger, { index: first + k, acquiredMs: o.endMs - fromEnd * o.intervalMs, rand, stage, thumbnails: fromEnd < thumbs, outputDir: o.outputDir }));
    }
    return out;
  })();
}

/** The runner's output folder naming, for tests that have no runner. */
export function outputDirIn(root: string): (m: { id: number; path: string }) => string {
  return (m) => path.join(root, `${String(m.id).padStart(6, '0')}_${path.basename(m.path).replace(/\.[^.]*$/, '').replace(/[^A-Za-z0-9._-]/g, '_')}`);
}
