/**
 * MRC movies and images (MRC2014, https://www.ccpem.ac.uk/mrc_format/mrc2014.php), read and
 * written a frame at a time so a 4096x4096x40 movie never sits in memory whole.
 *
 * Pixels come back as float32 whatever the mode. NaN: float modes (2, 12) keep it both ways;
 * integer modes cannot hold it, so writing NaN (or any value the mode cannot hold exactly:
 * a fraction, or out of range) is an error naming the frame and pixel, never a silent clamp.
 * Mode 0 is signed (MRC2014) unless IMOD's stamp says its bytes are unsigned.
 */
import fs from 'node:fs/promises';
import os from 'node:os';
import { AppError } from '@cloudlet/core';
import { float16Table, toFloat16Bits } from './float16';

// Tests run under jest's vm contexts, where every global lookup (Math, Number) is ~50x slower
// than a local one; the per-pixel loops here use these locals instead.
const { ceil, floor, sqrt } = Math;
const { isFinite, isInteger, isNaN } = Number;

export type MrcMode = 0 | 1 | 2 | 6 | 12 | 101;

export interface MrcHeader {
  width: number;
  height: number;
  frames: number;
  mode: MrcMode;
  littleEndian: boolean;
  /** Mode 0 only: IMOD files without its "signed" flag hold 0..255. */
  unsignedBytes: boolean;
  /** Cell X / MX, or undefined when the header does not say (zero cell or sampling). */
  pixelSizeA: number | undefined;
  /** NSYMBT: the extended header, skipped. */
  extendedBytes: number;
  /** EXTTYP, e.g. "FEI1", or "" when unset. */
  extendedType: string;
  dataOffset: number;
  frameBytes: number;
  labels: string[];
}

export const MRC_HEADER_BYTES = 1024;
const MODES: ReadonlySet<number> = new Set([0, 1, 2, 6, 12, 101]);
const BYTES_PER_PIXEL: Readonly<Record<Exclude<MrcMode, 101>, number>> = { 0: 1, 1: 2, 2: 4, 6: 2, 12: 2 };
const IMOD_STAMP = 1146047817;
const HOST_LE = os.endianness() === 'LE';
/** Beyond these a header is corrupt, not a bigger detector (formats.ts's checks share them). */
export const MAX_SIDE = 65536;
export const MAX_FRAMES = 100_000;

export function isMrcMode(mode: number): mode is MrcMode {
  return MODES.has(mode);
}

function invalid(file: string, what: string): AppError {
  return new AppError(`${file}: ${what}`, { code: 'mrc_invalid', status: 422 });
}

function unsupported(file: string, what: string): AppError {
  return new AppError(`${file}: ${what}`, { code: 'mrc_unsupported', status: 422 });
}

export function mrcFrameBytes(width: number, height: number, mode: MrcMode): number {
  return mode === 101 ? ceil(width / 2) * height : width * height * BYTES_PER_PIXEL[mode];
}

interface RawHeader {
  nx: number;
  ny: number;
  nz: number;
  mode: number;
  nsymbt: number;
}

function rawHeader(h: Buffer, le: boolean): RawHeader {
  const int = (at: number): number => (le ? h.readInt32LE(at) : h.readInt32BE(at));
  return { nx: int(0), ny: int(4), nz: int(8), mode: int(12), nsymbt: int(92) };
}

function plausible(r: RawHeader): boolean {
  return r.nx > 0 && r.ny > 0 && r.nz > 0 && r.nx <= MAX_SIDE && r.ny <= MAX_SIDE && r.nz <= MAX_FRAMES && r.nsymbt >= 0 && (MODES.has(r.mode) || (r.mode >= 0 && r.mode < 256));
}

/** MACHST (0x44 little, 0x11 big) when it makes sense of the header; else whichever order does. */
function byteOrder(h: Buffer): boolean {
  const stamp = h[212];
  const declared = stamp === 0x44 || stamp === 0x41 ? true : stamp === 0x11 ? false : undefined;
  if (declared !== undefined && plausible(rawHeader(h, declared))) return declared;
  if (plausible(rawHeader(h, true))) return true;
  if (plausible(rawHeader(h, false))) return false;
  return declared ?? true;
}

export async function readMrcHeader(file: string): Promise<MrcHeader> {
  const fh = await fs.open(file, 'r');
  try {
    const size = (await fh.stat()).size;
    if (size < MRC_HEADER_BYTES) throw invalid(file, `truncated: ${size} bytes, shorter than the ${MRC_HEADER_BYTES}-byte MRC header`);
    const h = Buffer.alloc(MRC_HEADER_BYTES);
    await fh.read(h, 0, MRC_HEADER_BYTES, 0);
    return parseMrcHeader(file, h, size);
  } finally {
    await fh.close();
  }
}

/** The header in `h`, checked against the file's `size`. */
export function parseMrcHeader(file: string, h: Buffer, size: number): MrcHeader {
  const le = byteOrder(h);
  const r = rawHeader(h, le);
  const float = (at: number): number => (le ? h.readFloatLE(at) : h.readFloatBE(at));
  const int = (at: number): number => (le ? h.readInt32LE(at) : h.readInt32BE(at));
  if (!(r.nx > 0 && r.ny > 0 && r.nz > 0)) throw invalid(file, `impossible dimensions ${r.nx}x${r.ny}x${r.nz}`);
  if (r.nx > MAX_SIDE || r.ny > MAX_SIDE || r.nz > MAX_FRAMES) throw invalid(file, `absurd dimensions ${r.nx}x${r.ny}x${r.nz}`);
  if (!MODES.has(r.mode)) throw unsupported(file, `unsupported MRC mode ${r.mode} (supported: 0, 1, 2, 6, 12, 101)`);
  if (r.nsymbt < 0) throw invalid(file, `negative extended header size NSYMBT=${r.nsymbt}`);
  const mode = r.mode as MrcMode;
  const frameBytes = mrcFrameBytes(r.nx, r.ny, mode);
  const dataOffset = MRC_HEADER_BYTES + r.nsymbt;
  const expected = dataOffset + r.nz * frameBytes;
  if (size < expected) throw invalid(file, `truncated: ${size} bytes, but the header (${r.nx}x${r.ny}x${r.nz}, mode ${mode}, ${r.nsymbt} extended header bytes) needs ${expected}`);
  if (size > expected) throw invalid(file, `${size} bytes, but the header (${r.nx}x${r.ny}x${r.nz}, mode ${mode}, ${r.nsymbt} extended header bytes) accounts for only ${expected}`);
  const mx = int(28);
  const cellX = float(40);
  const imod = int(152) === IMOD_STAMP;
  const labelCount = Math.max(0, Math.min(10, int(220)));
  const labels: string[] = [];
  for (let i = 0; i < labelCount; i++) labels.push(h.toString('latin1', 224 + i * 80, 304 + i * 80).replace(/[\0 ]+$/, ''));
  return {
    width: r.nx,
    height: r.ny,
    frames: r.nz,
    mode,
    littleEndian: le,
    unsignedBytes: mode === 0 && imod && (int(156) & 1) === 0,
    pixelSizeA: mx > 0 && cellX > 0 && isFinite(cellX) ? cellX / mx : undefined,
    extendedBytes: r.nsymbt,
    extendedType: h.toString('latin1', 104, 108).replace(/\0+$/, ''),
    dataOffset,
    frameBytes,
    labels,
  };
}

/** Frame `z` (0-based) as float32, row 0 first. */
export async function readMrcFrame(file: string, header: MrcHeader, z: number): Promise<Float32Array> {
  const fh = await fs.open(file, 'r');
  try {
    return await readFrameFrom(fh, file, header, z);
  } finally {
    await fh.close();
  }
}

/** Every frame in order, one in memory at a time. */
export async function* readMrcFrames(file: string, header?: MrcHeader): AsyncGenerator<Float32Array> {
  const h = header ?? (await readMrcHeader(file));
  const fh = await fs.open(file, 'r');
  try {
    for (let z = 0; z < h.frames; z++) yield await readFrameFrom(fh, file, h, z);
  } finally {
    await fh.close();
  }
}

async function readFrameFrom(fh: fs.FileHandle, file: string, h: MrcHeader, z: number): Promise<Float32Array> {
  if (!isInteger(z) || z < 0 || z >= h.frames) throw new RangeError(`${file}: no frame ${z} (the movie has ${h.frames})`);
  // Buffer.alloc (unlike allocUnsafe) never shares a pool, so the typed views below are aligned.
  const buf = Buffer.alloc(h.frameBytes);
  const at = h.dataOffset + z * h.frameBytes;
  let done = 0;
  while (done < buf.length) {
    const { bytesRead } = await fh.read(buf, done, buf.length - done, at + done);
    if (bytesRead === 0) throw invalid(file, `truncated: frame ${z} ends at ${at + buf.length} but the file ends at ${at + done}`);
    done += bytesRead;
  }
  return decodeFrame(buf, h);
}

function decodeFrame(buf: Buffer, h: MrcHeader): Float32Array {
  const n = h.width * h.height;
  const out = new Float32Array(n);
  const swap = h.littleEndian !== HOST_LE;
  switch (h.mode) {
    case 0:
      out.set(h.unsignedBytes ? new Uint8Array(buf.buffer, 0, n) : new Int8Array(buf.buffer, 0, n));
      break;
    case 1:
      out.set(new Int16Array((swap ? buf.swap16() : buf).buffer, 0, n));
      break;
    case 6:
      out.set(new Uint16Array((swap ? buf.swap16() : buf).buffer, 0, n));
      break;
    case 2:
      out.set(new Float32Array((swap ? buf.swap32() : buf).buffer, 0, n));
      break;
    case 12: {
      const bits = new Uint16Array((swap ? buf.swap16() : buf).buffer, 0, n);
      const table = float16Table();
      for (let i = 0; i < n; i++) out[i] = table[bits[i] as number] as number;
      break;
    }
    case 101: {
      const rowBytes = ceil(h.width / 2);
      for (let y = 0; y < h.height; y++) {
        for (let x = 0; x < h.width; x++) {
          const b = buf[y * rowBytes + (x >> 1)] as number;
          out[y * h.width + x] = x & 1 ? b >> 4 : b & 0x0f;
        }
      }
      break;
    }
  }
  return out;
}

export type Frame = ArrayLike<number>;

export interface MrcWriteOptions {
  width: number;
  height: number;
  frames: Iterable<Frame> | AsyncIterable<Frame>;
  mode: MrcMode;
  pixelSizeA?: number;
  /** Up to 10 labels of up to 80 latin1 characters each. */
  labels?: readonly string[];
  /** Written as the extended header (NSYMBT bytes), with `extendedType` as EXTTYP. */
  extendedHeader?: Uint8Array;
  extendedType?: string;
  /** Little-endian unless false (big-endian is for reading tests and old machines). */
  littleEndian?: boolean;
}

/**
 * Writes frames as they come; NZ, the pixel range and the mean go into the header once the
 * last one is written. On any error the partial file is removed.
 */
export async function writeMrc(file: string, o: MrcWriteOptions): Promise<{ frames: number; bytes: number }> {
  const labels = o.labels ?? [];
  if (labels.length > 10 || labels.some((l) => l.length > 80)) throw new RangeError('MRC labels: at most 10, of at most 80 characters');
  if (!(o.width > 0 && o.height > 0 && o.width <= MAX_SIDE && o.height <= MAX_SIDE)) throw new RangeError(`impossible frame size ${o.width}x${o.height}`);
  if (!MODES.has(o.mode)) throw unsupported(file, `cannot write MRC mode ${o.mode as number}`);
  const le = o.littleEndian ?? true;
  const extended = o.extendedHeader ?? new Uint8Array(0);
  const stats = { min: Infinity, max: -Infinity, sum: 0, sumSq: 0, count: 0 };
  const fh = await fs.open(file, 'w');
  let frames = 0;
  let at = MRC_HEADER_BYTES + extended.length;
  try {
    await fh.write(extended, 0, extended.length, MRC_HEADER_BYTES);
    for await (const frame of o.frames) {
      if (frame.length !== o.width * o.height) throw new RangeError(`${file}: frame ${frames} has ${frame.length} pixels, not ${o.width}x${o.height}`);
      const data = encodeFrame(file, frame, o.width, o.height, o.mode, le, frames, stats);
      await fh.write(data, 0, data.length, at);
      at += data.length;
      frames++;
    }
    if (frames === 0) throw new RangeError(`${file}: no frames to write`);
    const header = buildHeader({ ...o, labels, littleEndian: le, frames, extendedBytes: extended.length, stats });
    await fh.write(header, 0, header.length, 0);
    await fh.close();
  } catch (err) {
    await fh.close();
    await fs.rm(file, { force: true });
    throw err;
  }
  return { frames, bytes: at };
}

interface Stats {
  min: number;
  max: number;
  sum: number;
  sumSq: number;
  count: number;
}

const RANGES: Readonly<Record<number, [number, number]>> = { 0: [-128, 127], 1: [-32768, 32767], 6: [0, 65535], 101: [0, 15] };

function encodeFrame(file: string, frame: Frame, width: number, height: number, mode: MrcMode, le: boolean, z: number, stats: Stats): Buffer {
  const n = width * height;
  const buf = Buffer.alloc(mrcFrameBytes(width, height, mode));
  const range = RANGES[mode];
  for (let i = 0; i < n; i++) {
    const v = frame[i] as number;
    if (range && !(isInteger(v) && v >= range[0] && v <= range[1])) {
      throw new AppError(`${file}: frame ${z} pixel (${i % width}, ${floor(i / width)}) is ${v}, which MRC mode ${mode} cannot hold (integers ${range[0]}..${range[1]})`, { code: 'mrc_value', status: 422 });
    }
    if (!isNaN(v)) {
      if (v < stats.min) stats.min = v;
      if (v > stats.max) stats.max = v;
      stats.sum += v;
      stats.sumSq += v * v;
      stats.count++;
    }
  }
  const swap = le !== HOST_LE;
  switch (mode) {
    case 0:
      new Int8Array(buf.buffer, 0, n).set(frame);
      return buf;
    case 1:
      new Int16Array(buf.buffer, 0, n).set(frame);
      return swap ? buf.swap16() : buf;
    case 6:
      new Uint16Array(buf.buffer, 0, n).set(frame);
      return swap ? buf.swap16() : buf;
    case 2:
      new Float32Array(buf.buffer, 0, n).set(frame);
      return swap ? buf.swap32() : buf;
    case 12: {
      const bits = new Uint16Array(buf.buffer, 0, n);
      const f32 = frame instanceof Float32Array ? frame : Float32Array.from(frame);
      const u32 = new Uint32Array(f32.buffer, f32.byteOffset, n);
      for (let i = 0; i < n; i++) {
        // Values in float16's normal range (nearly all of an image) inline toFloat16Bits's
        // main path: a function call per pixel was most of the cost of writing a sum.
        const x = u32[i] as number;
        const e = (x >>> 23) & 0xff;
        if (e < 113 || e > 142) {
          bits[i] = toFloat16Bits(f32[i] as number);
          continue;
        }
        let half = ((x >>> 16) & 0x8000) | ((e - 112) << 10) | ((x >>> 13) & 0x3ff);
        const rest = x & 0x1fff;
        if (rest > 0x1000 || (rest === 0x1000 && (half & 1) === 1)) half++;
        bits[i] = half;
      }
      return swap ? buf.swap16() : buf;
    }
    case 101: {
      const rowBytes = ceil(width / 2);
      for (let y = 0; y < height; y++) {
        for (let x = 0; x < width; x++) {
          const at = y * rowBytes + (x >> 1);
          buf[at] = (buf[at] as number) | ((frame[y * width + x] as number) << (x & 1 ? 4 : 0));
        }
      }
      return buf;
    }
  }
}

interface HeaderSpec {
  width: number;
  height: number;
  frames: number;
  mode: MrcMode;
  pixelSizeA?: number;
  labels: readonly string[];
  extendedBytes: number;
  extendedType?: string;
  littleEndian: boolean;
  stats: Stats;
}

/** An image stack (ISPG 0); DMAX < DMIN and RMS < 0 say "not computed" when every pixel was NaN. */
function buildHeader(s: HeaderSpec): Buffer {
  const h = Buffer.alloc(MRC_HEADER_BYTES);
  const int = (v: number, at: number): number => (s.littleEndian ? h.writeInt32LE(v, at) : h.writeInt32BE(v, at));
  const float = (v: number, at: number): number => (s.littleEndian ? h.writeFloatLE(v, at) : h.writeFloatBE(v, at));
  const dims = [s.width, s.height, s.frames];
  [...dims, s.mode].forEach((v, i) => int(v, i * 4));
  dims.forEach((v, i) => int(v, 28 + i * 4));
  dims.forEach((v, i) => float(v * (s.pixelSizeA ?? 0), 40 + i * 4));
  [90, 90, 90].forEach((v, i) => float(v, 52 + i * 4));
  [1, 2, 3].forEach((v, i) => int(v, 64 + i * 4));
  const { min, max, sum, sumSq, count } = s.stats;
  const mean = count > 0 ? sum / count : -2;
  float(count > 0 ? min : 0, 76);
  float(count > 0 ? max : -1, 80);
  float(mean, 84);
  int(s.extendedBytes, 92);
  if (s.extendedType) h.write(s.extendedType.slice(0, 4), 104, 'latin1');
  int(20140, 108);
  h.write('MAP ', 208, 'latin1');
  Buffer.from(s.littleEndian ? [0x44, 0x44, 0, 0] : [0x11, 0x11, 0, 0]).copy(h, 212);
  float(count > 0 ? sqrt(Math.max(0, sumSq / count - mean * mean)) : -1, 216);
  int(s.labels.length, 220);
  s.labels.forEach((label, i) => h.write(label.padEnd(80, ' '), 224 + i * 80, 'latin1'));
  return h;
}
