import { alignedSum, doseGroups } from './aligned-sum';
import { sumAligned } from './motion';
import type { Movie, RawFrame } from './movie';
import { linearDrift, type Point, syntheticMovie } from './synthetic';

/** An in-memory Movie over given frames (the reader is tested in movie.test.ts). */
function memoryMovie(frames: Float32Array[], width: number, height: number): Movie {
  return {
    file: 'memory', width, height, frames: frames.length, pixelSize_A: 1, bytes: 0,
    frame: (z: number): Promise<RawFrame> => Promise.resolve(frames[z] as Float32Array),
    close: () => Promise.resolve(),
  };
}

/** Pearson CC over the central window (edges differ by design: mean fill against wrap-around). */
function centralCc(a: Float32Array, b: Float32Array, w: number, h: number, margin: number): number {
  let sa = 0, sb = 0, saa = 0, sbb = 0, sab = 0, n = 0;
  for (let y = margin; y < h - margin; y++) {
    for (let x = margin; x < w - margin; x++) {
      const u = a[y * w + x] as number;
      const v = b[y * w + x] as number;
      sa += u; sb += v; saa += u * u; sbb += v * v; sab += u * v; n++;
    }
  }
  return (sab - (sa * sb) / n) / Math.sqrt((saa - (sa * sa) / n) * (sbb - (sb * sb) / n));
}

const ctf = { defocusU_A: 15000, defocusV_A: 15000, astigmatismAngle_deg: 0 };

describe('doseGroups', () => {
  it('gives each run of frames the sub-pixel remainder its shifts share', () => {
    const shifts: Point[] = [0.3, 1.3, 2.32, 3.28, 10.7, 11.7].map((x) => ({ x, y: -x }));
    const g = doseGroups(shifts, 4);
    expect(g.map((r) => [r.first, r.last])).toEqual([[0, 3], [4, 5]]);
    // Frames that no common remainder fits within the tolerance start a new group.
    expect(doseGroups([0, 0.5, 1, 1.05, 1.1].map((x) => ({ x, y: x })), 5, 0.3).map((r) => [r.first, r.last])).toEqual([[0, 0], [1, 1], [2, 4]]);
    expect(g[0]?.fraction.x).toBeCloseTo(0.3, 1);
    expect(g[0]?.fraction.y).toBeCloseTo(0.7, 1);
    expect(g[1]?.fraction.x).toBeCloseTo(0.7, 1);
  });
});

describe('alignedSum', () => {
  it('matches the per-frame Fourier sum (sumAligned) with and without dose weighting', async () => {
    const frames = 10;
    const drift = linearDrift(frames, { x: 7.3, y: -4.6 });
    const m = await syntheticMovie({ size: 256, frames, seed: 8, dosePerFrame: 50, ctf, drift });
    const dose = { dosePerFrame_ePerA2: 3, pixelSize_A: 1 };
    for (const d of [undefined, dose]) {
      const reference = await sumAligned(m.frames, 256, 256, drift, d);
      // At 50 e/px (far above a real movie's SNR) the rounding of the default grouping shows a
      // little; a tighter tolerance buys it back with more groups (more FFTs).
      const grouped = await alignedSum(memoryMovie(m.frames, 256, 256), { shifts: drift, dose: d, groupFrames: 5 });
      expect(centralCc(grouped, reference, 256, 256, 16)).toBeGreaterThan(0.98);
      const tight = await alignedSum(memoryMovie(m.frames, 256, 256), { shifts: drift, dose: d, groupFrames: 5, tolerance_px: 0.3 });
      expect(centralCc(tight, reference, 256, 256, 16)).toBeGreaterThan(0.99);
      // Per-frame groups round nothing: the two methods agree to float precision inside.
      const single = await alignedSum(memoryMovie(m.frames, 256, 256), { shifts: drift, dose: d, groupFrames: 1 });
      expect(centralCc(single, reference, 256, 256, 16)).toBeGreaterThan(0.9999);
    }
    const wrong = await alignedSum(memoryMovie(m.frames, 256, 256), { shifts: drift.map(() => ({ x: 0, y: 0 })) });
    expect(centralCc(wrong, await sumAligned(m.frames, 256, 256, drift), 256, 256, 16)).toBeLessThan(0.9);
  });

  it('keeps the mean, and sums sides PFFFT cannot transform by padding (K3 rows)', async () => {
    const w = 200;
    const h = 90;
    const frames = [0, 1, 2].map((z) => Float32Array.from({ length: w * h }, (_, i) => 2 + Math.sin(i % w / 7 + z) + Math.cos(Math.floor(i / w) / 5)));
    const shifts = [{ x: 0, y: 0 }, { x: 1, y: 0 }, { x: 2, y: 0.5 }];
    const s = await alignedSum(memoryMovie(frames, w, h), { shifts, dose: { dosePerFrame_ePerA2: 2, pixelSize_A: 1 } });
    expect(s.length).toBe(w * h);
    const mean = (a: Float32Array): number => a.reduce((t, v) => t + v, 0) / a.length;
    const expected = frames.reduce((t, f) => t + mean(f), 0);
    // Within 0.5%: the sub-pixel Fourier shift rings a little at the padding's edge.
    expect(Math.abs(mean(s) - expected) / expected).toBeLessThan(0.005);
  });
});
