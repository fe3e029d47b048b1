/**
 * The full-size, dose-weighted, motion-corrected sum of a movie, streamed a frame at a time.
 *
 * Sixteen-megapixel Fourier transforms cost 0.25 s forward and 0.5 s inverse on this machine,
 * so forty per movie (sumAligned in motion.ts, one per frame) cannot keep two movies a core
 * within budget. Frames are therefore summed in dose groups of consecutive frames: within a
 * group each frame moves by a whole number of pixels in real space (exact, no interpolation
 * blur), then the group sum moves by the group's common sub-pixel remainder in Fourier space,
 * weighted by the group's dose filter. The remainder is chosen per group to minimise the
 * frames' rounding errors, and a group ends before any frame would be off by more than 0.5 px
 * (a rounding error of at most half a pixel per axis; the errors average about 0.2 px, which
 * keeps about 95% of the signal at 3 px periods): slow drift (the usual case after the first frames) makes groups of five,
 * fast drift smaller ones. Dose weights per group are the mean of its
 * frames' weights exp(-N / (2 Ne(k))) (DESIGN.md section 5), normalised as in sumAligned so the
 * noise spectrum stays flat.
 *
 * Frames whose sides PFFFT cannot transform (K3's 4092 rows) are padded to the next valid size
 * with the mean and cropped back after the inverse transform.
 */
import { criticalExposure, type DoseWeighting } from './motion';
import { createFft2d, fftHeight, fftWidth, signedIndex } from './fft';
import type { Movie, RawFrame } from './movie';
import type { Point } from './synthetic';

// Tests run under jest's vm contexts, where every global lookup (Math, Number) is ~50x slower
// than a local one; the per-pixel loops here use these locals instead.
const { abs, cos, exp, hypot, max, round, sin, sqrt } = Math;

export interface AlignedSumOptions {
  shifts: Point[];
  dose?: DoseWeighting;
  /** Frames per dose group; default 5. */
  groupFrames?: number;
  /** Largest rounding error a frame may get in its group, full-size pixels; default 0.5. */
  tolerance_px?: number;
  signal?: AbortSignal;
}

interface Group {
  first: number;
  last: number;
  /** Sub-pixel remainder shared by the group's frames, full-size pixels. */
  fraction: Point;
}

/**
 * Consecutive runs of at most `size` frames, each with the remainder that best fits its
 * shifts; a run ends early when its next frame would be rounded by more than `tolerance_px`,
 * so fast early drift gets small groups and the slow rest large ones.
 */
export function doseGroups(shifts: Point[], size: number, tolerance_px = 0.5): Group[] {
  const groups: Group[] = [];
  let first = 0;
  while (first < shifts.length) {
    let last = first;
    let fraction = fit(shifts.slice(first, first + 1));
    while (last + 1 < shifts.length && last + 1 - first < size) {
      const wider = fit(shifts.slice(first, last + 2));
      if (wider.worst > tolerance_px) break;
      fraction = wider;
      last++;
    }
    groups.push({ first, last, fraction: { x: fraction.x, y: fraction.y } });
    first = last + 1;
  }
  return groups;
}

function fit(run: Point[]): { x: number; y: number; worst: number } {
  const x = bestFraction(run.map((p) => p.x));
  const y = bestFraction(run.map((p) => p.y));
  const off = (v: number, phi: number): number => abs(v - phi - round(v - phi));
  const worst = max(...run.map((p) => hypot(off(p.x, x), off(p.y, y))));
  return { x, y, worst };
}

/** The phi in [0, 1) minimising the sum of squared distances of (s - phi) to whole numbers. */
function bestFraction(values: number[]): number {
  let best = { phi: 0, err: Infinity };
  for (let step = 0; step < 50; step++) {
    const phi = step / 50;
    let err = 0;
    for (const v of values) err += (v - phi - round(v - phi)) ** 2;
    if (err < best.err) best = { phi, err };
  }
  return best.phi;
}

export async function alignedSum(movie: Movie, o: AlignedSumOptions): Promise<Float32Array> {
  const { width: w, height: h, frames } = movie;
  if (o.shifts.length !== frames) throw new RangeError(`${o.shifts.length} shifts for ${frames} frames`);
  const fw = fftWidth(w);
  const fh = fftHeight(h);
  const hw = fw / 2 + 1;
  const fft = await createFft2d();
  const groups = doseGroups(o.shifts, o.groupFrames ?? 5, o.tolerance_px);
  const factors = groupFactors(groups, o.dose, movie.pixelSize_A);
  const index = factors ? radialIndex(fw, fh, factors.bins) : undefined;
  const acc = new Float32Array(fh * hw * 2);
  const buf = new Float32Array(fw * fh);
  for (const [g, group] of groups.entries()) {
    buf.fill(0);
    let fill = 0;
    for (let z = group.first; z <= group.last; z++) {
      o.signal?.throwIfAborted();
      const s = o.shifts[z] as Point;
      // The raw 8- or 16-bit frame, not a float32 copy: this loop is bound by memory traffic.
      fill += addShifted(buf, fw, await movie.frame(z), w, h, round(s.x - group.fraction.x), round(s.y - group.fraction.y));
    }
    padWith(buf, fw, fh, w, h, fill);
    const spectrum = fft.forward(buf, fw, fh).data;
    addWeighted(acc, spectrum, fw, fh, group.fraction, factors?.table[g], index);
  }
  const full = fft.inverse({ data: acc, width: fw, height: fh });
  if (fw === w && fh === h) return full;
  const out = new Float32Array(w * h);
  for (let y = 0; y < h; y++) out.set(full.subarray(y * fw, y * fw + w), y * w);
  return out;
}

/**
 * buf(x, y) += f(x + nx, y + ny) over the w x h frame (row length fw in buf); pixels that
 * would come from outside the frame get the frame's mean, estimated from every 7th pixel
 * (it only fills the few uncovered rows and columns, and a running total in the main loop
 * would serialise it on floating-point add latency). Returns that mean.
 */
function addShifted(buf: Float32Array, fw: number, f: RawFrame, w: number, h: number, nx: number, ny: number): number {
  let total = 0;
  let count = 0;
  for (let i = 0; i < f.length; i += 7, count++) total += f[i] as number;
  const mean = total / count;
  const x0 = nx < 0 ? -nx : 0;
  const x1 = nx > 0 ? w - nx : w;
  const y0 = ny < 0 ? -ny : 0;
  const y1 = ny > 0 ? h - ny : h;
  for (let y = 0; y < h; y++) {
    const o = y * fw;
    if (y < y0 || y >= y1 || x1 <= x0) {
      for (let x = 0; x < w; x++) buf[o + x] = (buf[o + x] as number) + mean;
      continue;
    }
    const src = (y + ny) * w + nx;
    for (let x = 0; x < x0; x++) buf[o + x] = (buf[o + x] as number) + mean;
    for (let x = x0; x < x1; x++) buf[o + x] = (buf[o + x] as number) + (f[src + x] as number);
    for (let x = x1; x < w; x++) buf[o + x] = (buf[o + x] as number) + mean;
  }
  return mean;
}

function padWith(buf: Float32Array, fw: number, fh: number, w: number, h: number, value: number): void {
  if (fw > w) for (let y = 0; y < h; y++) buf.fill(value, y * fw + w, (y + 1) * fw);
  if (fh > h) buf.fill(value, h * fw, fh * fw);
}

/** Per group, the dose filter times the normalisation, tabulated against |k| (1/A). */
function groupFactors(groups: Group[], dose: DoseWeighting | undefined, pixel: number): { table: Float32Array[]; kMax: number; bins: number } | undefined {
  if (!dose || !(dose.dosePerFrame_ePerA2 > 0)) return undefined;
  const bins = 4096;
  const kMax = Math.SQRT1_2 / pixel;
  const n = groups.reduce((s, g) => s + g.last - g.first + 1, 0);
  const table = groups.map(() => new Float32Array(bins));
  for (let b = 0; b < bins; b++) {
    const ne = criticalExposure((b / (bins - 1)) * kMax);
    let sq = 0;
    const means = groups.map((g) => {
      let m = 0;
      for (let z = g.first; z <= g.last; z++) m += exp(-((dose.preExposure_ePerA2 ?? 0) + (z + 0.5) * dose.dosePerFrame_ePerA2) / (2 * ne));
      const count = g.last - g.first + 1;
      sq += count * (m / count) ** 2;
      return m / count;
    });
    const norm = sqrt(n / sq);
    means.forEach((m, g) => ((table[g] as Float32Array)[b] = m * norm));
  }
  return { table, kMax, bins };
}

/** Table bin of every half-plane pixel, computed once per sum: |k| / kMax of the table. */
function radialIndex(fw: number, fh: number, bins: number): Uint16Array {
  const hw = fw / 2 + 1;
  const out = new Uint16Array(fh * hw);
  // In cycles per pixel the corner of the half plane, the table's kMax, is sqrt(0.5).
  const scale = Math.SQRT2 * (bins - 1);
  for (let y = 0; y < fh; y++) {
    const ky = signedIndex(y, fh) / fh;
    for (let x = 0; x < hw; x++) {
      const kx = x / fw;
      out[y * hw + x] = round(sqrt(kx * kx + ky * ky) * scale);
    }
  }
  return out;
}

/** acc += factor(k) * ramp(-fraction) * spectrum; the Nyquist row and column stay zero. */
function addWeighted(acc: Float32Array, s: Float32Array, fw: number, fh: number, fraction: Point, table: Float32Array | undefined, index: Uint16Array | undefined): void {
  const hw = fw / 2 + 1;
  const cx = new Float64Array(hw);
  const sx = new Float64Array(hw);
  for (let x = 0; x < hw; x++) {
    // Moving the content by -fraction multiplies by exp(+2 pi i k . fraction).
    const ph = (2 * Math.PI * x * fraction.x) / fw;
    cx[x] = x === fw / 2 ? 0 : cos(ph);
    sx[x] = x === fw / 2 ? 0 : sin(ph);
  }
  for (let y = 0; y < fh; y++) {
    if (y === fh / 2) continue;
    const py = (2 * Math.PI * signedIndex(y, fh) * fraction.y) / fh;
    const cy = cos(py);
    const sy = sin(py);
    const o = y * hw;
    for (let x = 0; x < hw; x++) {
      const f = table && index ? (table[index[o + x] as number] as number) : 1;
      const c = ((cx[x] as number) * cy - (sx[x] as number) * sy) * f;
      const sn = ((cx[x] as number) * sy + (sx[x] as number) * cy) * f;
      const i = (o + x) * 2;
      const re = s[i] as number;
      const im = s[i + 1] as number;
      acc[i] = (acc[i] as number) + re * c - im * sn;
      acc[i + 1] = (acc[i + 1] as number) + re * sn + im * c;
    }
  }
}
