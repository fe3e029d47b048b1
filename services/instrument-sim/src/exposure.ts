/**
 * What the simulated detector counts: electrons at a dose per frame, Poisson-distributed
 * around a faint texture that drifts frame to frame. The texture is white noise seen through
 * the contrast transfer function at the exposure's defocus (300 kV, Cs 2.7 mm, 7% amplitude
 * contrast, DESIGN.md section 5), so motion correction has something to align and CTF
 * estimation has Thon rings to fit. It is one periodic tile (at most 512 px) sampled with
 * sub-pixel shifts, so a 4096x4096x40 movie costs a tile, not a movie, of memory.
 */

export interface FrameSource {
  readonly width: number;
  readonly height: number;
  readonly frames: number;
  /** Counts for `frame`, rows from `y` on, as many as `out` holds (out.length / width). */
  fill(frame: number, y: number, out: Uint16Array): void;
}

export interface ExposureParams {
  width: number;
  height: number;
  frames: number;
  /** Mean electrons per pixel per frame: dose rate (e/px/s) times frame time. */
  dosePerFrame: number;
  /** Pixels per frame; frame f shows the texture moved by f times this. */
  driftPxPerFrame: readonly [number, number];
  /** Negative is underfocus, as the panel shows it. */
  defocusUm: number;
  pixelSizeA: number;
  seed: number;
  /** Texture amplitude relative to the dose (standard deviation); faint by default. */
  contrast?: number;
}

const VOLTAGE_V = 300e3;
const CS_A = 2.7e7;
const AMPLITUDE_CONTRAST = 0.07;
/** Envelope exp(-B k^2 / 4): B in A^2, a typical resolution fall-off. */
const B_FACTOR = 60;
const MAX_TILE = 512;
/** The texture's multiplier (1 + contrast * t) is looked up in this many steps over [0, 2). */
const LEVELS = 2048;

export function createExposure(p: ExposureParams): FrameSource {
  if (!(p.dosePerFrame >= 0) || !Number.isFinite(p.dosePerFrame)) throw new RangeError(`dose per frame must be a finite number >= 0, not ${p.dosePerFrame}`);
  const tile = ctfTexture(tileSize(p.width, p.height), p.defocusUm, p.pixelSizeA, p.seed);
  const contrast = p.contrast ?? 0.1;
  const rng = new Random(p.seed ^ 0x5eed);
  // Per level: the mean, and e^-mean for sampling by inversion.
  const lambda = new Float64Array(LEVELS);
  const p0 = new Float64Array(LEVELS);
  for (let i = 0; i < LEVELS; i++) {
    lambda[i] = (p.dosePerFrame * (i + 0.5) * 2) / LEVELS;
    p0[i] = Math.exp(-(lambda[i] as number));
  }
  const size = tile.size;
  const mask = size - 1;
  return {
    width: p.width,
    height: p.height,
    frames: p.frames,
    fill(frame, y0, out) {
      const sx = -p.driftPxPerFrame[0] * frame;
      const sy = -p.driftPxPerFrame[1] * frame;
      const ix = Math.floor(sx);
      const iy = Math.floor(sy);
      const fx = sx - ix;
      const fy = sy - iy;
      // The texture's weight per level: (1 + contrast * t) * LEVELS / 2, bilinear in t.
      const scale = (contrast * LEVELS) / 2;
      const w00 = (1 - fx) * (1 - fy) * scale;
      const w10 = fx * (1 - fy) * scale;
      const w01 = (1 - fx) * fy * scale;
      const w11 = fx * fy * scale;
      const width = p.width;
      const rows = out.length / width;
      const t = tile.values;
      const top = LEVELS - 1;
      for (let r = 0; r < rows; r++) {
        const row0 = ((y0 + r + iy) & mask) * size;
        const row1 = ((y0 + r + iy + 1) & mask) * size;
        for (let x = 0; x < width; x++) {
          const tx0 = (x + ix) & mask;
          const tx1 = (tx0 + 1) & mask;
          const v = LEVELS / 2 + w00 * (t[row0 + tx0] as number) + w10 * (t[row0 + tx1] as number) + w01 * (t[row1 + tx0] as number) + w11 * (t[row1 + tx1] as number);
          const level = v <= 0 ? 0 : v >= top ? top : v | 0;
          out[r * width + x] = rng.poisson(lambda[level] as number, p0[level] as number);
        }
      }
    },
  };
}

function tileSize(width: number, height: number): number {
  let size = 64;
  while (size < MAX_TILE && (size < width || size < height)) size *= 2;
  return size;
}

/** mulberry32: fast, seedable, plenty for noise. */
export class Random {
  private state: number;

  constructor(seed: number) {
    this.state = seed >>> 0;
  }

  /** Uniform in [0, 1). */
  next(): number {
    this.state = (this.state + 0x6d2b79f5) | 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  /** Poisson with this mean: inversion below 30, a rounded normal above (where its skew is negligible). */
  poisson(mean: number, expMinusMean: number): number {
    if (mean >= 30) return Math.min(65535, Math.max(0, Math.round(mean + Math.sqrt(mean) * this.normal())));
    const u = this.next();
    let k = 0;
    let p = expMinusMean;
    let cdf = p;
    while (u > cdf && k < 1000) {
      k++;
      p *= mean / k;
      cdf += p;
    }
    return k;
  }

  /** Standard normal (Box-Muller). */
  normal(): number {
    return Math.sqrt(-2 * Math.log(1 - this.next())) * Math.cos(2 * Math.PI * this.next());
  }
}

/** Electron wavelength in A (DESIGN.md section 5). */
export function wavelengthA(voltageV: number): number {
  return 12.2643 / Math.sqrt(voltageV * (1 + 0.978466e-6 * voltageV));
}

/** CTF = -sin(chi + arctan(Q0 / sqrt(1 - Q0^2))), k in 1/A, defocus in A (positive underfocus). */
export function ctf(k: number, defocusA: number): number {
  const lambda = wavelengthA(VOLTAGE_V);
  const chi = Math.PI * lambda * defocusA * k * k - (Math.PI / 2) * CS_A * lambda ** 3 * k ** 4;
  return -Math.sin(chi + Math.atan(AMPLITUDE_CONTRAST / Math.sqrt(1 - AMPLITUDE_CONTRAST ** 2)));
}

/**
 * A periodic size x size texture, zero mean and unit standard deviation, whose power spectrum
 * is CTF^2 times a B-factor envelope. Built in Fourier space: random complex amplitudes shaped
 * by the CTF, one inverse FFT, the real part (which has the same spectrum because the CTF is
 * symmetric in k).
 */
export function ctfTexture(size: number, defocusUm: number, pixelSizeA: number, seed: number): { size: number; values: Float32Array } {
  const rng = new Random(seed);
  const re = new Float64Array(size * size);
  const im = new Float64Array(size * size);
  const defocusA = -defocusUm * 1e4;
  for (let v = 0; v < size; v++) {
    const ky = (v < size / 2 ? v : v - size) / (size * pixelSizeA);
    for (let u = 0; u < size; u++) {
      const kx = (u < size / 2 ? u : u - size) / (size * pixelSizeA);
      const k = Math.hypot(kx, ky);
      const amplitude = u === 0 && v === 0 ? 0 : ctf(k, defocusA) * Math.exp((-B_FACTOR * k * k) / 4);
      re[v * size + u] = amplitude * rng.normal();
      im[v * size + u] = amplitude * rng.normal();
    }
  }
  fft2d(re, im, size);
  let sum = 0;
  let sum2 = 0;
  for (const x of re) {
    sum += x;
    sum2 += x * x;
  }
  const mean = sum / re.length;
  const sd = Math.sqrt(Math.max(sum2 / re.length - mean * mean, 1e-30));
  const values = new Float32Array(size * size);
  for (let i = 0; i < values.length; i++) values[i] = ((re[i] as number) - mean) / sd;
  return { size, values };
}

/** In-place 2-D FFT of a size x size complex array (size a power of two); direction does not matter for noise. */
function fft2d(re: Float64Array, im: Float64Array, size: number): void {
  const rowRe = new Float64Array(size);
  const rowIm = new Float64Array(size);
  for (let pass = 0; pass < 2; pass++) {
    for (let line = 0; line < size; line++) {
      const at = (i: number): number => (pass === 0 ? line * size + i : i * size + line);
      for (let i = 0; i < size; i++) {
        rowRe[i] = re[at(i)] as number;
        rowIm[i] = im[at(i)] as number;
      }
      fft(rowRe, rowIm);
      for (let i = 0; i < size; i++) {
        re[at(i)] = rowRe[i] as number;
        im[at(i)] = rowIm[i] as number;
      }
    }
  }
}

/** Iterative radix-2 Cooley-Tukey, in place. */
function fft(re: Float64Array, im: Float64Array): void {
  const n = re.length;
  for (let i = 1, j = 0; i < n; i++) {
    let bit = n >> 1;
    for (; j & bit; bit >>= 1) j ^= bit;
    j ^= bit;
    if (i < j) {
      [re[i], re[j]] = [re[j] as number, re[i] as number];
      [im[i], im[j]] = [im[j] as number, im[i] as number];
    }
  }
  for (let len = 2; len <= n; len <<= 1) {
    const angle = (-2 * Math.PI) / len;
    const wRe = Math.cos(angle);
    const wIm = Math.sin(angle);
    for (let start = 0; start < n; start += len) {
      let cRe = 1;
      let cIm = 0;
      for (let k = 0; k < len / 2; k++) {
        const a = start + k;
        const b = a + len / 2;
        const tRe = (re[b] as number) * cRe - (im[b] as number) * cIm;
        const tIm = (re[b] as number) * cIm + (im[b] as number) * cRe;
        re[b] = (re[a] as number) - tRe;
        im[b] = (im[a] as number) - tIm;
        re[a] = (re[a] as number) + tRe;
        im[a] = (im[a] as number) + tIm;
        const next = cRe * wRe - cIm * wIm;
        cIm = cRe * wIm + cIm * wRe;
        cRe = next;
      }
    }
  }
}
