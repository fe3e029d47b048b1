/**
 * Whole-frame motion correction (DESIGN.md section 5): frames are binned, low-pass filtered,
 * and each is cross-correlated against the aligned sum of all the others (never itself, whose
 * noise would correlate with itself at zero shift); the sub-pixel peak (a parabola through
 * the peak and its neighbours, per axis) moves the frame, and the round repeats until no
 * shift changes by more than `tolerance_px`. Shifts are in full-size pixels, relative to the
 * first frame: shifts[i] is how far the specimen has moved in frame i since frame 0 (content
 * at (x, y) in frame 0 is at (x + dx, y + dy) in frame i), so sumAligned moves frame i by
 * -shifts[i].
 *
 * Sides of the binned frames must be valid FFT sizes (see fft.ts); crop or pad first.
 */
import { createFft2d, type Fft2d, fourierShift, type HalfSpectrum, signedIndex } from './fft';
import type { Point } from './synthetic';

// Tests run under jest's vm contexts, where every global lookup (Math, Number) is ~50x slower
// than a local one; the per-pixel loops here use these locals instead.
const { exp, floor, hypot, max, min, pow, sqrt } = Math;

export interface MotionOptions {
  /** Binning factor for the alignment; default 2. */
  bin?: number;
  /** Most rounds of alignment; default 8. */
  iterations?: number;
  /** Stop when no shift changes by more than this (full-size pixels); default 0.02. */
  tolerance_px?: number;
  /** Gaussian low-pass: sigma in cycles per binned pixel; default 0.08. */
  lowPass?: number;
  /** Largest shift between a frame and the sum, full-size pixels; default a quarter of the side. */
  maxShift_px?: number;
}

export interface MotionResult {
  shifts: Point[];
  iterations: number;
}

export interface DoseWeighting {
  /** Electrons per A^2 per frame. */
  dosePerFrame_ePerA2: number;
  pixelSize_A: number;
  /** Dose before the first frame, e/A^2; default 0. */
  preExposure_ePerA2?: number;
}

export function binFrame(frame: Float32Array, width: number, height: number, bin: number): Float32Array {
  const w = floor(width / bin);
  const h = floor(height / bin);
  const out = new Float32Array(w * h);
  addBinned(out, frame, width, 0, 0, w, h, bin);
  return out;
}

/**
 * Adds the `bin` x `bin` sums of the window of `src` (row length `width`) that starts at
 * (x0, y0) and spans w x h bins into `out` (w x h). Plain index arithmetic: this runs over
 * every pixel of every frame.
 */
export function addBinned(out: Float32Array, src: ArrayLike<number>, width: number, x0: number, y0: number, w: number, h: number, bin: number): void {
  for (let by = 0; by < h; by++) {
    const o = by * w;
    for (let k = 0; k < bin; k++) {
      let i = (y0 + by * bin + k) * width + x0;
      for (let bx = 0; bx < w; bx++) {
        let s = 0;
        for (let j = 0; j < bin; j++) s += src[i + j] as number;
        out[o + bx] = (out[o + bx] as number) + s;
        i += bin;
      }
    }
  }
}

export async function estimateMotion(frames: Float32Array[], width: number, height: number, options: MotionOptions = {}): Promise<MotionResult> {
  const bin = options.bin ?? 2;
  const binned = frames.map((f) => binFrame(f, width, height, bin));
  return alignBinned(binned, floor(width / bin), floor(height / bin), { ...options, bin, maxShift_px: options.maxShift_px ?? min(width, height) / 4 });
}

/**
 * The alignment on frames already binned by `options.bin` (w x h, a valid FFT size), for
 * callers that bin while reading; shifts come back in full-size pixels.
 */
export async function alignBinned(binned: Float32Array[], w: number, h: number, options: MotionOptions = {}): Promise<MotionResult> {
  const bin = options.bin ?? 2;
  const maxShift = (options.maxShift_px ?? (min(w, h) * bin) / 4) / bin;
  const tolerance = (options.tolerance_px ?? 0.02) / bin;
  const fft = await createFft2d();
  const spectra = binned.map((f) => lowPass(fft.forward(f, w, h), options.lowPass ?? 0.08));
  let shifts: Point[] = binned.map(() => ({ x: 0, y: 0 }));
  let round = 0;
  while (round < (options.iterations ?? 8)) {
    round++;
    const moved = spectra.map((s, i) => fourierShift(copy(s), -(shifts[i] as Point).x, -(shifts[i] as Point).y));
    const sum = new Float32Array((spectra[0] as HalfSpectrum).data.length);
    for (const m of moved) for (let k = 0; k < sum.length; k++) sum[k] = (sum[k] as number) + (m.data[k] as number);
    const others = new Float32Array(sum.length);
    const next = spectra.map((s, i) => {
      const mine = (moved[i] as HalfSpectrum).data;
      for (let k = 0; k < others.length; k++) others[k] = (sum[k] as number) - (mine[k] as number);
      return peak(crossCorrelation(fft, s, others), w, h, maxShift);
    });
    // Keep the mean at zero so the reference does not wander between rounds.
    const mx = next.reduce((a, p) => a + p.x, 0) / next.length;
    const my = next.reduce((a, p) => a + p.y, 0) / next.length;
    const centred = next.map((p) => ({ x: p.x - mx, y: p.y - my }));
    const change = max(...centred.map((p, i) => hypot(p.x - (shifts[i] as Point).x, p.y - (shifts[i] as Point).y)));
    shifts = centred;
    if (change <= tolerance) break;
  }
  const first = shifts[0] as Point;
  return { shifts: shifts.map((p) => ({ x: (p.x - first.x) * bin, y: (p.y - first.y) * bin })), iterations: round };
}

function copy(s: HalfSpectrum): HalfSpectrum {
  return { ...s, data: s.data.slice() };
}

function lowPass(s: HalfSpectrum, sigma: number): HalfSpectrum {
  const hw = s.width / 2 + 1;
  for (let y = 0; y < s.height; y++) {
    const ky = signedIndex(y, s.height) / s.height;
    for (let x = 0; x < hw; x++) {
      const kx = x / s.width;
      const f = exp(-(kx * kx + ky * ky) / (2 * sigma * sigma));
      const i = (y * hw + x) * 2;
      s.data[i] = (s.data[i] as number) * f;
      s.data[i + 1] = (s.data[i + 1] as number) * f;
    }
  }
  return s;
}

/** Real-space map of a (*) conj(b): its peak is at the shift of a relative to b. */
function crossCorrelation(fft: Fft2d, a: HalfSpectrum, b: Float32Array): { map: Float32Array; width: number; height: number } {
  const out = new Float32Array(b.length);
  for (let k = 0; k < out.length; k += 2) {
    const ar = a.data[k] as number;
    const ai = a.data[k + 1] as number;
    const br = b[k] as number;
    const bi = b[k + 1] as number;
    out[k] = ar * br + ai * bi;
    out[k + 1] = ai * br - ar * bi;
  }
  return { map: fft.inverse({ data: out, width: a.width, height: a.height }), width: a.width, height: a.height };
}

/** Highest point within maxShift of the origin (periodic map), refined by parabolas. */
function peak(cc: { map: Float32Array; width: number; height: number }, w: number, h: number, maxShift: number): Point {
  const at = (x: number, y: number): number => cc.map[((y + h) % h) * w + ((x + w) % w)] as number;
  let best = { x: 0, y: 0, v: -Infinity };
  const r = min(floor(maxShift), w / 2 - 1, h / 2 - 1);
  for (let y = -r; y <= r; y++) {
    for (let x = -r; x <= r; x++) {
      const v = at(x, y);
      if (v > best.v) best = { x, y, v };
    }
  }
  const vertex = (m: number, c: number, p: number): number => {
    const d = m - 2 * c + p;
    return d < 0 ? max(-0.5, min(0.5, (0.5 * (m - p)) / d)) : 0;
  };
  return {
    x: best.x + vertex(at(best.x - 1, best.y), best.v, at(best.x + 1, best.y)),
    y: best.y + vertex(at(best.x, best.y - 1), best.v, at(best.x, best.y + 1)),
  };
}

/** Critical exposure (e/A^2) at spatial frequency k (1/A), Grant & Grigorieff 2015. */
export function criticalExposure(k: number): number {
  return 0.245 * pow(k, -1.665) + 2.81;
}

/**
 * The sum of the frames, each moved by -shifts[i] (Fourier shift, full size). With dose
 * weighting, frame i (whose mid-frame accumulated dose is N) is weighted per frequency by
 * exp(-N / (2 Ne(k))), and the sum is scaled by sqrt(frames / sum of squared weights) so its
 * noise spectrum stays flat and equal to the plain sum's.
 */
export async function sumAligned(frames: Float32Array[], width: number, height: number, shifts: Point[], doseWeighting?: DoseWeighting): Promise<Float32Array> {
  if (shifts.length !== frames.length) throw new RangeError(`${shifts.length} shifts for ${frames.length} frames`);
  const fft = await createFft2d();
  const hw = width / 2 + 1;
  const acc = new Float32Array(height * hw * 2);
  const weights = doseWeighting ? doseWeights(frames.length, width, height, doseWeighting) : undefined;
  frames.forEach((frame, i) => {
    const s = fourierShift(fft.forward(frame, width, height), -(shifts[i] as Point).x, -(shifts[i] as Point).y).data;
    const wi = weights?.perFrame[i];
    for (let k = 0; k < acc.length; k++) acc[k] = (acc[k] as number) + (s[k] as number) * (wi ? (wi[k >> 1] as number) : 1);
  });
  if (weights) for (let k = 0; k < acc.length; k++) acc[k] = (acc[k] as number) * (weights.norm[k >> 1] as number);
  return fft.inverse({ data: acc, width, height });
}

function doseWeights(n: number, width: number, height: number, d: DoseWeighting): { perFrame: Float32Array[]; norm: Float32Array } {
  const hw = width / 2 + 1;
  const ne = new Float32Array(height * hw);
  for (let y = 0; y < height; y++) {
    const ky = signedIndex(y, height) / (height * d.pixelSize_A);
    for (let x = 0; x < hw; x++) ne[y * hw + x] = criticalExposure(hypot(x / (width * d.pixelSize_A), ky));
  }
  const perFrame = Array.from({ length: n }, (_, i) => {
    const dose = (d.preExposure_ePerA2 ?? 0) + (i + 0.5) * d.dosePerFrame_ePerA2;
    return ne.map((v) => exp(-dose / (2 * v)));
  });
  const norm = ne.map((_, k) => sqrt(n / perFrame.reduce((s, w) => s + (w[k] as number) ** 2, 0)));
  return { perFrame, norm };
}
