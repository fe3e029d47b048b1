import * as zlib from 'node:zlib';
import { createFft2d } from './fft';
import { crc32, encodeGreyPng, scaleToBytes, spectrumThumbnail, thumbnail } from './png';

interface Chunk { type: string; data: Buffer; crc: number }

/** A decoder just strict enough to check what the encoder wrote. */
function chunks(png: Buffer): Chunk[] {
  expect([...png.subarray(0, 8)]).toEqual([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
  const out: Chunk[] = [];
  for (let p = 8; p < png.length;) {
    const length = png.readUInt32BE(p);
    out.push({ type: png.toString('latin1', p + 4, p + 8), data: png.subarray(p + 8, p + 8 + length), crc: png.readUInt32BE(p + 8 + length) });
    expect(out.at(-1)?.crc).toBe(zlib.crc32(png.subarray(p + 4, p + 8 + length)));
    p += 12 + length;
  }
  return out;
}

function decode(png: Buffer): { width: number; height: number; pixels: number[] } {
  const [ihdr, idat, iend, ...rest] = chunks(png) as [Chunk, Chunk, Chunk];
  expect([ihdr.type, idat.type, iend.type, rest.length]).toEqual(['IHDR', 'IDAT', 'IEND', 0]);
  expect(iend.data.length).toBe(0);
  const width = ihdr.data.readUInt32BE(0);
  const height = ihdr.data.readUInt32BE(4);
  expect([...ihdr.data.subarray(8)]).toEqual([8, 0, 0, 0, 0]);
  const raw = zlib.inflateSync(idat.data);
  expect(raw.length).toBe((width + 1) * height);
  const pixels: number[] = [];
  for (let y = 0; y < height; y++) {
    expect(raw[y * (width + 1)]).toBe(0);
    pixels.push(...raw.subarray(y * (width + 1) + 1, (y + 1) * (width + 1)));
  }
  return { width, height, pixels };
}

describe('crc32', () => {
  it('matches the standard check value and zlib', () => {
    expect(crc32(Buffer.from('123456789'))).toBe(0xcbf43926);
    const bytes = Uint8Array.from({ length: 1000 }, (_, i) => (i * 37) & 0xff);
    expect(crc32(bytes)).toBe(zlib.crc32(bytes));
  });
});

describe('encodeGreyPng', () => {
  it('round-trips a non-square image through IHDR, IDAT and IEND with valid CRCs', () => {
    const width = 7;
    const height = 3;
    const pixels = Uint8Array.from({ length: width * height }, (_, i) => (i * 13) & 0xff);
    const png = encodeGreyPng(pixels, width, height);
    expect(decode(png)).toEqual({ width, height, pixels: [...pixels] });
  });

  it('rejects a pixel count that does not match the size', () => {
    expect(() => encodeGreyPng(new Uint8Array(5), 2, 3)).toThrow(RangeError);
  });
});

describe('scaleToBytes and thumbnail', () => {
  it('maps the 0.5 and 99.5 percentiles to 0 and 255, clipping the outliers beyond', () => {
    // 0..999 plus two wild outliers: the percentiles land on ~5 and ~994, not on the outliers.
    const values = Float32Array.from([...Array.from({ length: 1000 }, (_, i) => i), -1e6, 1e6]);
    const bytes = scaleToBytes(values, 0.5, 99.5);
    expect(bytes[1000]).toBe(0);
    expect(bytes[1001]).toBe(255);
    expect(bytes[5]).toBe(0);
    expect(bytes[994]).toBe(255);
    expect(bytes[500]).toBeGreaterThanOrEqual(127);
    expect(bytes[500]).toBeLessThanOrEqual(129);
    // Plain min-max scaling would squash 0..999 into one or two grey levels.
    expect(new Set(bytes).size).toBeGreaterThan(200);
  });

  it('gives mid-grey for a flat image instead of dividing by zero', () => {
    expect([...scaleToBytes(new Float32Array(4).fill(3), 0.5, 99.5)]).toEqual([128, 128, 128, 128]);
  });

  it('bins down to at most maxSide and keeps the picture', () => {
    // 512x256, left half dark and right half bright, one hot pixel.
    const width = 512;
    const height = 256;
    const image = Float32Array.from({ length: width * height }, (_, i) => (i % width < width / 2 ? 10 : 20));
    image[1000] = 1e9;
    const t = thumbnail(image, width, height, 100);
    expect([t.width, t.height]).toEqual([85, 42]);
    expect(t.pixels[0]).toBe(0);
    expect(t.pixels[t.width - 1]).toBe(255);
    const png = decode(encodeGreyPng(t.pixels, t.width, t.height));
    expect(png.pixels).toEqual([...t.pixels]);
  });
});

describe('spectrumThumbnail', () => {
  it('centres zero frequency and shows a plane wave as two symmetric peaks', async () => {
    const n = 64;
    // 2 + cos(2 pi (5 x + 3 y) / n): power at DC, which must not set the scale, and at
    // (kx, ky) = +-(5, 3); elsewhere rounding noise. The full range (0..100) makes the peaks 255
    // and the noise ~0 deterministically.
    const image = Float32Array.from({ length: n * n }, (_, i) => 2 + Math.cos((2 * Math.PI * (5 * (i % n) + 3 * Math.floor(i / n))) / n));
    const fft = await createFft2d();
    const t = spectrumThumbnail(fft.powerSpectrum(image, n, n), n, n, n, { low: 0, high: 100 });
    expect([t.width, t.height]).toEqual([n, n]);
    const at = (kx: number, ky: number): number => t.pixels[(ky + n / 2) * n + kx + n / 2] as number;
    expect(at(5, 3)).toBe(255);
    expect(at(-5, -3)).toBe(255);
    expect(at(-5, 3)).toBeLessThan(10);
    expect(at(5, -3)).toBeLessThan(10);
    expect(at(0, 0)).toBeLessThan(10);
  });
});
