import { electronWavelength_A } from './ctf-model';
import { estimateCtf } from './ctf';
import { syntheticMovie } from './synthetic';

async function micrograph(defocusU_A: number, defocusV_A: number, astigmatismAngle_deg: number, o: { seed?: number; contrast?: number; bFactor_A2?: number; phaseShift_deg?: number } = {}): Promise<Float32Array> {
  // One frame at the dose of a whole movie (20 e/px): CTF estimation sees the aligned sum.
  const m = await syntheticMovie({ size: 512, frames: 1, seed: o.seed ?? 11, dosePerFrame: 20, contrast: o.contrast ?? 0.3, bFactor_A2: o.bFactor_A2 ?? 40, ctf: { defocusU_A, defocusV_A, astigmatismAngle_deg, phaseShift_deg: o.phaseShift_deg ?? 0 } });
  return m.frames[0] as Float32Array;
}

describe('electronWavelength_A', () => {
  it('is 0.0197 A at 300 kV', () => {
    expect(electronWavelength_A(300e3)).toBeCloseTo(0.019687, 5);
  });
});

describe('estimateCtf on synthetic 512x512 micrographs (1 A/px, 300 kV)', () => {
  it.each([
    [5000, 5000, 0],
    [8000, 7400, 20],
    [12000, 11000, 75],
    [20000, 19500, 120],
    [28000, 27000, 160],
    [40000, 39000, 45],
  ])('U %d, V %d, angle %d: defocus within 2%%, angle within 10 degrees', async (u, v, angle) => {
    const e = await estimateCtf(await micrograph(u, v, angle), 512, 512, { pixelSize_A: 1 });
    expect(Math.abs(e.defocusU_A - u) / u).toBeLessThan(0.02);
    expect(Math.abs(e.defocusV_A - v) / v).toBeLessThan(0.02);
    if (u - v >= 500) {
      const d = Math.abs(e.astigmatismAngle_deg - angle) % 180;
      expect(Math.min(d, 180 - d)).toBeLessThan(10);
    }
    expect(e.cc).toBeGreaterThan(0.3);
    expect(e.fitResolution_A).toBeLessThan(6);
  });

  it('a wrong pixel size gives a wrong defocus (k scales, so defocus by its square)', async () => {
    const e = await estimateCtf(await micrograph(15000, 15000, 0), 512, 512, { pixelSize_A: 1.1 });
    expect(e.defocusU_A / 15000).toBeGreaterThan(1.1);
  });

  it('a blurred specimen gives a worse fit resolution', async () => {
    const sharp = await estimateCtf(await micrograph(15000, 15000, 0), 512, 512, { pixelSize_A: 1 });
    const blurred = await estimateCtf(await micrograph(15000, 15000, 0, { bFactor_A2: 600 }), 512, 512, { pixelSize_A: 1 });
    expect(blurred.fitResolution_A).toBeGreaterThan(sharp.fitResolution_A + 1);
  });

  it('pure shot noise fits nothing', async () => {
    const e = await estimateCtf(await micrograph(15000, 15000, 0, { contrast: 0 }), 512, 512, { pixelSize_A: 1 });
    expect(e.cc).toBeLessThan(0.1);
  });

  it('smaller tiles average several periodograms and still fit moderate defocus', async () => {
    const e = await estimateCtf(await micrograph(10000, 9000, 60), 512, 512, { pixelSize_A: 1, tileSize: 256 });
    expect(Math.abs(e.defocusU_A - 10000) / 10000).toBeLessThan(0.02);
    expect(Math.abs(e.defocusV_A - 9000) / 9000).toBeLessThan(0.02);
  });

  it.each([[6000, 5400, 40, 90], [12000, 11500, 100, 45], [9000, 8800, 0, 150]])('fits a phase-plate shift: U %d, V %d, angle %d, shift %d degrees', async (u, v, angle, shift) => {
    const e = await estimateCtf(await micrograph(u, v, angle, { phaseShift_deg: shift }), 512, 512, { pixelSize_A: 1, phaseShift: true });
    // Phase and defocus trade off over a band of a few rings: the fit lands 4-10 degrees high.
    const d = Math.abs((e.phaseShift_deg ?? NaN) - shift) % 180;
    expect(Math.min(d, 180 - d)).toBeLessThan(15);
    expect(Math.abs(e.defocusU_A - u) / u).toBeLessThan(0.02);
    expect(Math.abs(e.defocusV_A - v) / v).toBeLessThan(0.02);
    // Without the phase term the same spectrum fits worse.
    const plain = await estimateCtf(await micrograph(u, v, angle, { phaseShift_deg: shift }), 512, 512, { pixelSize_A: 1 });
    expect(plain.phaseShift_deg).toBeUndefined();
    expect(plain.cc).toBeLessThan(e.cc);
  });
});
