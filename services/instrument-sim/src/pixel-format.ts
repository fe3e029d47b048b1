/**
 * RFB pixel formats (RFC 6143 section 7.4) and Raw encoding. The server's own format is 32 bpp,
 * depth 24, little-endian true colour; clients may ask for any true-colour format of 8, 16 or
 * 32 bits per pixel, with any shifts and byte order. Colour maps are not offered.
 */
import { BYTES_PER_PIXEL, type Framebuffer } from './framebuffer';
import type { Rect } from './region';

export interface PixelFormat {
  readonly bitsPerPixel: number;
  readonly depth: number;
  readonly bigEndian: boolean;
  readonly trueColour: boolean;
  readonly redMax: number;
  readonly greenMax: number;
  readonly blueMax: number;
  readonly redShift: number;
  readonly greenShift: number;
  readonly blueShift: number;
}

export const PIXEL_FORMAT_BYTES = 16;

export const SERVER_PIXEL_FORMAT: PixelFormat = Object.freeze({
  bitsPerPixel: 32,
  depth: 24,
  bigEndian: false,
  trueColour: true,
  redMax: 255,
  greenMax: 255,
  blueMax: 255,
  redShift: 16,
  greenShift: 8,
  blueShift: 0,
});

export function readPixelFormat(buf: Buffer, offset = 0): PixelFormat {
  return Object.freeze({
    bitsPerPixel: buf.readUInt8(offset),
    depth: buf.readUInt8(offset + 1),
    bigEndian: buf.readUInt8(offset + 2) !== 0,
    trueColour: buf.readUInt8(offset + 3) !== 0,
    redMax: buf.readUInt16BE(offset + 4),
    greenMax: buf.readUInt16BE(offset + 6),
    blueMax: buf.readUInt16BE(offset + 8),
    redShift: buf.readUInt8(offset + 10),
    greenShift: buf.readUInt8(offset + 11),
    blueShift: buf.readUInt8(offset + 12),
  });
}

/** The 16 bytes of a PIXEL_FORMAT (the last three are padding). */
export function writePixelFormat(f: PixelFormat): Buffer {
  const buf = Buffer.alloc(PIXEL_FORMAT_BYTES);
  buf.writeUInt8(f.bitsPerPixel, 0);
  buf.writeUInt8(f.depth, 1);
  buf.writeUInt8(f.bigEndian ? 1 : 0, 2);
  buf.writeUInt8(f.trueColour ? 1 : 0, 3);
  buf.writeUInt16BE(f.redMax, 4);
  buf.writeUInt16BE(f.greenMax, 6);
  buf.writeUInt16BE(f.blueMax, 8);
  buf.writeUInt8(f.redShift, 10);
  buf.writeUInt8(f.greenShift, 11);
  buf.writeUInt8(f.blueShift, 12);
  return buf;
}

/** Why this server cannot send pixels in `f`, or undefined when it can. */
export function pixelFormatProblem(f: PixelFormat): string | undefined {
  if (![8, 16, 32].includes(f.bitsPerPixel)) return `${f.bitsPerPixel} bits per pixel is not supported (8, 16 or 32 are)`;
  if (!f.trueColour) return 'colour-map pixel formats are not supported';
  for (const [name, max, shift] of [
    ['red', f.redMax, f.redShift],
    ['green', f.greenMax, f.greenShift],
    ['blue', f.blueMax, f.blueShift],
  ] as const) {
    if (max === 0 || (max & (max + 1)) !== 0) return `${name}-max ${max} is not one less than a power of two`;
    if (shift + bitLength(max) > f.bitsPerPixel) return `${name} (max ${max}, shift ${shift}) does not fit in ${f.bitsPerPixel} bits`;
  }
  return undefined;
}

function bitLength(max: number): number {
  return Math.floor(Math.log2(max)) + 1;
}

/** Converts the RGBX framebuffer to a client's format through per-channel lookup tables. */
export class PixelEncoder {
  readonly bytesPerPixel: number;
  private readonly red: Uint32Array;
  private readonly green: Uint32Array;
  private readonly blue: Uint32Array;

  constructor(readonly format: PixelFormat) {
    const problem = pixelFormatProblem(format);
    if (problem) throw new RangeError(problem);
    this.bytesPerPixel = format.bitsPerPixel / 8;
    this.red = channelTable(format.redMax, format.redShift);
    this.green = channelTable(format.greenMax, format.greenShift);
    this.blue = channelTable(format.blueMax, format.blueShift);
  }

  /** `r` must lie inside the framebuffer. */
  encode(fb: Framebuffer, r: Rect): Buffer {
    const bpp = this.bytesPerPixel;
    const big = this.format.bigEndian;
    const out = Buffer.allocUnsafe(r.width * r.height * bpp);
    const src = fb.data;
    let o = 0;
    for (let y = r.y; y < r.y + r.height; y++) {
      let i = (y * fb.width + r.x) * BYTES_PER_PIXEL;
      for (let x = 0; x < r.width; x++, i += BYTES_PER_PIXEL) {
        const v = ((this.red[src[i] as number] as number) | (this.green[src[i + 1] as number] as number) | (this.blue[src[i + 2] as number] as number)) >>> 0;
        if (bpp === 4) {
          if (big) out.writeUInt32BE(v, o);
          else out.writeUInt32LE(v, o);
        } else if (bpp === 2) {
          if (big) out.writeUInt16BE(v, o);
          else out.writeUInt16LE(v, o);
        } else {
          out[o] = v;
        }
        o += bpp;
      }
    }
    return out;
  }
}

function channelTable(max: number, shift: number): Uint32Array {
  const table = new Uint32Array(256);
  for (let v = 0; v < 256; v++) table[v] = (Math.round((v * max) / 255) << shift) >>> 0;
  return table;
}

/** One pixel of `format` at `offset`, as 8-bit red, green and blue. */
export function decodePixel(buf: Buffer, offset: number, format: PixelFormat): [number, number, number] {
  let v: number;
  if (format.bitsPerPixel === 32) v = format.bigEndian ? buf.readUInt32BE(offset) : buf.readUInt32LE(offset);
  else if (format.bitsPerPixel === 16) v = format.bigEndian ? buf.readUInt16BE(offset) : buf.readUInt16LE(offset);
  else v = buf.readUInt8(offset);
  const channel = (max: number, shift: number): number => Math.round((((v >>> shift) & max) * 255) / max);
  return [channel(format.redMax, format.redShift), channel(format.greenMax, format.greenShift), channel(format.blueMax, format.blueShift)];
}
