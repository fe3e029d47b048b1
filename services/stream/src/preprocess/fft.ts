/**
 * 2-D FFTs of real images (Float32Array, row-major) on PFFFT compiled to WebAssembly.
 *
 * Sizes: PFFFT factors into 2, 3 and 5 only, and its real transform needs a multiple of 32
 * points, its complex one a multiple of 16. So the width must be 2^a 3^b 5^c and a multiple of
 * 32, the height 2^a 3^b 5^c and a multiple of 16 (fftWidth/fftHeight give the next such
 * size). Falcon 4 (4096) and K3 columns (5760 = 2^7 3^2 5) fit as they are; K3 rows (4092 =
 * 4 3 11 31) do not, so callers pad them to 4096 or crop.
 *
 * Spectra are the half plane that a real image determines: `height` rows (ky = 0..height-1,
 * rows >= height/2 are the negative frequencies) of `width/2 + 1` complex values
 * (kx = 0..width/2), interleaved re, im. Forward is unscaled, e^{-2 pi i k x / n}; inverse
 * divides by width*height, so inverse(forward(x)) = x.
 */

/** The part of the Emscripten module used here (see pffft-wasm.d.ts). */
export interface PffftModule {
  HEAPF32: Float32Array;
  _pffft_new_setup(n: number, type: number): number;
  _pffft_aligned_malloc(bytes: number): number;
  _pffft_transform_ordered(setup: number, input: number, output: number, work: number, direction: number): void;
}

export interface HalfSpectrum {
  /** Interleaved re, im; `height` rows of `width/2 + 1` values. */
  data: Float32Array;
  /** Width of the real image. */
  width: number;
  height: number;
}

export interface Fft2d {
  forward(image: Float32Array, width: number, height: number): HalfSpectrum;
  inverse(spectrum: HalfSpectrum): Float32Array;
  /** |F|^2 over the half plane: `height` rows of `width/2 + 1`. */
  powerSpectrum(image: Float32Array, width: number, height: number): Float32Array;
}

const REAL = 0;
const COMPLEX = 1;
const FORWARD = 0;
const BACKWARD = 1;

export function isPowerOfTwo(n: number): boolean {
  return Number.isInteger(n) && n > 0 && (n & (n - 1)) === 0;
}

/** True when n has no prime factor above 5 (PFFFT's radices). */
export function isFiveSmooth(n: number): boolean {
  if (!Number.isInteger(n) || n < 1) return false;
  for (const p of [2, 3, 5]) while (n % p === 0) n /= p;
  return n === 1;
}

/** Whether PFFFT can transform an image `width` x `height` (see the file comment). */
export function isFftSize(width: number, height: number): boolean {
  return width % 32 === 0 && height % 16 === 0 && isFiveSmooth(width) && isFiveSmooth(height);
}

/** The smallest valid FFT width >= n. */
export function fftWidth(n: number): number {
  let m = Math.max(32, Math.ceil(n / 32) * 32);
  while (!isFiveSmooth(m)) m += 32;
  return m;
}

/** The smallest valid FFT height >= n. */
export function fftHeight(n: number): number {
  let m = Math.max(16, Math.ceil(n / 16) * 16);
  while (!isFiveSmooth(m)) m += 16;
  return m;
}

/** The largest valid FFT width <= n (at least 32), for cropping. */
export function fftWidthBelow(n: number): number {
  let m = Math.max(32, Math.floor(n / 32) * 32);
  while (m > 32 && !isFiveSmooth(m)) m -= 32;
  return m;
}

/** The largest valid FFT height <= n (at least 16), for cropping. */
export function fftHeightBelow(n: number): number {
  let m = Math.max(16, Math.floor(n / 16) * 16);
  while (m > 16 && !isFiveSmooth(m)) m -= 16;
  return m;
}

/** Signed frequency index of row/column `i` of an n-point transform. */
export function signedIndex(i: number, n: number): number {
  return i < n / 2 ? i : i - n;
}

interface Plan { setup: number; input: number; output: number; work: number }

class PffftFft2d implements Fft2d {
  private readonly plans = new Map<string, Plan>();

  constructor(private readonly m: PffftModule) {}

  private plan(n: number, type: number): Plan {
    const key = `${n}:${type}`;
    let p = this.plans.get(key);
    if (!p) {
      const bytes = n * 4 * (type === COMPLEX ? 2 : 1);
      p = { setup: this.m._pffft_new_setup(n, type), input: this.m._pffft_aligned_malloc(bytes), output: this.m._pffft_aligned_malloc(bytes), work: this.m._pffft_aligned_malloc(bytes) };
      if (!p.setup || !p.input || !p.output || !p.work) throw new Error(`PFFFT could not set up a ${n}-point transform`);
      this.plans.set(key, p);
    }
    return p;
  }

  forward(image: Float32Array, width: number, height: number): HalfSpectrum {
    check(image.length, width, height);
    const hw = width / 2 + 1;
    const data = new Float32Array(height * hw * 2);
    const rp = this.plan(width, REAL);
    const cp = this.plan(height, COMPLEX);
    const heap = this.m.HEAPF32; // read after planning: allocation may grow (and replace) the heap
    const rin = rp.input >> 2;
    const rout = rp.output >> 2;
    for (let y = 0; y < height; y++) {
      heap.set(image.subarray(y * width, (y + 1) * width), rin);
      this.m._pffft_transform_ordered(rp.setup, rp.input, rp.output, rp.work, FORWARD);
      // Ordered real output packs X[0] and X[n/2] (both real) into the first two floats.
      const o = y * hw * 2;
      data.set(heap.subarray(rout + 2, rout + width), o + 2);
      data[o] = heap[rout] as number;
      data[o + 1] = 0;
      data[o + width] = heap[rout + 1] as number;
      data[o + width + 1] = 0;
    }
    this.columns(data, hw, height, cp, FORWARD);
    return { data, width, height };
  }

  inverse(spectrum: HalfSpectrum): Float32Array {
    const { width, height } = spectrum;
    check(-1, width, height);
    const hw = width / 2 + 1;
    if (spectrum.data.length !== height * hw * 2) throw new RangeError(`spectrum has ${spectrum.data.length} floats, not ${height * hw * 2}`);
    const data = spectrum.data.slice();
    const rp = this.plan(width, REAL);
    const cp = this.plan(height, COMPLEX);
    this.columns(data, hw, height, cp, BACKWARD);
    const heap = this.m.HEAPF32;
    const rin = rp.input >> 2;
    const rout = rp.output >> 2;
    const out = new Float32Array(width * height);
    const scale = 1 / (width * height);
    for (let y = 0; y < height; y++) {
      const o = y * hw * 2;
      heap.set(data.subarray(o + 2, o + width), rin + 2);
      heap[rin] = data[o] as number;
      heap[rin + 1] = data[o + width] as number;
      this.m._pffft_transform_ordered(rp.setup, rp.input, rp.output, rp.work, BACKWARD);
      const row = y * width;
      for (let x = 0; x < width; x++) out[row + x] = (heap[rout + x] as number) * scale;
    }
    return out;
  }

  powerSpectrum(image: Float32Array, width: number, height: number): Float32Array {
    const f = this.forward(image, width, height).data;
    const p = new Float32Array(f.length / 2);
    for (let i = 0; i < p.length; i++) {
      const re = f[2 * i] as number;
      const im = f[2 * i + 1] as number;
      p[i] = re * re + im * im;
    }
    return p;
  }

  /**
   * Complex transforms down each of the `hw` columns of the half plane, in place. Columns are
   * gathered COLUMN_BLOCK at a time: a row then yields that many neighbouring values per cache
   * line instead of one, which matters at 4096 rows (the strided walk was most of the time).
   */
  private columns(data: Float32Array, hw: number, height: number, cp: Plan, direction: number): void {
    const cin = cp.input >> 2;
    const cout = cp.output >> 2;
    const n = height * 2;
    // A complex value is two adjacent floats: a float64 view moves it in one load and store.
    const d64 = new Float64Array(data.buffer, data.byteOffset, data.length / 2);
    const stage64 = this.stage(COLUMN_BLOCK * height);
    const stage32 = new Float32Array(stage64.buffer, 0, stage64.length * 2);
    for (let x0 = 0; x0 < hw; x0 += COLUMN_BLOCK) {
      const block = hw - x0 < COLUMN_BLOCK ? hw - x0 : COLUMN_BLOCK;
      // Gather: stage holds column b at [b * height, (b + 1) * height) complex values.
      for (let y = 0, s = x0; y < height; y++, s += hw) {
        for (let b = 0, t = y; b < block; b++, t += height) stage64[t] = d64[s + b] as number;
      }
      for (let b = 0; b < block; b++) {
        const heap = this.m.HEAPF32;
        heap.set(stage32.subarray(b * n, (b + 1) * n), cin);
        this.m._pffft_transform_ordered(cp.setup, cp.input, cp.output, cp.work, direction);
        stage32.set(heap.subarray(cout, cout + n), b * n);
      }
      for (let y = 0, s = x0; y < height; y++, s += hw) {
        for (let b = 0, t = y; b < block; b++, t += height) d64[s + b] = stage64[t] as number;
      }
    }
  }

  private staging = new Float64Array(0);

  private stage(length: number): Float64Array {
    if (this.staging.length < length) this.staging = new Float64Array(length);
    return this.staging;
  }
}
/** Columns gathered per pass in the column transforms (16 complex values = two cache lines a row). */
const COLUMN_BLOCK = 16;

function check(length: number, width: number, height: number): void {
  if (!(width > 0 && height > 0 && isFftSize(width, height))) {
    throw new RangeError(`FFT sides must be 2^a 3^b 5^c, the width a multiple of 32 and the height of 16, not ${width}x${height}: crop or pad the image`);
  }
  if (length >= 0 && length !== width * height) throw new RangeError(`image has ${length} pixels, not ${width}x${height}`);
}

function asPffft(m: unknown): PffftModule {
  const names = ['_pffft_new_setup', '_pffft_aligned_malloc', '_pffft_transform_ordered'];
  if (typeof m !== 'object' || m === null || !names.every((n) => typeof (m as Record<string, unknown>)[n] === 'function')) {
    throw new Error('@echogarden/pffft-wasm did not load as expected: the PFFFT functions are missing');
  }
  return m as PffftModule;
}

let loading: Promise<Fft2d> | undefined;

/** Loads the WebAssembly FFT once (SIMD build, falling back to the plain one) and returns it. */
export function createFft2d(): Promise<Fft2d> {
  loading ??= (async () => {
    try {
      const simd = await import('@echogarden/pffft-wasm/simd');
      return new PffftFft2d(asPffft(await simd.default()));
    } catch {
      const plain = await import('@echogarden/pffft-wasm');
      return new PffftFft2d(asPffft(await plain.default()));
    }
  })();
  return loading;
}

/**
 * Multiplies a half spectrum in place by the phase ramp that moves the image content by
 * (+dx, +dy) pixels (periodically). The Nyquist row and column are zeroed: their shifted
 * values are not representable in a real image.
 */
export function fourierShift(spectrum: HalfSpectrum, dx: number, dy: number): HalfSpectrum {
  const { data, width, height } = spectrum;
  const hw = width / 2 + 1;
  // The ramp is separable: one phase per column and one per row, multiplied per pixel,
  // instead of a cos and a sin for every pixel.
  const cx = new Float64Array(hw);
  const sx = new Float64Array(hw);
  for (let x = 0; x < hw; x++) {
    const ph = (-2 * Math.PI * x * dx) / width;
    cx[x] = x === width / 2 ? 0 : Math.cos(ph);
    sx[x] = x === width / 2 ? 0 : Math.sin(ph);
  }
  for (let y = 0; y < height; y++) {
    const o = y * hw * 2;
    if (y === height / 2) {
      data.fill(0, o, o + hw * 2);
      continue;
    }
    const py = (-2 * Math.PI * signedIndex(y, height) * dy) / height;
    const cy = Math.cos(py);
    const sy = Math.sin(py);
    for (let x = 0; x < hw; x++) {
      const c = (cx[x] as number) * cy - (sx[x] as number) * sy;
      const s = (cx[x] as number) * sy + (sx[x] as number) * cy;
      const i = o + 2 * x;
      const re = data[i] as number;
      const im = data[i + 1] as number;
      data[i] = re * c - im * s;
      data[i + 1] = re * s + im * c;
    }
  }
  return spectrum;
}
