/**
 * The built-in pre-processing stages (stage-types.ts is the contract): each reads the movie
 * and what earlier stages left in the output folder, writes its files there atomically, and
 * returns its metrics. Files per movie:
 *   motion      motion.json (per-frame shifts, full-size pixels)
 *   sum         sum.mrc (float16, full size), sum_bin<N>.mrc (float16, N x N mean: the reduced product)
 *   ctf         ctf.json, ctf.png (spectrum | fitted model), spectrum.mrc (tile-averaged amplitude, shared)
 *   ice         ice.json
 *   picking     picks.star (RELION coordinates in sum.mrc pixels)
 *   thumbnails  sum.png, spectrum.png
 * The movie's own faults throw BadMovieError (code bad_movie); anything else may be retried.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { alignedSum } from './aligned-sum';
import { type CtfEstimate, estimateCtfFromAmplitude } from './ctf';
import type { CtfParams } from './ctf-model';
import { ctfDiagnosticPng } from './ctf-plot';
import { fftHeightBelow, fftWidthBelow, isPowerOfTwo } from './fft';
import { ICE_BAND_A, iceRatio } from './ice';
import type { MovieMetrics } from './metrics';
import { addBinned, alignBinned, binFrame } from './motion';
import { BadMovieError, openMovie } from './movie';
import { phaseFlip } from './phase-flip';
import { pickParticles, writeStar } from './picking';
import { encodeGreyPng, spectrumThumbnail, thumbnail } from './png';
import { readImage, readJson, reducedFile, SUM_FILE, sumAmplitude, writeFileAtomic, writeImage, writeJson } from './stage-files';
import type { StageFn, StageInput, StageName } from './stage-types';
import type { Point } from './synthetic';

const ENGINE = 'builtin';

export interface MotionFile {
  frames: number;
  width_px: number;
  height_px: number;
  pixelSize_A: number;
  bin: number;
  /** The centred window of the binned frames that was aligned (binned pixels). */
  window: { x0: number; y0: number; width: number; height: number };
  iterations: number;
  shifts_px: Point[];
  /** Per-patch motion is not estimated yet: a requested grid is recorded here, not ignored silently. */
  patches: { requested: [number, number]; estimated: false } | null;
}

/** ctf.json: the fit (phase shift only when the configuration asks for a phase-plate fit) and what it assumed. */
export interface CtfFile extends CtfEstimate {
  pixelSize_A: number;
  voltage_kV: number;
  cs_mm: number;
  amplitudeContrast: number;
  tile: number;
}

/**
 * Alignment needs the drift, not the detail: a long side near 512 binned pixels keeps the
 * correlation peak sharp at sub-pixel precision while a 4k or 6k frame costs a fraction of the
 * work (measured by bench/preprocess: bin 8 on Falcon 4 and K3 frames keeps drift error under
 * 0.3 px), and small test frames are left unbinned.
 */
export function autoBin(width: number, height: number): number {
  return Math.max(1, Math.round(Math.max(width, height) / 512));
}

async function motion(input: StageInput, signal?: AbortSignal): Promise<MovieMetrics> {
  const o = input.options;
  const movie = await openMovie(input.movie, o.optics);
  try {
    const bin = o.motion.bin === 'auto' ? autoBin(movie.width, movie.height) : o.motion.bin;
    if (!(Number.isInteger(bin) && bin >= 1)) throw new RangeError(`motion bin must be a whole number >= 1, not ${bin}`);
    if (movie.width / bin < 32 || movie.height / bin < 16) throw new BadMovieError(`${input.movie}: ${movie.width}x${movie.height} frames are too small to align at bin ${bin}`);
    // Align on the largest centred window whose binned size PFFFT can transform: cropping
    // (not padding) keeps a fixed pad edge from pulling every correlation peak to zero shift.
    const w = fftWidthBelow(Math.floor(movie.width / bin));
    const h = fftHeightBelow(Math.floor(movie.height / bin));
    const x0 = Math.floor((movie.width - w * bin) / 2);
    const y0 = Math.floor((movie.height - h * bin) / 2);
    const binned: Float32Array[] = [];
    for (let z = 0; z < movie.frames; z++) {
      signal?.throwIfAborted();
      const b = new Float32Array(w * h);
      addBinned(b, await movie.frame(z), movie.width, x0, y0, w, h, bin);
      binned.push(b);
    }
    signal?.throwIfAborted();
    const r = await alignBinned(binned, w, h, { bin, iterations: o.motion.iterations });
    const shifts = r.shifts.map((p) => ({ x: round(p.x, 3), y: round(p.y, 3) }));
    const steps = shifts.slice(1).map((p, i) => Math.hypot(p.x - (shifts[i] as Point).x, p.y - (shifts[i] as Point).y));
    const file: MotionFile = {
      frames: movie.frames, width_px: movie.width, height_px: movie.height, pixelSize_A: movie.pixelSize_A, bin,
      window: { x0, y0, width: w, height: h }, iterations: r.iterations, shifts_px: shifts,
      patches: o.motion.patches ? { requested: o.motion.patches, estimated: false } : null,
    };
    await writeJson(path.join(input.out, 'motion.json'), file);
    return {
      engines: { motion: ENGINE },
      frames: movie.frames, width_px: movie.width, height_px: movie.height, pixelSize_A: movie.pixelSize_A,
      shifts_px: shifts,
      totalMotion_px: round(steps.reduce((a, b) => a + b, 0), 3),
      maxFrameMotion_px: round(steps.reduce((a, b) => (b > a ? b : a), 0), 3),
      files: { motion: 'motion.json' },
    };
  } finally {
    await movie.close();
  }
}

async function sum(input: StageInput, signal?: AbortSignal): Promise<MovieMetrics> {
  const o = input.options;
  const m = await readJson<MotionFile>(path.join(input.out, 'motion.json'), 'motion');
  const movie = await openMovie(input.movie, o.optics);
  try {
    if (m.shifts_px.length !== movie.frames) throw new Error(`motion.json has ${m.shifts_px.length} shifts but the movie ${movie.frames} frames: run motion again`);
    const dosePerFrame = o.optics.dosePerFrame_ePerA2;
    const image = await alignedSum(movie, {
      shifts: m.shifts_px,
      dose: dosePerFrame > 0 ? { dosePerFrame_ePerA2: dosePerFrame, pixelSize_A: movie.pixelSize_A } : undefined,
      signal,
    });
    const n = o.sum.reducedBin;
    if (!(Number.isInteger(n) && n >= 1)) throw new RangeError(`sum reduced bin must be a whole number >= 1, not ${n}`);
    await writeImage(path.join(input.out, SUM_FILE), { data: image, width: movie.width, height: movie.height, pixelSize_A: movie.pixelSize_A }, 12);
    // The reduced product is the N x N mean (not sum), so it stays in the float16 range of
    // sum.mrc whatever N. Float16 keeps 11 significant bits, plenty for a sum of shot noise, at
    // 2 bytes a pixel: against an 8-bit 40-frame movie that is 20 N^2 times smaller (80x at N = 2).
    const bw = Math.floor(movie.width / n);
    const bh = Math.floor(movie.height / n);
    const binned = n === 1 ? image : binFrame(image, movie.width, movie.height, n);
    if (n > 1) for (let i = 0; i < binned.length; i++) binned[i] = (binned[i] as number) / (n * n);
    const reduced = reducedFile(n);
    const reducedBytes = await writeImage(path.join(input.out, reduced), { data: binned, width: bw, height: bh, pixelSize_A: movie.pixelSize_A * n }, 12);
    return {
      engines: { sum: ENGINE },
      movieBytes: movie.bytes,
      reducedBytes,
      reductionRatio: round(movie.bytes / reducedBytes, 2),
      files: { sum: SUM_FILE, reduced },
    };
  } finally {
    await movie.close();
  }
}

async function ctf(input: StageInput): Promise<MovieMetrics> {
  const o = input.options;
  const tile = o.ctf.tile;
  if (!isPowerOfTwo(tile) || tile < 64) throw new RangeError(`CTF tile must be a power of two >= 64, not ${tile}`);
  const { amp, pixelSize_A } = await sumAmplitude(input.out, tile);
  const { voltage_kV, cs_mm, amplitudeContrast } = o.optics;
  const e = estimateCtfFromAmplitude(amp, tile, {
    pixelSize_A, voltage_kV, cs_mm, amplitudeContrast, tileSize: tile,
    minResolution_A: o.ctf.minRes_A, maxResolution_A: o.ctf.maxRes_A,
    minDefocus_A: o.ctf.minDefocus_A, maxDefocus_A: o.ctf.maxDefocus_A, ccThreshold: o.ctf.ccThreshold, phaseShift: o.ctf.phaseShift,
  });
  const phaseShift_deg = e.phaseShift_deg === undefined ? undefined : round(e.phaseShift_deg, 1);
  const params: CtfParams = { defocusU_A: e.defocusU_A, defocusV_A: e.defocusV_A, astigmatismAngle_deg: e.astigmatismAngle_deg, voltage_kV, cs_mm, amplitudeContrast, phaseShift_deg };
  const file: CtfFile = {
    defocusU_A: round(e.defocusU_A, 1), defocusV_A: round(e.defocusV_A, 1), astigmatismAngle_deg: round(e.astigmatismAngle_deg, 2),
    fitResolution_A: round(e.fitResolution_A, 2), cc: round(e.cc, 4), ...(phaseShift_deg === undefined ? {} : { phaseShift_deg }),
    pixelSize_A, voltage_kV, cs_mm, amplitudeContrast, tile,
  };
  await writeFileAtomic(path.join(input.out, 'ctf.png'), ctfDiagnosticPng(amp, tile, pixelSize_A, params));
  await writeJson(path.join(input.out, 'ctf.json'), file);
  return {
    ...(phaseShift_deg === undefined ? {} : { phaseShift_deg }),
    engines: { ctf: ENGINE },
    defocusU_A: file.defocusU_A,
    defocusV_A: file.defocusV_A,
    astigmatism_A: round(e.defocusU_A - e.defocusV_A, 1),
    astigmatismAngle_deg: file.astigmatismAngle_deg,
    ctfFitResolution_A: file.fitResolution_A,
    ctfCc: file.cc,
    files: { ctf: 'ctf.json', ctfPlot: 'ctf.png', spectrumData: 'spectrum.mrc' },
  };
}

async function ice(input: StageInput): Promise<MovieMetrics> {
  const { amp, pixelSize_A } = await sumAmplitude(input.out, input.options.ctf.tile);
  const ratio = iceRatio(amp, input.options.ctf.tile, pixelSize_A);
  const file = path.join(input.out, 'ice.json');
  if (ratio === undefined) {
    // Not an error: the band is simply not in the data. The file says why iceRatio is absent.
    await writeJson(file, { skipped: `Nyquist ${2 * pixelSize_A} A is coarser than the ice band (${ICE_BAND_A[0]}-${ICE_BAND_A[1]} A)`, pixelSize_A });
    return { engines: { ice: ENGINE }, files: { ice: 'ice.json' } };
  }
  await writeJson(file, { iceRatio: round(ratio, 4), band_A: ICE_BAND_A, pixelSize_A });
  return { engines: { ice: ENGINE }, iceRatio: round(ratio, 4), files: { ice: 'ice.json' } };
}

/** Picking wants the smallest particle radius at about this many pixels: enough to resolve, few enough to blur fast. */
const PICK_RADIUS_PX = 6;

async function picking(input: StageInput): Promise<MovieMetrics> {
  const o = input.options;
  const n = o.sum.reducedBin;
  const reduced = await readImage(path.join(input.out, reducedFile(n)), 'sum');
  const p = o.picking;
  if (!(p.radiusMin_A > 0 && p.radiusMax_A >= p.radiusMin_A)) throw new RangeError(`bad picking radius range ${p.radiusMin_A}-${p.radiusMax_A} A`);
  const extra = Math.max(1, Math.floor(p.radiusMin_A / reduced.pixelSize_A / PICK_RADIUS_PX));
  const w = Math.floor(reduced.width / extra);
  const h = Math.floor(reduced.height / extra);
  const pixel = reduced.pixelSize_A * extra;
  let image = extra > 1 ? binFrame(reduced.data, reduced.width, reduced.height, extra) : reduced.data;
  const ctfFile = path.join(input.out, 'ctf.json');
  const fitted = await fs.readFile(ctfFile, 'utf8').then((t) => JSON.parse(t) as CtfFile, () => undefined);
  if (fitted) image = await phaseFlip(image, w, h, pixel, fitted);
  const picks = pickParticles(image, w, h, { minRadius_px: p.radiusMin_A / pixel, maxRadius_px: p.radiusMax_A / pixel, thresholdK: p.threshold, darkParticles: true });
  // Coordinates in sum.mrc pixels: binned pixel j covers full pixels j*b .. j*b + b - 1.
  const b = n * extra;
  const full = picks.map((q) => ({ x: (q.x + 0.5) * b - 0.5, y: (q.y + 0.5) * b - 0.5, score: q.score }));
  writeStar(path.join(input.out, 'picks.star'), full, SUM_FILE);
  return { engines: { picking: ENGINE }, particles: full.length, files: { picks: 'picks.star' } };
}

async function thumbnails(input: StageInput): Promise<MovieMetrics> {
  const o = input.options;
  const maxSide = o.thumbnails.maxSide;
  // The reduced sum is the cheaper source; the full sum serves when it is not there.
  const reduced = await readImage(path.join(input.out, reducedFile(o.sum.reducedBin)), 'sum').catch(() => readImage(path.join(input.out, SUM_FILE), 'sum'));
  const t = thumbnail(reduced.data, reduced.width, reduced.height, maxSide);
  await writeFileAtomic(path.join(input.out, 'sum.png'), encodeGreyPng(t.pixels, t.width, t.height));
  const tile = o.ctf.tile;
  const { amp } = await sumAmplitude(input.out, tile);
  const power = amp.map((a) => a * a);
  const s = spectrumThumbnail(power, tile, tile, maxSide);
  await writeFileAtomic(path.join(input.out, 'spectrum.png'), encodeGreyPng(s.pixels, s.width, s.height));
  return { engines: { thumbnails: ENGINE }, files: { sumThumbnail: 'sum.png', spectrumThumbnail: 'spectrum.png' } };
}

function round(x: number, digits: number): number {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}

export const STAGES: Record<StageName, StageFn> = { motion, sum, ctf, ice, picking, thumbnails };
