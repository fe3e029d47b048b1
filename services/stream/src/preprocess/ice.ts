/**
 * Relative ice-ring power (DESIGN.md section 5): crystalline ice scatters into a ring at
 * 3.89-3.65 A, so the mean power of the sum's spectrum in that band over the mean power of the
 * bands of equal width on either side is about 1 for vitreous ice and grows with crystalline
 * ice. Thon rings there are a few pixels of the spectrum apart and average out over a band
 * about two periods wide; the axes (tile-edge cross) are left out.
 */
import { signedIndex } from './fft';

// Tests run under jest's vm contexts, where every global lookup (Math, Number) is ~50x slower
// than a local one; the per-pixel loops here use these locals instead.
const { hypot } = Math;

export const ICE_BAND_A = [3.89, 3.65] as const;

/** Ratio, or undefined when Nyquist (2 x pixel) is coarser than the band's outer edge. */
export function iceRatio(amp: Float32Array, tile: number, pixelSize_A: number): number | undefined {
  const nyquist = 1 / (2 * pixelSize_A);
  const lo = 1 / ICE_BAND_A[0];
  const hi = 1 / ICE_BAND_A[1];
  if (hi > nyquist) return undefined;
  const width = hi - lo;
  const dk = 1 / (tile * pixelSize_A);
  const hw = tile / 2 + 1;
  const sums = [0, 0, 0];
  const counts = [0, 0, 0];
  for (let y = 0; y < tile; y++) {
    const ky = signedIndex(y, tile);
    if (ky === 0) continue;
    for (let x = 1; x < hw; x++) {
      const k = hypot(x, ky) * dk;
      const band = k < lo - width ? -1 : k < lo ? 0 : k <= hi ? 1 : k <= hi + width && k <= nyquist ? 2 : -1;
      if (band < 0) continue;
      const a = amp[y * hw + x] as number;
      sums[band] = (sums[band] as number) + a * a;
      counts[band] = (counts[band] as number) + 1;
    }
  }
  const mean = (b: number): number => (sums[b] as number) / (counts[b] as number);
  const neighbours = (counts[2] as number) > 0 ? (mean(0) + mean(2)) / 2 : mean(0);
  return mean(1) / neighbours;
}
