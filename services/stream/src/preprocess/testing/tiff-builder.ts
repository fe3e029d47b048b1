/**
 * Small TIFF movies built byte by byte for the reader's tests, in every layout the reader
 * claims: strips or tiles, none / LZW / deflate / PackBits, 4- to 32-bit, either byte order,
 * predictor 2. Page data first, then each page's IFD; the IFD chain is patched at the end.
 */
import zlib from 'node:zlib';

export type TestCompression = 'none' | 'lzw' | 'deflate' | 'deflate-old' | 'packbits';

export interface TestTiff {
  width: number;
  height: number;
  pages: ArrayLike<number>[];
  bits: 4 | 8 | 16 | 32;
  sampleFormat?: 1 | 2 | 3;
  littleEndian?: boolean;
  compression?: TestCompression;
  predictor?: 1 | 2;
  rowsPerStrip?: number;
  tile?: { width: number; height: number };
}

const CODES: Record<TestCompression, number> = { none: 1, lzw: 5, deflate: 8, 'deflate-old': 32946, packbits: 32773 };
const SHORT = 3;
const LONG = 4;

export function buildTiff(s: TestTiff): Buffer {
  const le = s.littleEndian ?? true;
  const parts: Buffer[] = [];
  let at = 0;
  const add = (b: Buffer): number => {
    const start = at;
    parts.push(b);
    at += b.length;
    if (at % 2) add(Buffer.alloc(1));
    return start;
  };
  const head = Buffer.alloc(8);
  head.write(le ? 'II' : 'MM', 0, 'latin1');
  u16(head, 42, 2, le);
  add(head);
  const nextFields: number[] = [];
  for (const pixels of s.pages) {
    const chunks = chunksOf(s, pixels, le).map((c) => compress(c, s.compression ?? 'none'));
    const offsets = chunks.map(add);
    const entries: [number, number, number[]][] = [
      [256, LONG, [s.width]],
      [257, LONG, [s.height]],
      [258, SHORT, [s.bits]],
      [259, SHORT, [CODES[s.compression ?? 'none']]],
      [262, SHORT, [1]],
      [277, SHORT, [1]],
      [317, SHORT, [s.predictor ?? 1]],
      [339, SHORT, [s.sampleFormat ?? 1]],
      ...(s.tile
        ? ([
            [322, LONG, [s.tile.width]],
            [323, LONG, [s.tile.height]],
            [324, LONG, offsets],
            [325, LONG, chunks.map((c) => c.length)],
          ] as [number, number, number[]][])
        : ([
            [273, LONG, offsets],
            [278, LONG, [s.rowsPerStrip ?? s.height]],
            [279, LONG, chunks.map((c) => c.length)],
          ] as [number, number, number[]][])),
    ];
    entries.sort((a, b) => a[0] - b[0]);
    const ifd = Buffer.alloc(2 + entries.length * 12 + 4);
    u16(ifd, entries.length, 0, le);
    entries.forEach(([tag, type, values], i) => {
      const e = 2 + i * 12;
      u16(ifd, tag, e, le);
      u16(ifd, type, e + 2, le);
      u32(ifd, values.length, e + 4, le);
      const size = type === SHORT ? 2 : 4;
      const field = size * values.length <= 4 ? ifd.subarray(e + 8, e + 12) : Buffer.alloc(size * values.length);
      values.forEach((v, k) => (size === 2 ? u16(field, v, k * 2, le) : u32(field, v, k * 4, le)));
      if (size * values.length > 4) u32(ifd, add(field), e + 8, le);
    });
    const ifdAt = add(ifd);
    nextFields.push(ifdAt + ifd.length - 4);
    patch(parts, nextFields.length === 1 ? 4 : (nextFields[nextFields.length - 2] as number), ifdAt, le);
  }
  return Buffer.concat(parts);
}

/** Writes `value` as a u32 at absolute offset `at` among the parts. */
function patch(parts: Buffer[], at: number, value: number, le: boolean): void {
  let start = 0;
  for (const p of parts) {
    if (at < start + p.length) {
      u32(p, value, at - start, le);
      return;
    }
    start += p.length;
  }
  throw new RangeError(`offset ${at} is past the file`);
}

function u16(b: Buffer, v: number, at: number, le: boolean): void {
  if (le) b.writeUInt16LE(v, at);
  else b.writeUInt16BE(v, at);
}

function u32(b: Buffer, v: number, at: number, le: boolean): void {
  if (le) b.writeUInt32LE(v, at);
  else b.writeUInt32BE(v, at);
}

/** Raw (uncompressed) bytes of each strip or tile, predictor applied, rows padded to bytes. */
function chunksOf(s: TestTiff, pixels: ArrayLike<number>, le: boolean): Buffer[] {
  const [cw, ch] = s.tile ? [s.tile.width, s.tile.height] : [s.width, s.rowsPerStrip ?? s.height];
  const across = Math.ceil(s.width / cw);
  const count = across * Math.ceil(s.height / ch);
  const rowBytes = Math.ceil((cw * s.bits) / 8);
  const mask = s.bits === 32 ? 0x100000000 : 1 << s.bits;
  const out: Buffer[] = [];
  for (let i = 0; i < count; i++) {
    const x0 = (i % across) * cw;
    const y0 = Math.floor(i / across) * ch;
    const rows = s.tile ? ch : Math.min(ch, s.height - y0);
    const b = Buffer.alloc(rowBytes * rows);
    for (let y = 0; y < rows; y++) {
      let prev = 0;
      for (let x = 0; x < cw; x++) {
        const inside = x0 + x < s.width && y0 + y < s.height;
        const v = inside ? (pixels[(y0 + y) * s.width + x0 + x] as number) : 0;
        const o = y * rowBytes;
        if (s.sampleFormat === 3) {
          if (le) b.writeFloatLE(v, o + x * 4);
          else b.writeFloatBE(v, o + x * 4);
          continue;
        }
        const raw = (v + mask) % mask;
        const stored = s.predictor === 2 ? (raw - prev + mask) % mask : raw;
        prev = raw;
        if (s.bits === 4) b[o + (x >> 1)] = (b[o + (x >> 1)] as number) | (x & 1 ? stored : stored << 4);
        else if (s.bits === 8) b[o + x] = stored;
        else if (s.bits === 16) u16(b, stored, o + x * 2, le);
        else u32(b, stored, o + x * 4, le);
      }
    }
    out.push(b);
  }
  return out;
}

function compress(raw: Buffer, c: TestCompression): Buffer {
  if (c === 'lzw') return lzwEncode(raw);
  if (c === 'deflate' || c === 'deflate-old') return zlib.deflateSync(raw);
  if (c === 'packbits') return packBits(raw);
  return raw;
}

/** PackBits with runs of 3 or more repeated, the rest as literals of up to 128 bytes. */
function packBits(raw: Buffer): Buffer {
  const out: number[] = [];
  let i = 0;
  while (i < raw.length) {
    let run = 1;
    while (i + run < raw.length && run < 128 && raw[i + run] === raw[i]) run++;
    if (run >= 3) {
      out.push(257 - run, raw[i] as number);
      i += run;
      continue;
    }
    let n = 0;
    while (i + n < raw.length && n < 128 && !(raw[i + n] === raw[i + n + 1] && raw[i + n] === raw[i + n + 2])) n++;
    n = Math.max(1, n);
    out.push(n - 1, ...raw.subarray(i, i + n));
    i += n;
  }
  return Buffer.from(out);
}

/**
 * TIFF LZW as libtiff writes it: MSB-first codes, Clear first and when the table reaches
 * 4094 entries, the width growing as soon as the next code needs another bit (the decoder,
 * one code behind, sees it as "early change").
 */
export function lzwEncode(data: Uint8Array): Buffer {
  const bytes: number[] = [];
  let bits = 0;
  let count = 0;
  const put = (code: number, width: number): void => {
    bits = (bits << width) | code;
    count += width;
    while (count >= 8) {
      count -= 8;
      bytes.push((bits >>> count) & 0xff);
    }
    bits &= (1 << count) - 1;
  };
  const table = new Map<number, number>();
  let width = 9;
  let next = 258;
  const added = (): void => {
    next++;
    if (next === 4094) {
      put(256, width);
      table.clear();
      next = 258;
      width = 9;
    } else if (next > (1 << width) - 1) {
      width++;
    }
  };
  put(256, width);
  let prefix = -1;
  for (const c of data) {
    if (prefix < 0) {
      prefix = c;
      continue;
    }
    const code = table.get(prefix * 256 + c);
    if (code !== undefined) {
      prefix = code;
      continue;
    }
    put(prefix, width);
    table.set(prefix * 256 + c, next);
    added();
    prefix = c;
  }
  if (prefix >= 0) {
    put(prefix, width);
    added();
  }
  put(257, width);
  if (count > 0) bytes.push((bits << (8 - count)) & 0xff);
  return Buffer.from(bytes);
}
