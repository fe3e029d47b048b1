import { createFft2d, fourierShift } from './fft';
import { binFrame, criticalExposure, estimateMotion, sumAligned } from './motion';
import { linearDrift, type Point, syntheticMovie } from './synthetic';

const ctf = { defocusU_A: 15000, defocusV_A: 15000, astigmatismAngle_deg: 0 };

/** A straight drift with a wobble, so the trajectory is not a line the method could assume. */
function trajectory(frames: number, total: Point): Point[] {
  return linearDrift(frames, total).map((p, i) => ({ x: p.x + 0.3 * Math.sin(i), y: p.y - 0.2 * Math.cos(i) }));
}

function rmsError(found: Point[], drift: Point[]): number {
  const d0 = drift[0] as Point;
  const se = found.reduce((s, p, i) => s + (p.x - ((drift[i] as Point).x - d0.x)) ** 2 + (p.y - ((drift[i] as Point).y - d0.y)) ** 2, 0);
  return Math.sqrt(se / found.length);
}

describe('estimateMotion on synthetic 512x512 movies at 1 e/px/frame', () => {
  it.each([
    [{ x: 1, y: 0.5 }, 10, 2],
    [{ x: 5, y: -3 }, 10, 2],
    [{ x: 12, y: 9 }, 12, 2],
    [{ x: 20, y: 0 }, 16, 2],
    [{ x: -14, y: 14 }, 16, 4],
  ])('total drift %j over %d frames, bin %d: RMS error under 0.5 px', async (total, frames, bin) => {
    const drift = trajectory(frames, total);
    const m = await syntheticMovie({ size: 512, frames, seed: 5, ctf, drift, particles: { count: 30, radius_px: 20 } });
    const r = await estimateMotion(m.frames, 512, 512, { bin });
    expect(r.shifts[0]).toEqual({ x: 0, y: 0 });
    expect(rmsError(r.shifts, drift)).toBeLessThan(0.5);
  });

  it('finds nothing in pure shot noise', async () => {
    const drift = trajectory(8, { x: 10, y: 5 });
    const m = await syntheticMovie({ size: 512, frames: 8, seed: 6, contrast: 0, ctf, drift });
    const r = await estimateMotion(m.frames, 512, 512);
    expect(rmsError(r.shifts, drift)).toBeGreaterThan(2);
  });
});

describe('sumAligned', () => {
  it('an aligned sum matches the first frame\'s noise-free image better than the plain sum', async () => {
    const drift = trajectory(8, { x: 12, y: -6 });
    const m = await syntheticMovie({ size: 256, frames: 8, seed: 7, dosePerFrame: 4, ctf, drift });
    const clean = await syntheticMovie({ size: 256, frames: 1, seed: 7, dosePerFrame: 1e6, ctf });
    const r = await estimateMotion(m.frames, 256, 256);
    const cc = (a: Float32Array, b: Float32Array): number => {
      const mean = (x: Float32Array): number => x.reduce((s, v) => s + v, 0) / x.length;
      const ma = mean(a);
      const mb = mean(b);
      let ab = 0, aa = 0, bb = 0;
      for (let i = 0; i < a.length; i++) {
        ab += ((a[i] as number) - ma) * ((b[i] as number) - mb);
        aa += ((a[i] as number) - ma) ** 2;
        bb += ((b[i] as number) - mb) ** 2;
      }
      return ab / Math.sqrt(aa * bb);
    };
    const truth = clean.frames[0] as Float32Array;
    const aligned = await sumAligned(m.frames, 256, 256, r.shifts);
    const plain = await sumAligned(m.frames, 256, 256, r.shifts.map(() => ({ x: 0, y: 0 })));
    const backwards = await sumAligned(m.frames, 256, 256, r.shifts.map((p) => ({ x: -p.x, y: -p.y })));
    expect(cc(aligned, truth)).toBeGreaterThan(cc(plain, truth) + 0.1);
    expect(cc(aligned, truth)).toBeGreaterThan(cc(backwards, truth) + 0.1);
  });

  it('dose weighting keeps low frequencies and damps high ones in late frames', async () => {
    const fft = await createFft2d();
    // Frame i holds a single Fourier component: a cosine at frequency (kx, 0); all frames alike.
    const size = 64;
    const wave = (kx: number): Float32Array => Float32Array.from({ length: size * size }, (_, p) => Math.cos((2 * Math.PI * kx * (p % size)) / size));
    const none = Array.from({ length: 10 }, () => ({ x: 0, y: 0 }));
    const dw = { dosePerFrame_ePerA2: 5, pixelSize_A: 1 };
    const amplitude = (img: Float32Array, kx: number): number => {
      const f = fft.forward(img, size, size).data;
      return Math.hypot(f[kx * 2] as number, f[kx * 2 + 1] as number);
    };
    for (const kx of [1, 16]) {
      const frames = Array.from({ length: 10 }, () => wave(kx));
      const ratio = amplitude(await sumAligned(frames, size, size, none, dw), kx) / amplitude(await sumAligned(frames, size, size, none), kx);
      const ne = criticalExposure(kx / size);
      const w = Array.from({ length: 10 }, (_, i) => Math.exp(-((i + 0.5) * 5) / (2 * ne)));
      const expected = w.reduce((s, v) => s + v, 0) * Math.sqrt(10 / w.reduce((s, v) => s + v * v, 0)) / 10;
      expect(ratio).toBeCloseTo(expected, 3);
    }
    expect(criticalExposure(1 / 4)).toBeCloseTo(0.245 * 4 ** 1.665 + 2.81, 6);
    // An unused import would hide a broken helper: fourierShift and binFrame are exercised here.
    const shifted = fft.inverse(fourierShift(fft.forward(wave(1), size, size), 0, 0));
    expect(binFrame(shifted, size, size, 2).length).toBe((size / 2) ** 2);
  });
});
