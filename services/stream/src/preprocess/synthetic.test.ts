import { linearDrift, seededRandom, syntheticMovie } from './synthetic';

const ctf = { defocusU_A: 12000, defocusV_A: 11000, astigmatismAngle_deg: 30 };

describe('syntheticMovie', () => {
  it('is deterministic for a seed and differs between seeds', async () => {
    const a = await syntheticMovie({ size: 64, frames: 2, seed: 1, ctf });
    const b = await syntheticMovie({ size: 64, frames: 2, seed: 1, ctf });
    const c = await syntheticMovie({ size: 64, frames: 2, seed: 2, ctf });
    expect(a.frames[1]).toEqual(b.frames[1]);
    expect(a.frames[1]).not.toEqual(c.frames[1]);
  });

  it('gives integer counts averaging the dose, and reports its truth', async () => {
    const drift = linearDrift(4, { x: 3, y: -1 });
    const m = await syntheticMovie({ size: 128, frames: 4, seed: 9, dosePerFrame: 2, ctf, drift, particles: { count: 5, radius_px: 6 } });
    const f = m.frames[3] as Float32Array;
    expect(f.every((v) => Number.isInteger(v) && v >= 0)).toBe(true);
    expect(f.reduce((s, v) => s + v, 0) / f.length).toBeCloseTo(2, 1);
    expect(m.truth.drift[3]).toEqual({ x: 3, y: -1 });
    expect(m.truth.particles).toHaveLength(5);
    expect(m.truth.ctf).toMatchObject({ ...ctf, voltage_kV: 300, cs_mm: 2.7, amplitudeContrast: 0.07 });
  });

  it('plants dark particles (amplitude contrast at zero defocus) and moves them with the drift', async () => {
    // 4 A pixels keep spherical aberration negligible out to Nyquist, so the CTF is flat.
    const drift = [{ x: 0, y: 0 }, { x: 10, y: 6 }];
    const m = await syntheticMovie({ size: 128, frames: 2, seed: 4, pixelSize_A: 4, dosePerFrame: 400, ctf: { defocusU_A: 0, defocusV_A: 0, astigmatismAngle_deg: 0 }, drift, particles: { count: 1, radius_px: 8 } });
    const p = m.truth.particles[0] as { x: number; y: number };
    const disk = (f: Float32Array, cx: number, cy: number): number => {
      let s = 0;
      for (let y = -2; y <= 2; y++) for (let x = -2; x <= 2; x++) s += f[(Math.round(cy) + y) * 128 + Math.round(cx) + x] as number;
      return s / 25;
    };
    const [first, second] = m.frames as [Float32Array, Float32Array];
    expect(disk(first, p.x, p.y)).toBeLessThan(0.7 * 400);
    expect(disk(second, p.x + 10, p.y + 6)).toBeLessThan(0.7 * 400);
    expect(disk(second, p.x, p.y)).toBeGreaterThan(disk(second, p.x + 10, p.y + 6) + 50);
  });

  it('seededRandom is uniform enough', () => {
    const r = seededRandom(3);
    const xs = Array.from({ length: 10000 }, r);
    expect(xs.reduce((s, v) => s + v, 0) / xs.length).toBeCloseTo(0.5, 1);
  });
});
