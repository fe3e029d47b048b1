/**
 * A movie opened for the stages: MRC or TIFF, a frame at a time, gain-corrected, checked.
 *
 * Frames of 8- and 16-bit MRC movies come back as views of the raw bytes (no float32 copy of
 * 16 M pixels unless a gain reference forces one), which is what lets two 4096x4096x40 movies
 * stream through two threads at once. A returned frame is only valid until the next read.
 *
 * Everything wrong with the movie itself becomes a BadMovieError (code `bad_movie`), which
 * the pipeline does not retry: unsupported modes, header sizes that disagree with the file,
 * NaNs, all-zero frames, single frames, absurd pixel sizes, a gain reference of the wrong size.
 */
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { AppError } from '@cloudlet/core';
import { applyGain, type GainImage, orientGain } from './gain';
import { type MrcHeader, readMrcFrame, readMrcHeader } from './mrc';
import type { GainOptions, Optics } from './stage-types';
import { readTiffFrame, readTiffHeader, type TiffInfo } from './tiff';

export class BadMovieError extends AppError {
  constructor(message: string, cause?: unknown) {
    super(message, { code: 'bad_movie', status: 422, cause });
    this.name = 'BadMovieError';
  }
}

/** Pixel sizes outside this range (A) are header garbage or a typo, not a microscope. */
export const PIXEL_SIZE_RANGE_A = [0.2, 20] as const;

/** The reader's own refusals (mrc.ts, tiff.ts, gain.ts) are all the movie's fault. */
const MOVIE_FAULTS = new Set(['mrc_invalid', 'mrc_unsupported', 'mrc_value', 'tiff_invalid', 'tiff_unsupported', 'eer_unsupported', 'gain_mismatch']);

/** Runs `fn`, turning the readers' format errors into BadMovieError. */
export async function asBadMovie<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if (err instanceof AppError && MOVIE_FAULTS.has(err.code)) throw new BadMovieError(err.message, err);
    throw err;
  }
}

export type RawFrame = Uint8Array | Int8Array | Int16Array | Uint16Array | Float32Array;

export interface Movie {
  file: string;
  width: number;
  height: number;
  frames: number;
  pixelSize_A: number;
  /** Size of the movie file. */
  bytes: number;
  /** Frame z, gain applied, checked for NaN and all zeros; valid until the next call. */
  frame(z: number): Promise<RawFrame>;
  close(): Promise<void>;
}

const HOST_LE = os.endianness() === 'LE';

function isTiff(file: string): boolean {
  return /\.(tiff?|eer)$/i.test(file);
}

export async function openMovie(file: string, optics: Optics): Promise<Movie> {
  const bytes = (await fs.stat(file)).size;
  if (isTiff(file)) return asBadMovie(() => openTiff(file, bytes, optics));
  return asBadMovie(() => openMrc(file, bytes, optics));
}

function resolvePixelSize(file: string, optics: Optics, header: number | undefined): number {
  // Headers hold float32: 0.83 comes back as 0.8299999833; six digits is what was meant.
  const p = optics.pixelSize_A ?? (header === undefined ? undefined : Number(header.toPrecision(6)));
  if (p === undefined) throw new BadMovieError(`${file}: no pixel size in the header and none configured (optics pixel size)`);
  const [lo, hi] = PIXEL_SIZE_RANGE_A;
  if (!(p >= lo && p <= hi)) throw new BadMovieError(`${file}: pixel size ${p} A is outside ${lo}-${hi} A${optics.pixelSize_A === undefined ? ' (from the header: set the optics pixel size)' : ''}`);
  return p;
}

function checkShape(file: string, width: number, height: number, frames: number): void {
  if (frames < 2) throw new BadMovieError(`${file}: ${frames} frame: a movie needs at least 2 frames to align`);
  if (width < 64 || height < 64) throw new BadMovieError(`${file}: ${width}x${height} frames are too small to process (at least 64x64)`);
}

async function openMrc(file: string, bytes: number, optics: Optics): Promise<Movie> {
  const h = await readMrcHeader(file);
  checkShape(file, h.width, h.height, h.frames);
  const pixelSize_A = resolvePixelSize(file, optics, h.pixelSizeA);
  const gain = optics.gain ? await loadGain(optics.gain, h.width, h.height) : undefined;
  const fh = await fs.open(file, 'r');
  const raw = rawView(h);
  const read = async (z: number): Promise<RawFrame> => {
    if (!raw) return readMrcFrame(file, h, z);
    const at = h.dataOffset + z * h.frameBytes;
    let done = 0;
    while (done < raw.buffer.length) {
      const { bytesRead } = await fh.read(raw.buffer, done, raw.buffer.length - done, at + done);
      if (bytesRead === 0) throw new BadMovieError(`${file}: truncated in frame ${z}`);
      done += bytesRead;
    }
    return raw.view;
  };
  return movie(file, h.width, h.height, h.frames, pixelSize_A, bytes, read, gain, () => fh.close());
}

/** A reusable buffer and typed view for modes whose bytes are the pixels (host byte order). */
function rawView(h: MrcHeader): { buffer: Buffer; view: RawFrame } | undefined {
  const n = h.width * h.height;
  const buffer = Buffer.alloc(h.frameBytes);
  if (h.mode === 0) return { buffer, view: h.unsignedBytes ? new Uint8Array(buffer.buffer, 0, n) : new Int8Array(buffer.buffer, 0, n) };
  if (h.littleEndian !== HOST_LE) return undefined;
  if (h.mode === 1) return { buffer, view: new Int16Array(buffer.buffer, 0, n) };
  if (h.mode === 6) return { buffer, view: new Uint16Array(buffer.buffer, 0, n) };
  if (h.mode === 2) return { buffer, view: new Float32Array(buffer.buffer, 0, n) };
  return undefined;
}

async function openTiff(file: string, bytes: number, optics: Optics): Promise<Movie> {
  const info: TiffInfo = await readTiffHeader(file);
  checkShape(file, info.width, info.height, info.pages.length);
  const pixelSize_A = resolvePixelSize(file, optics, undefined);
  const gain = optics.gain ? await loadGain(optics.gain, info.width, info.height) : undefined;
  const read = (z: number): Promise<RawFrame> => readTiffFrame(file, info, z);
  return movie(file, info.width, info.height, info.pages.length, pixelSize_A, bytes, read, gain, () => Promise.resolve());
}

function movie(file: string, width: number, height: number, frames: number, pixelSize_A: number, bytes: number, read: (z: number) => Promise<RawFrame>, gain: GainImage | undefined, close: () => Promise<void>): Movie {
  const gained = gain ? new Float32Array(width * height) : undefined;
  return {
    file, width, height, frames, pixelSize_A, bytes, close,
    async frame(z) {
      let f = await asBadMovie(() => read(z));
      if (gained && gain) {
        gained.set(f);
        f = applyGain(gained, width, height, gain);
      }
      checkFrame(file, f, z, width);
      return f;
    },
  };
}

/** NaN anywhere, or nothing but zeros, means a broken acquisition or a corrupt file. */
function checkFrame(file: string, f: RawFrame, z: number, width: number): void {
  if (f instanceof Float32Array) {
    for (let i = 0; i < f.length; i++) {
      const v = f[i] as number;
      if (v !== v) throw new BadMovieError(`${file}: frame ${z} has NaN at pixel (${i % width}, ${Math.floor(i / width)})`);
    }
  }
  // Counting data has its first non-zero pixel within a few pixels: this stops at once.
  for (let i = 0; i < f.length; i++) if (f[i] !== 0) return;
  throw new BadMovieError(`${file}: frame ${z} is all zeros`);
}

/** The gain reference (first frame of an MRC or TIFF), oriented as configured, checked. */
export async function loadGain(g: GainOptions, width: number, height: number): Promise<GainImage> {
  const image = await asBadMovie(async () => {
    if (isTiff(g.file)) {
      const info = await readTiffHeader(g.file);
      return { data: await readTiffFrame(g.file, info, 0), width: info.width, height: info.height };
    }
    const h = await readMrcHeader(g.file);
    return { data: await readMrcFrame(g.file, h, 0), width: h.width, height: h.height };
  });
  for (const v of image.data) if (!Number.isFinite(v)) throw new BadMovieError(`gain reference ${path.basename(g.file)} holds ${v}`);
  // The contract counts counter-clockwise quarter turns; gain.ts rotates clockwise in degrees.
  const rotate = ((4 - g.rotate) % 4) * 90 as 0 | 90 | 180 | 270;
  const oriented = orientGain(image, { rotate, flipX: g.flipX, flipY: g.flipY });
  if (oriented.width !== width || oriented.height !== height) {
    throw new BadMovieError(`gain reference ${path.basename(g.file)} is ${oriented.width}x${oriented.height} after orienting, but the movie frames are ${width}x${height}`);
  }
  return oriented;
}
