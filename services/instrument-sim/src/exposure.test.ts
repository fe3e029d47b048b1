import { createExposure, ctf, ctfTexture, type ExposureParams, type FrameSource, wavelengthA } from './exposure';

const BASE: ExposureParams = { width: 128, height: 128, frames: 2, dosePerFrame: 4, driftPxPerFrame: [0, 0], defocusUm: -1.5, pixelSizeA: 1, seed: 7 };

function frame(source: FrameSource, f: number): Uint16Array {
  const out = new Uint16Array(source.width * source.height);
  source.fill(f, 0, out);
  return out;
}

function stats(values: ArrayLike<number>): { mean: number; variance: number } {
  let sum = 0;
  let sum2 = 0;
  for (let i = 0; i < values.length; i++) {
    sum += values[i] as number;
    sum2 += (values[i] as number) ** 2;
  }
  const mean = sum / values.length;
  return { mean, variance: sum2 / values.length - mean * mean };
}

/** Pearson correlation of frame b against frame a moved by (dx, dy), over the overlap. */
function correlation(a: Uint16Array, b: Uint16Array, width: number, dx: number, dy: number): number {
  const xs: number[] = [];
  const ys: number[] = [];
  for (let y = 8; y < width - 8; y++) {
    for (let x = 8; x < width - 8; x++) {
      xs.push(a[(y - dy) * width + (x - dx)] as number);
      ys.push(b[y * width + x] as number);
    }
  }
  const mx = stats(xs).mean;
  const my = stats(ys).mean;
  let sxy = 0;
  let sxx = 0;
  let syy = 0;
  xs.forEach((x, i) => {
    const y = ys[i] as number;
    sxy += (x - mx) * (y - my);
    sxx += (x - mx) ** 2;
    syy += (y - my) ** 2;
  });
  return sxy / Math.sqrt(sxx * syy);
}

describe('simulated exposure', () => {
  test('counts are Poisson around the dose per frame (the faint texture adds a little variance)', () => {
    const s = stats(frame(createExposure(BASE), 0));
    expect(s.mean).toBeGreaterThan(3.9);
    expect(s.mean).toBeLessThan(4.1);
    // Poisson variance 4, texture (4 * 0.1)^2 = 0.16 more.
    expect(s.variance).toBeGreaterThan(3.9);
    expect(s.variance).toBeLessThan(4.5);
  });

  test('high doses too', () => {
    const s = stats(frame(createExposure({ ...BASE, dosePerFrame: 100 }), 0));
    expect(s.mean).toBeGreaterThan(99);
    expect(s.mean).toBeLessThan(101);
    expect(s.variance).toBeGreaterThan(150);
    expect(s.variance).toBeLessThan(250);
  });

  test('zero dose is zero counts', () => {
    expect(frame(createExposure({ ...BASE, dosePerFrame: 0 }), 1).every((v) => v === 0)).toBe(true);
  });

  test('the same seed gives the same frames; another seed does not', () => {
    const a = frame(createExposure(BASE), 1);
    expect(frame(createExposure(BASE), 1)).toEqual(a);
    expect(frame(createExposure({ ...BASE, seed: 8 }), 1)).not.toEqual(a);
  });

  test('rows filled in bands equal the frame filled at once', () => {
    const params: ExposureParams = { ...BASE, contrast: 0.3, dosePerFrame: 50, driftPxPerFrame: [0.7, -1.3] };
    const source = createExposure(params);
    const whole = frame(createExposure(params), 1);
    const banded = new Uint16Array(128 * 128);
    for (let y = 0; y < 128; y += 32) {
      const band = new Uint16Array(32 * 128);
      source.fill(1, y, band);
      banded.set(band, y * 128);
    }
    expect(banded).toEqual(whole);
  });

  test('the texture moves by the drift vector from frame to frame', () => {
    const source = createExposure({ ...BASE, dosePerFrame: 2000, contrast: 0.3, frames: 2, driftPxPerFrame: [3, -2] });
    const [f0, f1] = [frame(source, 0), frame(source, 1)];
    const aligned = correlation(f0, f1, 128, 3, -2);
    expect(aligned).toBeGreaterThan(0.6);
    expect(aligned).toBeGreaterThan(correlation(f0, f1, 128, 0, 0) + 0.3);
    expect(aligned).toBeGreaterThan(correlation(f0, f1, 128, -3, 2) + 0.3);
  });
});

describe('CTF texture', () => {
  test('the electron wavelength at 300 kV and the first CTF zero at 1.5 um underfocus', () => {
    expect(wavelengthA(300e3)).toBeCloseTo(0.01969, 5);
    expect(ctf(0, 15000)).toBeCloseTo(-0.07, 3);
    expect(ctf(0.0565, 15000)).toBeLessThan(0);
    expect(ctf(0.0585, 15000)).toBeGreaterThan(0);
  });

  test('its power spectrum has Thon rings: dark at the CTF zero, bright at the peaks around it', () => {
    const size = 256;
    const { values } = ctfTexture(size, -1.5, 1.0, 3);
    expect(stats(values).mean).toBeCloseTo(0, 6);
    expect(stats(values).variance).toBeCloseTo(1, 4);
    const cos = Float64Array.from({ length: size }, (_, i) => Math.cos((2 * Math.PI * i) / size));
    const sin = Float64Array.from({ length: size }, (_, i) => Math.sin((2 * Math.PI * i) / size));
    // Mean |DFT|^2 over the integer frequencies within half a pixel of radius r (k = r / 256 per A).
    const ring = (r: number): number => {
      let total = 0;
      let count = 0;
      for (let v = 0; v <= r + 1; v++) {
        for (let u = -Math.ceil(r) - 1; u <= r + 1; u++) {
          if (Math.abs(Math.hypot(u, v) - r) > 0.5) continue;
          let re = 0;
          let im = 0;
          for (let y = 0; y < size; y++) {
            for (let x = 0; x < size; x++) {
              const phase = (((u * x + v * y) % size) + size) % size;
              re += (values[y * size + x] as number) * (cos[phase] as number);
              im -= (values[y * size + x] as number) * (sin[phase] as number);
            }
          }
          total += re * re + im * im;
          count++;
        }
      }
      return total / count;
    };
    // First peak near k = 0.041 (r 10.4), first zero near 0.0575 (r 14.7), second peak near 0.070 (r 18).
    const zero = ring(14.7);
    expect(zero).toBeLessThan(0.2 * ring(10.4));
    expect(zero).toBeLessThan(0.2 * ring(18));
  });
});
