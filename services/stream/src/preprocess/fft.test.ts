import { createFft2d, type Fft2d, fftHeight, fftHeightBelow, fftWidth, fftWidthBelow, fourierShift, isFftSize, signedIndex } from './fft';

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

  it('refuses sides PFFFT cannot transform', () => {
    expect(() => fft.forward(new Float32Array(48 * 32), 48, 32)).toThrow(/multiple of 32/);
    expect(() => fft.forward(new Float32Array(224 * 32), 224, 32)).toThrow(/2\^a 3\^b 5\^c/);
    expect(() => fft.forward(new Float32Array(64 * 24), 64, 24)).toThrow(/multiple of 32/);
    expect(signedIndex(40, 64)).toBe(-24);
  });
});

function directDft(img: Float32Array, w: number, h: number, kx: number, ky: number): [number, number] {
  let re = 0;
  let im = 0;
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const ph = -2 * Math.PI * (kx * x / w + ky * y / h);
      re += (img[y * w + x] as number) * Math.cos(ph);
      im += (img[y * w + x] as number) * Math.sin(ph);
    }
  }
  return [re, im];
}

describe('sizes with factors 3 and 5', () => {
  it.each([[96, 48], [160, 80], [480, 144]])('%dx%d matches a direct DFT and inverts', (w, h) => {
    const img = randomImage(w * h, 11);
    const f = fft.forward(img, w, h).data;
    for (const [kx, ky] of [[0, 0], [1, 2], [w / 2, h / 2], [Math.floor(w / 3), h - 1], [5, h / 4]] as const) {
      const [re, im] = directDft(img, w, h, kx, ky);
      const i = (ky * (w / 2 + 1) + kx) * 2;
      expect(f[i]).toBeCloseTo(re, 2);
      expect(f[i + 1]).toBeCloseTo(im, 2);
    }
    const back = fft.inverse({ data: f, width: w, height: h });
    let err = 0;
    for (let i = 0; i < img.length; i++) err = Math.max(err, Math.abs((back[i] as number) - (img[i] as number)));
    expect(err).toBeLessThan(1e-5);
  });

  it('names the sizes detector frames pad or crop to', () => {
    expect(isFftSize(5760, 4096)).toBe(true);
    expect(isFftSize(5760, 4092)).toBe(false);
    expect(fftHeight(4092)).toBe(4096);
    expect(fftWidth(5760)).toBe(5760);
    expect(fftWidth(720)).toBe(768);
    expect(fftWidth(33)).toBe(64);
    expect(fftWidthBelow(720)).toBe(640);
    expect(fftHeightBelow(511)).toBe(480);
    expect(fftHeight(1)).toBe(16);
  });
});
