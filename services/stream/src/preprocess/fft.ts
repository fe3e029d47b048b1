/**
 * 2-D FFTs of real images (Float32Array, row-major) on PFFFT compiled to WebAssembly.
 *
 * Restriction: both sides must be powers of two, width >= 32 and height >= 16 (PFFFT's real
 * transform needs a multiple of 32 points, its complex one a multiple of 16, and power-of-two
 * sides keep it on its fast radix-2/4 path). Callers crop or pad: detector frames
 * (4096, 5760x4092) are cropped to a power-of-two square or binned first.
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

  /** Complex transforms down each of the `hw` columns of the half plane, in place. */
  private columns(data: Float32Array, hw: number, height: number, cp: Plan, direction: number): void {
    const heap = this.m.HEAPF32;
    const cin = cp.input >> 2;
    const cout = cp.output >> 2;
    const stride = hw * 2;
    for (let x = 0; x < hw; x++) {
      for (let y = 0, s = x * 2; y < height; y++, s += stride) {
        heap[cin + 2 * y] = data[s] as number;
        heap[cin + 2 * y + 1] = data[s + 1] as number;
      }
      this.m._pffft_transform_ordered(cp.setup, cp.input, cp.output, cp.work, direction);
      for (let y = 0, s = x * 2; y < height; y++, s += stride) {
        data[s] = heap[cout + 2 * y] as number;
        data[s + 1] = heap[cout + 2 * y + 1] as number;
      }
    }
  }
}

function check(length: number, width: number, height: number): void {
  if (!isPowerOfTwo(width) || !isPowerOfTwo(height) || width < 32 || height < 16) {
    throw new RangeError(`FFT sides must be powers of two with width >= 32 and height >= 16, not ${width}x${height}: crop or pad the image`);
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
  for (let y = 0; y < height; y++) {
    const ky = signedIndex(y, height);
    const py = (-2 * Math.PI * ky * dy) / height;
    for (let x = 0; x < hw; x++) {
      const i = (y * hw + x) * 2;
      if (x === width / 2 || y === height / 2) {
        data[i] = 0;
        data[i + 1] = 0;
        continue;
      }
      const ph = py - (2 * Math.PI * x * dx) / width;
      const c = Math.cos(ph);
      const s = Math.sin(ph);
      const re = data[i] as number;
      const im = data[i + 1] as number;
      data[i] = re * c - im * s;
      data[i + 1] = re * s + im * c;
    }
  }
  return spectrum;
}
