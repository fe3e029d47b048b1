import { runCase } from './testing/accuracy';

/**
 * Through STAGES end to end on 768x768 movies of 40 frames at 1 A/px, 300 kV, Cs 2.7 mm,
 * 1 e/px/frame (synthetic contrast 0.3, well above real ice): drift RMS error under 0.5 px for
 * total drifts of 1-20 px, defocus within 2% over 0.5-4 um, astigmatism angle within 10
 * degrees when the astigmatism is at least 500 A.
 */
describe('motion, sum and ctf stages on synthetic 768x768x40 movies', () => {
  it.each([
    [{ x: 1, y: 0.5 }, 5000, 4400, 20],
    [{ x: 8, y: -5 }, 12000, 11200, 75],
    [{ x: -12, y: 15 }, 25000, 24000, 130],
    [{ x: 20, y: 2 }, 40000, 39000, 165],
  ])('drift %j, defocus U %d V %d at %d degrees', async (total, u, v, angle) => {
    const r = await runCase({ size: 768, frames: 40, seed: Math.round(u / 1000), total, defocusU_A: u, defocusV_A: v, angle_deg: angle }, ['motion', 'sum', 'ctf']);
    expect(r.driftRms_px).toBeLessThan(0.5);
    expect(r.defocusErr).toBeLessThan(0.02);
    expect(r.angleErr_deg).toBeLessThan(10);
    expect(r.metrics.ctfFitResolution_A).toBeLessThan(8);
  }, 60_000);
});
