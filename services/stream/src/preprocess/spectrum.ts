/**
 * Background-subtracted amplitude spectra for CTF fitting. The background is radial: at each
 * radius, the mean of the rotational average over a window one Thon-ring period wide (which
 * averages a ring out exactly), and the result is divided by its local RMS over the same
 * window so that faint high-resolution rings weigh as much as strong low-resolution ones.
 * Half-plane layout as in fft.ts, for a square tile.
 */
import { signedIndex } from './fft';

// Tests run under jest's vm contexts, where every global lookup (Math, Number) is ~50x slower
// than a local one; the per-pixel loops here use these locals instead.
const { floor, hypot, max, min, round, sqrt } = Math;

export interface Spectrum {
  /** Normalised spectrum over the half plane. */
  normalised: Float32Array;
  /** Its rotational average, by integer radius 0..tile/2. */
  radial: Float32Array;
}

function radii(tile: number): Float32Array {
  const hw = tile / 2 + 1;
  const r = new Float32Array(tile * hw);
  for (let y = 0; y < tile; y++) {
    const ky = signedIndex(y, tile);
    for (let x = 0; x < hw; x++) r[y * hw + x] = hypot(x, ky);
  }
  return r;
}

function average(values: Float32Array, r: Float32Array, nBins: number): Float64Array {
  const sum = new Float64Array(nBins);
  const count = new Float64Array(nBins);
  for (let i = 0; i < values.length; i++) {
    const b = round(r[i] as number);
    if (b < nBins) {
      sum[b] = (sum[b] as number) + (values[i] as number);
      count[b] = (count[b] as number) + 1;
    }
  }
  for (let b = 0; b < nBins; b++) sum[b] = (sum[b] as number) / max(1, count[b] as number);
  return sum;
}

/** Mean of `p` over [r - w/2, r + w/2] for every r, w from `period(r)` clamped to [3, n/2]. */
function smooth(p: Float64Array, period: (r: number) => number): Float64Array {
  const n = p.length;
  const prefix = new Float64Array(n + 1);
  for (let i = 0; i < n; i++) prefix[i + 1] = (prefix[i] as number) + (p[i] as number);
  const out = new Float64Array(n);
  for (let r = 0; r < n; r++) {
    const h = round(min(n / 2, max(3, period(r))) / 2);
    const lo = max(0, r - h);
    const hi = min(n - 1, r + h);
    out[r] = ((prefix[hi + 1] as number) - (prefix[lo] as number)) / (hi - lo + 1);
  }
  return out;
}

export function normalisedSpectrum(amplitude: Float32Array, tile: number, period: (r: number) => number): Spectrum {
  const r = radii(tile);
  const nBins = tile / 2 + 1;
  const background = smooth(average(amplitude, r, nBins), period);
  const at = (p: Float64Array, radius: number): number => {
    const i = min(nBins - 2, floor(radius));
    const t = radius - i;
    return (p[i] as number) * (1 - t) + (p[i + 1] as number) * t;
  };
  const residual = new Float32Array(amplitude.length);
  for (let i = 0; i < residual.length; i++) residual[i] = (amplitude[i] as number) - at(background, r[i] as number);
  const sq = new Float32Array(residual.length);
  for (let i = 0; i < sq.length; i++) sq[i] = (residual[i] as number) ** 2;
  const rms = smooth(average(sq, r, nBins), period).map(sqrt);
  for (let i = 0; i < residual.length; i++) residual[i] = (residual[i] as number) / (at(rms, r[i] as number) || 1);
  return { normalised: residual, radial: Float32Array.from(average(residual, r, nBins)) };
}

function pearson(sx: number, sy: number, sxx: number, syy: number, sxy: number, n: number): number {
  const cov = sxy - (sx * sy) / n;
  const vx = sxx - (sx * sx) / n;
  const vy = syy - (sy * sy) / n;
  return vx > 0 && vy > 0 ? cov / sqrt(vx * vy) : 0;
}

/** CC of the rotational average and a model over radii rMin..rMax. */
export function profileCc(radial: Float32Array, rMin: number, rMax: number, model: (r: number) => number): number {
  let sx = 0, sy = 0, sxx = 0, syy = 0, sxy = 0, n = 0;
  for (let r = rMin; r <= rMax && r < radial.length; r++) {
    const x = radial[r] as number;
    const y = model(r);
    sx += x; sy += y; sxx += x * x; syy += y * y; sxy += x * y; n++;
  }
  return pearson(sx, sy, sxx, syy, sxy, n);
}

export interface Band {
  /** CC of the spectrum and model(kx, ky) (1/A) over the band's pixels. */
  cc(model: (kx: number, ky: number) => number): number;
}

/**
 * The pixels with rMin <= radius <= rMax, leaving out the two axes, where tile edges put a
 * bright cross into the spectrum.
 */
export function bandPixels(s: Spectrum, tile: number, dk: number, rMin: number, rMax: number): Band {
  const hw = tile / 2 + 1;
  const kx: number[] = [];
  const ky: number[] = [];
  const v: number[] = [];
  for (let y = 0; y < tile; y++) {
    const sy = signedIndex(y, tile);
    for (let x = 1; x < hw; x++) {
      const rr = hypot(x, sy);
      if (sy === 0 || rr < rMin || rr > rMax) continue;
      kx.push(x * dk);
      ky.push(sy * dk);
      v.push(s.normalised[y * hw + x] as number);
    }
  }
  return {
    cc(model) {
      let sx = 0, sy = 0, sxx = 0, syy = 0, sxy = 0;
      for (let i = 0; i < v.length; i++) {
        const a = v[i] as number;
        const b = model(kx[i] as number, ky[i] as number);
        sx += a; sy += b; sxx += a * a; syy += b * b; sxy += a * b;
      }
      return pearson(sx, sy, sxx, syy, sxy, v.length);
    },
  };
}

/**
 * The first radius (pixels) from rMin outwards at which the CC of spectrum and model CTF^2,
 * over a ring two Thon-ring periods wide, falls below `threshold`; tile/2 if it never does.
 */
export function fitRadius(s: Spectrum, tile: number, dk: number, model: { at(kx: number, ky: number): number }, rMin: number, period: (r: number) => number, threshold: number): number {
  const hw = tile / 2 + 1;
  const nBins = tile / 2 + 1;
  const sums = Array.from({ length: 5 }, () => new Float64Array(nBins + 1));
  const counts = new Float64Array(nBins + 1);
  for (let y = 0; y < tile; y++) {
    const sy = signedIndex(y, tile);
    for (let x = 1; x < hw; x++) {
      const b = round(hypot(x, sy));
      if (sy === 0 || b >= nBins) continue;
      const a = s.normalised[y * hw + x] as number;
      const m = model.at(x * dk, sy * dk) ** 2;
      const vals = [a, m, a * a, m * m, a * m];
      for (let k = 0; k < 5; k++) (sums[k] as Float64Array)[b + 1] = ((sums[k] as Float64Array)[b + 1] as number) + (vals[k] as number);
      counts[b + 1] = (counts[b + 1] as number) + 1;
    }
  }
  const cum = (a: Float64Array): void => { for (let i = 1; i < a.length; i++) a[i] = (a[i] as number) + (a[i - 1] as number); };
  sums.forEach(cum);
  cum(counts);
  const range = (a: Float64Array, lo: number, hi: number): number => (a[hi + 1] as number) - (a[lo] as number);
  for (let r = rMin; r < nBins; r++) {
    const h = max(2, min(tile / 16, round(period(r))));
    const lo = max(0, r - h);
    const hi = min(nBins - 1, r + h);
    const [sa, sm, saa, smm, sam] = sums.map((a) => range(a, lo, hi)) as [number, number, number, number, number];
    if (pearson(sa, sm, saa, smm, sam, range(counts, lo, hi)) < threshold) return r;
  }
  return tile / 2;
}
