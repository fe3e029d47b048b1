/**
 * 8-bit greyscale PNG encoding and contrast-scaled thumbnails for the live preprocessing view.
 *
 * The encoder is the minimal valid PNG: signature, IHDR, one IDAT (zlib via node:zlib, filter
 * type 0 on every row: thumbnails are small and noisy, so the other filters buy little), IEND.
 */
import * as zlib from 'node:zlib';

const SIGNATURE = Uint8Array.of(0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a);

const CRC_TABLE = (() => {
  const table = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    table[n] = c >>> 0;
  }
  return table;
})();

/** CRC-32 (ISO 3309, as PNG and zlib's crc32 use). */
export function crc32(bytes: Uint8Array): number {
  let c = 0xffffffff;
  for (const b of bytes) c = (CRC_TABLE[(c ^ b) & 0xff] as number) ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

function chunk(type: string, data: Uint8Array): Buffer {
  const out = Buffer.alloc(12 + data.length);
  out.writeUInt32BE(data.length, 0);
  out.write(type, 4, 'latin1');
  out.set(data, 8);
  out.writeUInt32BE(crc32(out.subarray(4, 8 + data.length)), 8 + data.length);
  return out;
}

/** Encode `pixels` (row-major, one byte per pixel) as an 8-bit greyscale PNG. */
export function encodeGreyPng(pixels: Uint8Array, width: number, height: number): Buffer {
  if (!(Number.isInteger(width) && Number.isInteger(height) && width > 0 && height > 0)) throw new RangeError(`bad PNG size ${width}x${height}`);
  if (pixels.length !== width * height) throw new RangeError(`${pixels.length} pixels for ${width}x${height}`);
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 0; // colour type: greyscale
  // compression, filter method and interlace stay 0
  const raw = Buffer.alloc((width + 1) * height);
  for (let y = 0; y < height; y++) raw.set(pixels.subarray(y * width, (y + 1) * width), y * (width + 1) + 1);
  return Buffer.concat([SIGNATURE, chunk('IHDR', ihdr), chunk('IDAT', zlib.deflateSync(raw)), chunk('IEND', new Uint8Array(0))]);
}

export interface Thumbnail { pixels: Uint8Array; width: number; height: number }

export interface ThumbnailOptions {
  /** Percentiles (0-100) mapped to 0 and 255. Default 0.5 and 99.5. */
  low?: number;
  high?: number;
}

/**
 * Bin `image` by the smallest integer factor that brings its longer side to at most `maxSide`
 * (summing whole bins, dropping the remainder), then map the low..high percentiles to 0..255.
 */
export function thumbnail(image: Float32Array, width: number, height: number, maxSide: number, o: ThumbnailOptions = {}): Thumbnail {
  if (image.length !== width * height) throw new RangeError(`image has ${image.length} pixels, not ${width}x${height}`);
  if (!(maxSide >= 1)) throw new RangeError(`maxSide must be >= 1, not ${maxSide}`);
  const bin = Math.max(1, Math.ceil(Math.max(width, height) / maxSide));
  const w = Math.max(1, Math.floor(width / bin));
  const h = Math.max(1, Math.floor(height / bin));
  const binned = new Float32Array(w * h);
  for (let y = 0; y < h * bin && y < height; y++) {
    for (let x = 0; x < w * bin && x < width; x++) {
      const i = ((y / bin) | 0) * w + ((x / bin) | 0);
      binned[i] = (binned[i] as number) + (image[y * width + x] as number);
    }
  }
  return { pixels: scaleToBytes(binned, o.low ?? 0.5, o.high ?? 99.5), width: w, height: h };
}

/** Map the `low`..`high` percentiles of `values` linearly to 0..255, clipping outside. */
export function scaleToBytes(values: Float32Array, low: number, high: number): Uint8Array {
  if (!(low >= 0 && high <= 100 && low < high)) throw new RangeError(`bad percentiles ${low}..${high}`);
  const sorted = Float32Array.from(values).sort();
  const at = (p: number): number => sorted[Math.round((p / 100) * (sorted.length - 1))] as number;
  const lo = at(low);
  const span = at(high) - lo;
  const out = new Uint8Array(values.length);
  if (!(span > 0)) return out.fill(128);
  for (let i = 0; i < values.length; i++) {
    const v = (((values[i] as number) - lo) / span) * 255;
    out[i] = v <= 0 ? 0 : v >= 255 ? 255 : v + 0.5; // the Uint8Array store truncates: rounds
  }
  return out;
}

/**
 * A thumbnail of a half-plane power spectrum (fft.ts layout: `height` rows of `width/2 + 1`):
 * the full plane by Friedel symmetry, zero frequency at (width/2, height/2), log(1 + p) so the
 * Thon rings show beside the low-frequency peak, and DC replaced by its neighbour so one
 * pixel does not set the scale.
 */
export function spectrumThumbnail(power: Float32Array, width: number, height: number, maxSide: number, o: ThumbnailOptions = {}): Thumbnail {
  const hw = width / 2 + 1;
  if (!(width % 2 === 0 && power.length === hw * height)) throw new RangeError(`power has ${power.length} values, not ${hw}x${height} for ${width}x${height}`);
  const full = new Float32Array(width * height);
  for (let y = 0; y < height; y++) {
    const ky = y - height / 2;
    for (let x = 0; x < width; x++) {
      const kx = x - width / 2;
      // Negative kx lives in the other half: F(-k) = conj F(k) has the same power.
      const row = kx >= 0 ? (ky + height) % height : (height - ky) % height;
      full[y * width + x] = Math.log1p(power[row * hw + (kx >= 0 ? kx : -kx)] as number);
    }
  }
  const centre = (height / 2) * width + width / 2;
  full[centre] = full[centre + 1] as number;
  return thumbnail(full, width, height, maxSide, o);
}
