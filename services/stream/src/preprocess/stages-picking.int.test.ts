import { OPTIONS, runCase } from './testing/accuracy';

/**
 * Picking through STAGES (motion, sum, ctf, then picking on the phase-flipped reduced sum) on
 * 1024x1024x40 and 768x768x40 movies at 1 A/px, 1 e/px/frame: recall and precision at least 0.9 at a
 * tolerance of half the radius. Large particles sit below the first CTF zero at any usual
 * defocus; small ones at high defocus straddle it, and only the phase flip (from the fitted
 * CTF in ctf.json) brings them back.
 */
describe('picking stage on synthetic 1024x1024x40 movies', () => {
  it('finds particles of radius 20 A at 0.8 um defocus', async () => {
    const r = await runCase({ size: 1024, frames: 40, seed: 31, total: { x: 6, y: -4 }, defocusU_A: 8000, defocusV_A: 7500, angle_deg: 30, particles: { count: 40, radius_px: 20 } }, ['motion', 'sum', 'ctf', 'picking']);
    expect(r.recall).toBeGreaterThanOrEqual(0.9);
    expect(r.precision).toBeGreaterThanOrEqual(0.9);
  }, 60_000);

  const small = { size: 768, frames: 40, seed: 33, total: { x: -5, y: 7 }, defocusU_A: 35000, defocusV_A: 34000, angle_deg: 30, particles: { count: 40, radius_px: 10 } };
  const smallOptions = { ...OPTIONS, picking: { radiusMin_A: 8, radiusMax_A: 12, threshold: 6 } };

  it('finds particles of radius 10 A at 3.5 um defocus on the phase-flipped sum', async () => {
    const r = await runCase(small, ['motion', 'sum', 'ctf', 'picking'], smallOptions);
    expect(r.recall).toBeGreaterThanOrEqual(0.9);
    expect(r.precision).toBeGreaterThanOrEqual(0.9);
  }, 60_000);

  it('loses most of them without the flip (no ctf.json)', async () => {
    const r = await runCase(small, ['motion', 'sum', 'picking'], smallOptions);
    expect(r.recall).toBeLessThan(0.5);
  }, 60_000);
});
