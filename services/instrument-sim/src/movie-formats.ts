/**
 * MRC and TIFF movies as a sequence of byte pieces in file order, generated a band of rows at a
 * time: writeMovie paces them onto disk, and a 4096x4096x40 movie never exists in memory.
 * Each piece says how far through the movie it ends (0..1), which is what pacing is by.
 */
import os from 'node:os';
import type { FrameSource } from './exposure';
import { LzwEncoder } from './lzw';

export interface Piece {
  data: Buffer;
  /** Fraction of the movie written once this piece is. */
  progress: number;
}

/** What the microscope was doing, recorded in every movie. */
export interface MovieMetadata {
  defocusUm: number;
  doseRate: number;
  driftPxPerFrame: readonly [number, number];
  frameSeconds: number;
  magnification: number;
  pixelSizeA: number;
  stageUm: readonly [number, number];
}

export type MrcWriteMode = 0 | 1;
export type TiffCompression = 'none' | 'lzw';

/** About 256 K pixels a piece: big enough to write efficiently, small enough to pace smoothly. */
const BAND_PIXELS = 1 << 18;
const LITTLE_ENDIAN_HOST = os.endianness() === 'LE';
const EMPTY = Buffer.alloc(0);

/** `key=value` in a fixed order; MRC labels and the TIFF description say the same things. */
export function metadataFields(m: MovieMetadata): [string, string][] {
  return [
    ['defocus_um', decimal(m.defocusUm)],
    ['dose_e_px_s', String(m.doseRate)],
    ['drift_px_per_frame', m.driftPxPerFrame.map(decimal).join(',')],
    ['frame_s', decimal(m.frameSeconds)],
    ['mag', String(m.magnification)],
    ['pixel_A', decimal(m.pixelSizeA)],
    ['stage_um', m.stageUm.map((v) => String(Math.round(v * 100) / 100)).join(',')],
  ];
}

function decimal(v: number): string {
  return Number.isInteger(v) ? v.toFixed(1) : String(Math.round(v * 1e4) / 1e4);
}

/** `cloudlet k=v ...` labels of at most 80 characters; a reader joins every label that starts with `cloudlet `. */
export function mrcLabels(m: MovieMetadata): string[] {
  const labels: string[] = [];
  let current = 'cloudlet';
  for (const [k, v] of metadataFields(m)) {
    const token = ` ${k}=${v}`;
    if (current.length + token.length > 80) {
      labels.push(current);
      current = 'cloudlet';
    }
    current += token;
  }
  labels.push(current);
  if (labels.length > 10) throw new RangeError('movie metadata does not fit in 10 MRC labels');
  return labels;
}

export function tiffDescription(m: MovieMetadata): string {
  return JSON.stringify({
    source: 'cloudlet instrument-sim',
    defocus_um: m.defocusUm,
    dose_e_px_s: m.doseRate,
    drift_px_per_frame: m.driftPxPerFrame,
    frame_s: m.frameSeconds,
    mag: m.magnification,
    pixel_A: m.pixelSizeA,
    stage_um: m.stageUm,
  });
}

export const MRC_HEADER_BYTES = 1024;

/** The MRC2014 header for a movie: an image stack (ISPG 0), no extended header, little-endian. */
export function mrcHeader(width: number, height: number, frames: number, mode: MrcWriteMode, m: MovieMetadata): Buffer {
  const h = Buffer.alloc(MRC_HEADER_BYTES);
  [width, height, frames, mode].forEach((v, i) => h.writeInt32LE(v, i * 4));
  [width, height, frames].forEach((v, i) => h.writeInt32LE(v, 28 + i * 4));
  [width, height, frames].forEach((v, i) => h.writeFloatLE(v * m.pixelSizeA, 40 + i * 4));
  [90, 90, 90].forEach((v, i) => h.writeFloatLE(v, 52 + i * 4));
  [1, 2, 3].forEach((v, i) => h.writeInt32LE(v, 64 + i * 4));
  // Written before the pixels are known: DMAX < DMIN, DMEAN below both and RMS < 0 say "not computed".
  h.writeFloatLE(0, 76);
  h.writeFloatLE(-1, 80);
  h.writeFloatLE(-2, 84);
  h.writeInt32LE(0, 88);
  h.writeInt32LE(0, 92);
  h.writeInt32LE(20140, 108);
  h.write('MAP ', 208, 'latin1');
  Buffer.from([0x44, 0x44, 0, 0]).copy(h, 212);
  h.writeFloatLE(-1, 216);
  const labels = mrcLabels(m);
  h.writeInt32LE(labels.length, 220);
  labels.forEach((label, i) => h.write(label.padEnd(80, ' '), 224 + i * 80, 'latin1'));
  return h;
}

export function mrcBytes(width: number, height: number, frames: number, mode: MrcWriteMode): number {
  return MRC_HEADER_BYTES + frames * width * height * (mode === 1 ? 2 : 1);
}

export function* mrcPieces(source: FrameSource, mode: MrcWriteMode, m: MovieMetadata): Generator<Piece> {
  yield { data: mrcHeader(source.width, source.height, source.frames, mode, m), progress: 0 };
  for (const band of bands(source)) {
    const data = Buffer.alloc(band.counts.length * (mode === 1 ? 2 : 1));
    if (mode === 1) {
      const out = new Int16Array(data.buffer, data.byteOffset, band.counts.length);
      for (let i = 0; i < out.length; i++) out[i] = Math.min(32767, band.counts[i] as number);
      if (!LITTLE_ENDIAN_HOST) data.swap16();
    } else {
      const out = new Int8Array(data.buffer, data.byteOffset, band.counts.length);
      for (let i = 0; i < out.length; i++) out[i] = Math.min(127, band.counts[i] as number);
    }
    yield { data, progress: band.progress };
  }
}

/**
 * A classic little-endian TIFF, one 8-bit strip per page, laid out as a stream: header, then
 * per page its IFD (with the ImageDescription after the first), then its strip. Each IFD's
 * next-offset is known when it is written because its own strip is compressed first; a reader
 * of a half-written file finds an IFD or a strip past the end, never a dangling chain end.
 */
export function* tiffPieces(source: FrameSource, compression: TiffCompression, m: MovieMetadata): Generator<Piece> {
  const { width, height, frames } = source;
  const head = Buffer.alloc(8);
  head.write('II', 0, 'latin1');
  head.writeUInt16LE(42, 2);
  head.writeUInt32LE(8, 4);
  yield { data: head, progress: 0 };
  let at = 8;
  const description = Buffer.from(`${tiffDescription(m)}\0`, 'latin1');
  const frameBands = bands(source);
  let lzw: LzwEncoder | undefined;
  for (let page = 0; page < frames; page++) {
    // The IFD goes first and needs the strip's size: known for raw pixels, after compressing for LZW.
    const ifd = (stripBytes: number): Piece => {
      const extra = page === 0 ? pad(description) : EMPTY;
      const ifdBytes = 2 + (page === 0 ? 10 : 9) * 12 + 4;
      const stripAt = at + ifdBytes + extra.length;
      const next = page === frames - 1 ? 0 : stripAt + stripBytes + (stripBytes % 2);
      const entries = tiffIfd({ width, height, compression, stripAt, stripBytes, next, description: page === 0 ? { at: at + ifdBytes, length: description.length } : undefined });
      at = next;
      return { data: Buffer.concat([entries, extra]), progress: page / frames };
    };
    let last = page / frames;
    let stripBytes = width * height;
    if (compression === 'lzw') {
      lzw ??= new LzwEncoder();
      lzw.begin(width * height);
      for (let y = 0; y < height; ) {
        const band = frameBands.next().value as Band;
        lzw.push(toBytes(band.counts, new Uint8Array(band.counts.length)));
        y += band.counts.length / width;
        last = band.progress;
        // Nothing to write until the strip is whole, but a chance for the event loop.
        yield { data: EMPTY, progress: page / frames };
      }
      const data = lzw.end();
      stripBytes = data.length;
      yield ifd(stripBytes);
      yield { data, progress: last };
    } else {
      yield ifd(stripBytes);
      for (let y = 0; y < height; ) {
        const band = frameBands.next().value as Band;
        y += band.counts.length / width;
        last = band.progress;
        yield { data: toBytes(band.counts, Buffer.alloc(band.counts.length)), progress: last };
      }
    }
    if (stripBytes % 2) yield { data: Buffer.alloc(1), progress: last };
  }
}

interface IfdSpec {
  width: number;
  height: number;
  compression: TiffCompression;
  stripAt: number;
  stripBytes: number;
  next: number;
  description: { at: number; length: number } | undefined;
}

function tiffIfd(s: IfdSpec): Buffer {
  const SHORT = 3;
  const LONG = 4;
  const ASCII = 2;
  const entries: [number, number, number, number][] = [
    [256, LONG, 1, s.width],
    [257, LONG, 1, s.height],
    [258, SHORT, 1, 8],
    [259, SHORT, 1, s.compression === 'lzw' ? 5 : 1],
    [262, SHORT, 1, 1],
    ...(s.description ? [[270, ASCII, s.description.length, s.description.at] as [number, number, number, number]] : []),
    [273, LONG, 1, s.stripAt],
    [277, SHORT, 1, 1],
    [278, LONG, 1, s.height],
    [279, LONG, 1, s.stripBytes],
  ];
  const b = Buffer.alloc(2 + entries.length * 12 + 4);
  b.writeUInt16LE(entries.length, 0);
  entries.forEach(([tag, type, count, value], i) => {
    const at = 2 + i * 12;
    b.writeUInt16LE(tag, at);
    b.writeUInt16LE(type, at + 2);
    b.writeUInt32LE(count, at + 4);
    if (type === SHORT) b.writeUInt16LE(value, at + 8);
    else b.writeUInt32LE(value, at + 8);
  });
  b.writeUInt32LE(s.next, b.length - 4);
  return b;
}

/** TIFF wants every offset on a word boundary. */
function pad(b: Buffer): Buffer {
  return b.length % 2 ? Buffer.concat([b, Buffer.alloc(1)]) : b;
}

function toBytes<T extends Uint8Array>(counts: Uint16Array, out: T): T {
  for (let i = 0; i < counts.length; i++) out[i] = Math.min(255, counts[i] as number);
  return out;
}

interface Band {
  counts: Uint16Array;
  progress: number;
}

/** Every frame in bands of whole rows, in order. */
function* bands(source: FrameSource): Generator<Band> {
  const rows = Math.max(1, Math.floor(BAND_PIXELS / source.width));
  for (let f = 0; f < source.frames; f++) {
    for (let y = 0; y < source.height; y += rows) {
      const n = Math.min(rows, source.height - y);
      const counts = new Uint16Array(n * source.width);
      source.fill(f, y, counts);
      yield { counts, progress: (f + (y + n) / source.height) / source.frames };
    }
  }
}
