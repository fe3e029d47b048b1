/**
 * Synthetic movies with known answers, for testing motion correction and CTF estimation.
 *
 * A specimen (smooth random density, a broad-band texture so that Thon rings reach high
 * resolution, and Gaussian blobs as particles at known coordinates) is filtered by a known CTF
 * in Fourier space, moved along a known drift trajectory by Fourier shifts, and turned into
 * electron counts with Poisson noise: counts ~ Poisson(dose * (1 + contrast * image)).
 * Everything follows from `seed`. The contrast is far above real ice (the default 0.3 against
 * a few percent) so that 512x512 tests carry enough signal; say so when quoting results.
 */
import { ctfModel, type CtfParams, DEFAULT_OPTICS } from './ctf-model';
import { createFft2d, fourierShift, type HalfSpectrum, isFftSize, isPowerOfTwo, signedIndex } from './fft';

// Tests run under jest's vm contexts, where every global lookup (Math, Number) is ~50x slower
// than a local one; the per-pixel loops here use these locals instead.
const { ceil, cos, exp, floor, imul, log, max, round, sqrt } = Math;

export interface Point { x: number; y: number }

export interface SyntheticOptions {
  /** Side in pixels (square, power of two). */
  size: number;
  frames: number;
  seed: number;
  pixelSize_A?: number;
  /** Mean electrons per pixel per frame. */
  dosePerFrame?: number;
  /** Relative modulation of the dose by the CTF-filtered specimen (unit std). */
  contrast?: number;
  /** Defocus etc.; voltage, Cs and amplitude contrast default to 300 kV, 2.7 mm, 0.07. */
  ctf: Pick<CtfParams, 'defocusU_A' | 'defocusV_A' | 'astigmatismAngle_deg'> & Partial<CtfParams>;
  /** Envelope exp(-B k^2 / 4), A^2. */
  bFactor_A2?: number;
  /** Position of the specimen in each frame, pixels (content moves by +x, +y). Default: none. */
  drift?: Point[];
  particles?: { count: number; radius_px: number };
}

/** A movie of any valid FFT size (fft.ts), generated a frame at a time. */
export interface SyntheticStreamOptions extends Omit<SyntheticOptions, 'size'> {
  width: number;
  height: number;
}

export interface SyntheticStream {
  width: number;
  height: number;
  truth: SyntheticMovie['truth'];
  /** The frames in order; each is generated when asked for, so a 4096x4096x40 movie never sits in memory. */
  frames(): AsyncGenerator<Float32Array>;
}

export interface SyntheticMovie {
  frames: Float32Array[];
  width: number;
  height: number;
  truth: { drift: Point[]; particles: Point[]; ctf: CtfParams };
}

/** A straight drift from (0, 0) to `total` over `frames` frames, evenly spaced. */
export function linearDrift(frames: number, total: Point): Point[] {
  return Array.from({ length: frames }, (_, i) => {
    const t = frames > 1 ? i / (frames - 1) : 0;
    return { x: total.x * t, y: total.y * t };
  });
}

/** mulberry32: small, fast, and good enough for test data. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = imul(t ^ (t >>> 15), t | 1);
    t ^= t + imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function gaussian(rand: () => number): number {
  return sqrt(-2 * log(1 - rand())) * cos(2 * Math.PI * rand());
}

function poisson(rand: () => number, mean: number): number {
  if (mean > 30) return max(0, round(mean + sqrt(mean) * gaussian(rand)));
  const limit = exp(-mean);
  let k = 0;
  let p = rand();
  while (p > limit) {
    k++;
    p *= rand();
  }
  return k;
}

export async function syntheticMovie(o: SyntheticOptions): Promise<SyntheticMovie> {
  const n = o.size;
  if (!isPowerOfTwo(n) || n < 32) throw new RangeError(`size must be a power of two >= 32, not ${n}`);
  const stream = await syntheticStream({ ...o, width: n, height: n });
  const frames: Float32Array[] = [];
  for await (const f of stream.frames()) frames.push(f);
  return { frames, width: n, height: n, truth: stream.truth };
}

export async function syntheticStream(o: SyntheticStreamOptions): Promise<SyntheticStream> {
  const { width: w, height: h } = o;
  if (!isFftSize(w, h)) throw new RangeError(`${w}x${h} is not a valid FFT size (see fft.ts)`);
  const pixel = o.pixelSize_A ?? 1;
  const dose = o.dosePerFrame ?? 1;
  const contrast = o.contrast ?? 0.3;
  const drift = o.drift ?? Array.from({ length: o.frames }, () => ({ x: 0, y: 0 }));
  if (drift.length !== o.frames) throw new RangeError(`drift has ${drift.length} positions for ${o.frames} frames`);
  const rand = seededRandom(o.seed);
  const fft = await createFft2d();

  const { density, particles } = specimen(w, h, rand, o.particles);
  const spectrum = fft.forward(density, w, h);
  const ctf: CtfParams = { ...DEFAULT_OPTICS, ...o.ctf };
  filterByCtf(spectrum, ctf, pixel, o.bFactor_A2 ?? 0);
  const image = fft.inverse(spectrum);
  normalise(image);
  const filtered = fft.forward(image, w, h);

  async function* frames(): AsyncGenerator<Float32Array> {
    for (const d of drift) {
      const moved = fft.inverse(fourierShift({ ...filtered, data: filtered.data.slice() }, d.x, d.y));
      const counts = new Float32Array(w * h);
      for (let i = 0; i < counts.length; i++) {
        const mean = dose * (1 + contrast * (moved[i] as number));
        counts[i] = poisson(rand, mean > 0 ? mean : 0);
      }
      yield await Promise.resolve(counts);
    }
  }
  return { width: w, height: h, truth: { drift, particles, ctf }, frames };
}

/** Smooth density plus broad-band texture plus Gaussian blobs, before normalisation. */
function specimen(w: number, h: number, rand: () => number, blobs: SyntheticOptions['particles']): { density: Float32Array; particles: Point[] } {
  const white = Float32Array.from({ length: w * h }, () => gaussian(rand));
  const smooth = boxBlur(white, w, h, 8);
  const density = new Float32Array(w * h);
  // Weights chosen so both parts show: the smooth part dominates by eye, the white part
  // carries the high-resolution Thon rings.
  for (let i = 0; i < density.length; i++) density[i] = 6 * (smooth[i] as number) + 0.5 * (white[i] as number);
  const particles: Point[] = [];
  if (blobs) {
    const sigma = blobs.radius_px / 2;
    const reach = ceil(3 * sigma);
    for (let p = 0; p < blobs.count; p++) {
      const c = { x: reach + rand() * (w - 2 * reach), y: reach + rand() * (h - 2 * reach) };
      particles.push(c);
      for (let y = floor(c.y - reach); y <= c.y + reach; y++) {
        for (let x = floor(c.x - reach); x <= c.x + reach; x++) {
          const r2 = (x - c.x) ** 2 + (y - c.y) ** 2;
          const i = y * w + x;
          density[i] = (density[i] as number) + 3 * exp(-r2 / (2 * sigma * sigma));
        }
      }
    }
  }
  return { density, particles };
}

/** Periodic box blur of half-width r along both axes (twice, close to a Gaussian). */
function boxBlur(src: Float32Array, w: number, h: number, r: number): Float32Array {
  let a = src;
  for (let pass = 0; pass < 2; pass++) {
    const b = blurLines(a, w, h, 1, w, r);
    a = blurLines(b, h, w, w, 1, r);
  }
  return a;
}

/** Box-blur `count` periodic lines of `length` samples (`step` apart, lines `stride` apart). */
function blurLines(src: Float32Array, length: number, count: number, step: number, stride: number, r: number): Float32Array {
  const out = new Float32Array(src.length);
  // A padded copy of each line keeps the wrap-around out of the inner loop.
  const line = new Float32Array(length + 2 * r);
  for (let c = 0; c < count; c++) {
    const base = c * stride;
    for (let i = 0; i < line.length; i++) line[i] = src[base + ((i - r + length) % length) * step] as number;
    for (let i = 0; i < length; i++) {
      let s = 0;
      for (let d = 0; d <= 2 * r; d++) s += line[i + d] as number;
      out[base + i * step] = s / (2 * r + 1);
    }
  }
  return out;
}

function filterByCtf(spectrum: HalfSpectrum, ctf: CtfParams, pixel: number, bFactor: number): void {
  const { data, width, height } = spectrum;
  const model = ctfModel(ctf);
  const hw = width / 2 + 1;
  for (let y = 0; y < height; y++) {
    const ky = signedIndex(y, height) / (height * pixel);
    for (let x = 0; x < hw; x++) {
      const kx = x / (width * pixel);
      const f = model.at(kx, ky) * exp((-bFactor * (kx * kx + ky * ky)) / 4);
      const i = (y * hw + x) * 2;
      data[i] = (data[i] as number) * f;
      data[i + 1] = (data[i + 1] as number) * f;
    }
  }
}

function normalise(a: Float32Array): void {
  let mean = 0;
  for (const v of a) mean += v;
  mean /= a.length;
  let sq = 0;
  for (const v of a) sq += (v - mean) ** 2;
  const sd = sqrt(sq / a.length) || 1;
  for (let i = 0; i < a.length; i++) a[i] = ((a[i] as number) - mean) / sd;
}
