import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { formatStar, pickParticles, type ParticlePick, writeStar } from './picking';
import { type Point, syntheticMovie } from './synthetic';
import { matchPicks } from './testing/accuracy';

const RADIUS = 8;
const SIZE = 512;

/**
 * One 512x512 frame at a whole movie's dose (40 e/px), 4 A/px, in focus: the CTF is then the
 * flat amplitude-contrast term out to Nyquist, so particles are dark blobs and no phase flip is
 * needed. (At 2 A/px and 3000 A underfocus the phase term is still too weak in the particles'
 * band and the texture wins.) Contrast is the synthetic default, 0.3, far above real ice.
 */
async function micrograph(seed: number): Promise<{ image: Float32Array; truth: Point[] }> {
  const m = await syntheticMovie({
    size: SIZE, frames: 1, seed, pixelSize_A: 4, dosePerFrame: 40,
    ctf: { defocusU_A: 0, defocusV_A: 0, astigmatismAngle_deg: 0 },
    particles: { count: 40, radius_px: RADIUS },
  });
  return { image: m.frames[0] as Float32Array, truth: m.truth.particles };
}

/** Every planted particle counts (edge 0): the picker is expected to find them all. */
function score(picks: ParticlePick[], truth: Point[], tolerance: number): { recall: number; precision: number } {
  return matchPicks(picks, truth, tolerance, SIZE, 0);
}

describe('pickParticles on synthetic micrographs', () => {
  it.each([21, 22])('seed %d: recall and precision >= 0.9 at half-radius tolerance', async (seed) => {
    const { image, truth } = await micrograph(seed);
    const picks = pickParticles(image, SIZE, SIZE, { minRadius_px: 6, maxRadius_px: 10 });
    const s = score(picks, truth, RADIUS / 2);
    expect(s.recall).toBeGreaterThanOrEqual(0.9);
    expect(s.precision).toBeGreaterThanOrEqual(0.9);
    expect(picks.every((p) => p.x >= 10 && p.y >= 10 && p.x < SIZE - 10 && p.y < SIZE - 10)).toBe(true);
  });

  it('a wrong radius range loses the particles, too large or too small', async () => {
    const { image, truth } = await micrograph(21);
    const large = score(pickParticles(image, SIZE, SIZE, { minRadius_px: 30, maxRadius_px: 40 }), truth, RADIUS / 2);
    const small = score(pickParticles(image, SIZE, SIZE, { minRadius_px: 2, maxRadius_px: 3 }), truth, RADIUS / 2);
    expect(large.recall).toBeLessThan(0.6);
    expect(small.recall).toBeLessThan(0.6);
  });

  it('dark particles are not found when declared bright', async () => {
    const { image, truth } = await micrograph(21);
    const picks = pickParticles(image, SIZE, SIZE, { minRadius_px: 6, maxRadius_px: 10, darkParticles: false });
    expect(score(picks, truth, RADIUS / 2).recall).toBeLessThan(0.3);
  });

  it('keeps picks at least the minimum distance apart', async () => {
    const { image } = await micrograph(22);
    const picks = pickParticles(image, SIZE, SIZE, { minRadius_px: 6, maxRadius_px: 10, thresholdK: 1 });
    for (const [i, p] of picks.entries()) {
      for (const q of picks.slice(i + 1)) expect(Math.hypot(p.x - q.x, p.y - q.y)).toBeGreaterThanOrEqual(10);
    }
  });
});

describe('writeStar', () => {
  it('writes a RELION coordinate file atomically, leaving no temporary behind', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'picking-'));
    try {
      const file = path.join(dir, 'mic_001_autopick.star');
      const picks = [{ x: 10.5, y: 20.25, score: 3.5 }, { x: 100, y: 7, score: 1.25 }];
      writeStar(file, picks, 'mic_001.mrc');
      expect(fs.readdirSync(dir)).toEqual(['mic_001_autopick.star']);
      const text = fs.readFileSync(file, 'utf8');
      expect(text).toBe(formatStar(picks, 'mic_001.mrc'));
      const lines = text.split('\n').filter((l) => l.trim() !== '' && !l.startsWith('#'));
      expect(lines.slice(0, 5)).toEqual(['data_', 'loop_', '_rlnCoordinateX #1', '_rlnCoordinateY #2', '_rlnAutopickFigureOfMerit #3']);
      expect(lines.slice(5).map((l) => l.split(/\s+/).map(Number))).toEqual([[10.5, 20.25, 3.5], [100, 7, 1.25]]);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('removes its temporary file when the target cannot be written', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'picking-'));
    try {
      fs.mkdirSync(path.join(dir, 'taken'));
      fs.writeFileSync(path.join(dir, 'taken', 'x'), '');
      expect(() => writeStar(path.join(dir, 'taken'), [], 'm')).toThrow();
      expect(fs.readdirSync(dir)).toEqual(['taken']);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
