/**
 * TIFF movies (classic TIFF 6.0, one page per frame) read a page at a time into float32.
 * Strips or tiles; compression none, LZW, deflate (8 and the older 32946) and PackBits;
 * 4-bit (MSB first within the byte, as K3 super-resolution counts are), 8-, 16- and 32-bit
 * samples, unsigned or signed, 32-bit float; either byte order; predictor 2 (horizontal
 * differencing) for the integer sizes of 8 bits and up. EER, the Falcon's TIFF-wrapped event
 * format, is refused with a clear error rather than misread as an image.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import zlib from 'node:zlib';
import { AppError } from '@cloudlet/core';
import { lzwDecode } from './tiff-lzw';

export interface TiffPage {
  width: number;
  height: number;
  bitsPerSample: 4 | 8 | 16 | 32;
  /** 1 unsigned integer, 2 signed integer, 3 IEEE float. */
  sampleFormat: 1 | 2 | 3;
  compression: number;
  predictor: 1 | 2;
  layout: { kind: 'strips'; rowsPerStrip: number } | { kind: 'tiles'; tileWidth: number; tileLength: number };
  offsets: number[];
  byteCounts: number[];
}

export interface TiffInfo {
  littleEndian: boolean;
  /** Page 0's size; every page of a movie is checked to match it. */
  width: number;
  height: number;
  pages: TiffPage[];
}

const COMPRESSIONS: ReadonlyMap<number, string> = new Map([
  [1, 'none'],
  [5, 'LZW'],
  [8, 'deflate'],
  [32946, 'deflate'],
  [32773, 'PackBits'],
]);
const EER_COMPRESSIONS = new Set([65000, 65001, 65002]);
const MAX_SIDE = 65536;
const MAX_PAGES = 100_000;
/** Bytes per value of the integer field types: BYTE, SHORT, LONG. */
const TYPE_BYTES: ReadonlyMap<number, number> = new Map([
  [1, 1],
  [3, 2],
  [4, 4],
]);

function invalid(file: string, what: string, cause?: unknown): AppError {
  return new AppError(`${file}: ${what}`, { code: 'tiff_invalid', status: 422, cause });
}

function unsupported(file: string, what: string): AppError {
  return new AppError(`${file}: ${what}`, { code: 'tiff_unsupported', status: 422 });
}

export function eerNotSupported(file: string): AppError {
  return new AppError(`${file}: EER is not supported (convert EER movies to TIFF or MRC first)`, { code: 'eer_unsupported', status: 422 });
}

class TiffReader {
  constructor(
    readonly file: string,
    readonly fh: fs.FileHandle,
    readonly size: number,
    readonly le: boolean,
  ) {}

  async bytes(offset: number, length: number, what: string): Promise<Buffer> {
    if (offset + length > this.size) throw invalid(this.file, `truncated: ${what} at ${offset}..${offset + length} lies past the end of the file (${this.size} bytes)`);
    const buf = Buffer.alloc(length);
    let done = 0;
    while (done < length) {
      const { bytesRead } = await this.fh.read(buf, done, length - done, offset + done);
      if (bytesRead === 0) throw invalid(this.file, `truncated: ${what} ends at ${offset + length}, the file at ${offset + done}`);
      done += bytesRead;
    }
    return buf;
  }

  u16(b: Buffer, at: number): number {
    return this.le ? b.readUInt16LE(at) : b.readUInt16BE(at);
  }

  u32(b: Buffer, at: number): number {
    return this.le ? b.readUInt32LE(at) : b.readUInt32BE(at);
  }
}

async function withFile<T>(file: string, le: boolean | undefined, fn: (r: TiffReader) => Promise<T>): Promise<T> {
  const fh = await fs.open(file, 'r');
  try {
    const size = (await fh.stat()).size;
    if (le !== undefined) return await fn(new TiffReader(file, fh, size, le));
    if (size < 8) throw invalid(file, `truncated: ${size} bytes, shorter than the 8-byte TIFF header`);
    const head = Buffer.alloc(8);
    await fh.read(head, 0, 8, 0);
    const order = head.toString('latin1', 0, 2);
    if (order !== 'II' && order !== 'MM') throw invalid(file, 'not a TIFF file (no II or MM byte order mark)');
    return await fn(new TiffReader(file, fh, size, order === 'II'));
  } finally {
    await fh.close();
  }
}

export async function readTiffHeader(file: string): Promise<TiffInfo> {
  if (path.extname(file).toLowerCase() === '.eer') throw eerNotSupported(file);
  return withFile(file, undefined, async (r) => {
    const head = await r.bytes(0, 8, 'header');
    const version = r.u16(head, 2);
    if (version === 43) throw unsupported(file, 'BigTIFF is not supported');
    if (version !== 42) throw invalid(file, `not a TIFF file (version ${version}, not 42)`);
    const pages: TiffPage[] = [];
    const seen = new Set<number>();
    for (let offset = r.u32(head, 4); offset !== 0; ) {
      if (seen.has(offset)) throw invalid(file, `the IFD chain loops back to offset ${offset} after ${seen.size} IFDs`);
      if (seen.size >= MAX_PAGES) throw invalid(file, `more than ${MAX_PAGES} IFDs`);
      seen.add(offset);
      const { page, next } = await readIfd(r, offset, pages.length);
      pages.push(page);
      offset = next;
    }
    const first = pages[0];
    if (!first) throw invalid(file, 'no IFDs: the TIFF has no pages');
    const odd = pages.findIndex((p) => p.width !== first.width || p.height !== first.height);
    if (odd >= 0) throw invalid(file, `page ${odd} is ${pages[odd]?.width}x${pages[odd]?.height}, page 0 ${first.width}x${first.height}: not a movie`);
    return { littleEndian: r.le, width: first.width, height: first.height, pages };
  });
}

async function readIfd(r: TiffReader, offset: number, index: number): Promise<{ page: TiffPage; next: number }> {
  const what = `IFD ${index}`;
  const count = r.u16(await r.bytes(offset, 2, what), 0);
  const body = await r.bytes(offset + 2, count * 12 + 4, `${what} entries`);
  const tags = new Map<number, number[]>();
  for (let i = 0; i < count; i++) {
    const at = i * 12;
    const tag = r.u16(body, at);
    const size = TYPE_BYTES.get(r.u16(body, at + 2));
    if (size === undefined) continue; // Not an integer tag: nothing read here needs it.
    const n = r.u32(body, at + 4);
    const data = size * n <= 4 ? body.subarray(at + 8, at + 12) : await r.bytes(r.u32(body, at + 8), size * n, `${what} tag ${tag}`);
    const values: number[] = [];
    for (let k = 0; k < n; k++) values.push(size === 1 ? (data[k] as number) : size === 2 ? r.u16(data, k * 2) : r.u32(data, k * 4));
    tags.set(tag, values);
  }
  const page = pageOf(r, tags, index);
  return { page, next: r.u32(body, count * 12) };
}

function pageOf(r: TiffReader, tags: Map<number, number[]>, index: number): TiffPage {
  const file = r.file;
  const one = (tag: number, name: string, fallback?: number): number => {
    const v = tags.get(tag)?.[0] ?? fallback;
    if (v === undefined) throw invalid(file, `page ${index} has no ${name} (tag ${tag})`);
    return v;
  };
  const width = one(256, 'ImageWidth');
  const height = one(257, 'ImageLength');
  if (width < 1 || height < 1 || width > MAX_SIDE || height > MAX_SIDE) throw invalid(file, `page ${index} has impossible dimensions ${width}x${height}`);
  const compression = one(259, 'Compression', 1);
  if (EER_COMPRESSIONS.has(compression)) throw eerNotSupported(file);
  if (!COMPRESSIONS.has(compression)) throw unsupported(file, `page ${index}: compression ${compression} is not supported (none, LZW, deflate, PackBits are)`);
  const spp = one(277, 'SamplesPerPixel', 1);
  if (spp !== 1) throw unsupported(file, `page ${index} has ${spp} samples per pixel; movies are greyscale (1)`);
  const bits = one(258, 'BitsPerSample', 1);
  const format = one(339, 'SampleFormat', 1);
  if (![4, 8, 16, 32].includes(bits)) throw unsupported(file, `page ${index}: ${bits}-bit samples are not supported (4, 8, 16, 32 are)`);
  if (![1, 2, 3].includes(format) || (format === 3 && bits !== 32)) throw unsupported(file, `page ${index}: SampleFormat ${format} with ${bits}-bit samples is not supported`);
  const predictor = one(317, 'Predictor', 1);
  if (predictor !== 1 && !(predictor === 2 && bits >= 8 && format !== 3)) throw unsupported(file, `page ${index}: predictor ${predictor} with ${bits}-bit ${format === 3 ? 'float' : 'integer'} samples is not supported`);
  if (one(266, 'FillOrder', 1) !== 1) throw unsupported(file, `page ${index}: FillOrder 2 (bits reversed within bytes) is not supported`);
  const tiled = tags.has(324);
  const offsets = tags.get(tiled ? 324 : 273);
  const byteCounts = tags.get(tiled ? 325 : 279);
  if (!offsets || !byteCounts || offsets.length !== byteCounts.length) throw invalid(file, `page ${index} has ${offsets?.length ?? 'no'} ${tiled ? 'tile' : 'strip'} offsets and ${byteCounts?.length ?? 'no'} byte counts`);
  const layout: TiffPage['layout'] = tiled
    ? { kind: 'tiles', tileWidth: one(322, 'TileWidth'), tileLength: one(323, 'TileLength') }
    : { kind: 'strips', rowsPerStrip: Math.min(height, one(278, 'RowsPerStrip', height)) };
  const chunks = layout.kind === 'tiles' ? Math.ceil(width / layout.tileWidth) * Math.ceil(height / layout.tileLength) : Math.ceil(height / layout.rowsPerStrip);
  if (layout.kind === 'tiles' && (layout.tileWidth < 1 || layout.tileLength < 1)) throw invalid(file, `page ${index} has tiles of ${layout.tileWidth}x${layout.tileLength}`);
  if (offsets.length !== chunks) throw invalid(file, `page ${index} needs ${chunks} ${layout.kind} for ${width}x${height} but lists ${offsets.length}`);
  for (let i = 0; i < chunks; i++) {
    const end = (offsets[i] as number) + (byteCounts[i] as number);
    if (end > r.size) throw invalid(file, `truncated: page ${index} ${layout.kind === 'tiles' ? 'tile' : 'strip'} ${i} ends at ${end}, past the end of the file (${r.size} bytes)`);
  }
  return { width, height, bitsPerSample: bits as TiffPage['bitsPerSample'], sampleFormat: format as TiffPage['sampleFormat'], compression, predictor, layout, offsets, byteCounts };
}

/** Page `page` (0-based) as float32, row 0 first. */
export async function readTiffFrame(file: string, info: TiffInfo, page: number): Promise<Float32Array> {
  return withFile(file, info.littleEndian, (r) => readPage(r, info, page));
}

/** Every page in order, one in memory at a time. */
export async function* readTiffFrames(file: string, info?: TiffInfo): AsyncGenerator<Float32Array> {
  const i = info ?? (await readTiffHeader(file));
  for (let page = 0; page < i.pages.length; page++) yield await readTiffFrame(file, i, page);
}

async function readPage(r: TiffReader, info: TiffInfo, index: number): Promise<Float32Array> {
  const p = info.pages[index];
  if (!p) throw new RangeError(`${r.file}: no page ${index} (the movie has ${info.pages.length})`);
  const out = new Float32Array(p.width * p.height);
  const [cw, ch, across] = p.layout.kind === 'tiles' ? [p.layout.tileWidth, p.layout.tileLength, Math.ceil(p.width / p.layout.tileWidth)] : [p.width, p.layout.rowsPerStrip, 1];
  for (let i = 0; i < p.offsets.length; i++) {
    const x0 = (i % across) * cw;
    const y0 = Math.floor(i / across) * ch;
    // A last strip may hold fewer rows; tiles are always whole, padding included.
    const rows = p.layout.kind === 'tiles' ? ch : Math.min(ch, p.height - y0);
    const rowBytes = Math.ceil((cw * p.bitsPerSample) / 8);
    const what = `page ${index} ${p.layout.kind === 'tiles' ? 'tile' : 'strip'} ${i}`;
    const raw = await r.bytes(p.offsets[i] as number, p.byteCounts[i] as number, what);
    const data = decompress(r.file, raw, p.compression, rowBytes * rows, what);
    unpack(data, out, p, r.le, { x0, y0, cw, rowBytes, w: Math.min(cw, p.width - x0), h: Math.min(rows, p.height - y0) });
  }
  return out;
}

function decompress(file: string, raw: Buffer, compression: number, expected: number, what: string): Uint8Array {
  let data: Uint8Array;
  try {
    if (compression === 5) return lzwDecode(raw, expected);
    data = compression === 8 || compression === 32946 ? zlib.inflateSync(raw) : compression === 32773 ? unpackBits(raw, expected) : raw;
  } catch (err) {
    if (err instanceof AppError) throw invalid(file, `${what}: ${err.message}`, err);
    throw invalid(file, `${what}: cannot ${COMPRESSIONS.get(compression)}-decode: ${(err as Error).message}`, err);
  }
  if (data.length < expected) throw invalid(file, `${what} holds ${data.length} bytes after decompression, ${expected} expected`);
  return data;
}

/** PackBits (Apple): a header byte n, then n+1 literal bytes (n >= 0) or one byte repeated 1-n times. */
function unpackBits(src: Uint8Array, expected: number): Uint8Array {
  const out = new Uint8Array(expected);
  let pos = 0;
  for (let at = 0; at < src.length && pos < expected; ) {
    const n = ((src[at++] as number) << 24) >> 24;
    if (n >= 0) {
      out.set(src.subarray(at, at + n + 1).subarray(0, expected - pos), pos);
      pos += n + 1;
      at += n + 1;
    } else if (n !== -128) {
      out.fill(src[at++] as number, pos, Math.min(expected, pos + 1 - n));
      pos += 1 - n;
    }
  }
  return pos < expected ? out.subarray(0, pos) : out;
}

interface Region {
  x0: number;
  y0: number;
  /** Chunk width in pixels and bytes per chunk row (rows are padded to whole bytes). */
  cw: number;
  rowBytes: number;
  /** The part of the chunk inside the image. */
  w: number;
  h: number;
}

function unpack(data: Uint8Array, out: Float32Array, p: TiffPage, le: boolean, g: Region): void {
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const bits = p.bitsPerSample;
  const mask = bits === 32 ? 0x100000000 : 1 << bits;
  const signBit = mask / 2;
  const sample = (o: number, x: number): number => {
    if (bits === 4) {
      const b = data[o + (x >> 1)] as number;
      return x & 1 ? b & 0x0f : b >> 4;
    }
    if (bits === 8) return data[o + x] as number;
    if (bits === 16) return view.getUint16(o + x * 2, le);
    return p.sampleFormat === 3 ? view.getFloat32(o + x * 4, le) : view.getUint32(o + x * 4, le);
  };
  for (let y = 0; y < g.h; y++) {
    const o = y * g.rowBytes;
    const dst = (g.y0 + y) * p.width + g.x0;
    let prev = 0;
    for (let x = 0; x < g.w; x++) {
      let v = sample(o, x);
      if (p.predictor === 2) {
        v = (v + prev) % mask;
        prev = v;
      }
      out[dst + x] = p.sampleFormat === 2 && v >= signBit ? v - mask : v;
    }
  }
}
