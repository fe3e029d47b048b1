import { signedIndex } from './fft';
import { iceRatio } from './ice';
import { seededRandom } from './synthetic';

const TILE = 256;

/** A noisy amplitude spectrum falling with k, optionally with a ring at `ring_A`. */
function amplitude(pixel: number, ring_A?: number): Float32Array {
  const rand = seededRandom(3);
  const hw = TILE / 2 + 1;
  const amp = new Float32Array(TILE * hw);
  for (let y = 0; y < TILE; y++) {
    for (let x = 0; x < hw; x++) {
      const k = Math.hypot(x, signedIndex(y, TILE)) / (TILE * pixel);
      const ring = ring_A === undefined ? 0 : 2 * Math.exp(-(((k - 1 / ring_A) / 0.004) ** 2));
      amp[y * hw + x] = (1 / (1 + 20 * k) + ring) * (0.8 + 0.4 * rand());
    }
  }
  return amp;
}

describe('iceRatio', () => {
  it('is about 1 without ice and well above with a ring at 3.7 A', () => {
    expect(iceRatio(amplitude(1), TILE, 1)).toBeGreaterThan(0.9);
    expect(iceRatio(amplitude(1), TILE, 1)).toBeLessThan(1.1);
    expect(iceRatio(amplitude(1, 3.75), TILE, 1)).toBeGreaterThan(2);
    // A ring outside the band does not count as ice.
    expect(iceRatio(amplitude(1, 5), TILE, 1)).toBeLessThan(1.1);
  });

  it('uses one neighbour when the upper one is past Nyquist, and none beyond 1.82 A/px', () => {
    expect(iceRatio(amplitude(1.8, 3.75), TILE, 1.8)).toBeGreaterThan(2);
    expect(iceRatio(amplitude(1.83), TILE, 1.83)).toBeUndefined();
  });
});
