import { createFft2d, type Fft2d, fourierShift, signedIndex } from './fft';

let fft: Fft2d;
beforeAll(async () => {
  fft = await createFft2d();
});

function randomImage(n: number, seed: number): Float32Array {
  let s = seed;
  return Float32Array.from({ length: n }, () => ((s = (s * 1103515245 + 12345) % 2147483648) / 2147483648) - 0.5);
}

describe('2-D real FFT', () => {
  it('matches a direct DFT on a 32x16 image', () => {
    const w = 32;
    const h = 16;
    const img = randomImage(w * h, 7);
    const f = fft.forward(img, w, h).data;
    for (const [kx, ky] of [[0, 0], [1, 0], [3, 5], [16, 8], [7, 15]] as const) {
      let re = 0;
      let im = 0;
      for (let y = 0; y < h; y++) {
        for (let x = 0; x < w; x++) {
          const ph = -2 * Math.PI * (kx * x / w + ky * y / h);
          re += (img[y * w + x] as number) * Math.cos(ph);
          im += (img[y * w + x] as number) * Math.sin(ph);
        }
      }
      const i = (ky * (w / 2 + 1) + kx) * 2;
      expect(f[i]).toBeCloseTo(re, 3);
      expect(f[i + 1]).toBeCloseTo(im, 3);
    }
  });

  it('inverse undoes forward', () => {
    const img = randomImage(64 * 128, 3);
    const back = fft.inverse(fft.forward(img, 64, 128));
    let err = 0;
    for (let i = 0; i < img.length; i++) err = Math.max(err, Math.abs((back[i] as number) - (img[i] as number)));
    expect(err).toBeLessThan(1e-5);
  });

  it('an integer Fourier shift is a periodic roll', () => {
    const w = 64;
    const img = new Float32Array(w * w);
    img[10 * w + 5] = 1;
    const moved = fft.inverse(fourierShift(fft.forward(img, w, w), 3, -4));
    let peak = 0;
    for (let i = 1; i < moved.length; i++) if ((moved[i] as number) > (moved[peak] as number)) peak = i;
    expect(peak).toBe(6 * w + 8);
  });

  it('refuses sides that are not powers of two', () => {
    expect(() => fft.forward(new Float32Array(48 * 32), 48, 32)).toThrow(/powers of two/);
    expect(signedIndex(40, 64)).toBe(-24);
  });
});
