/**
 * Minimal readers for the movies the simulated detector writes, for tests: the MRC header and
 * pixels, classic TIFF pages with their tags, and an LZW decoder written from the decoder's
 * side of the spec (libtiff's LZWDecode), independent of the encoder it checks.
 */
import fs from 'node:fs';

export interface MrcMovie {
  nx: number;
  ny: number;
  nz: number;
  mode: number;
  nsymbt: number;
  /** CELLA in A. */
  cell: [number, number, number];
  map: string;
  machst: number[];
  labels: string[];
  /** Frame-major pixel values. */
  pixels: Int8Array | Int16Array;
  fileBytes: number;
}

export function readMrc(file: string): MrcMovie {
  const b = fs.readFileSync(file);
  const int = (word: number): number => b.readInt32LE(word * 4);
  const [nx, ny, nz, mode] = [int(0), int(1), int(2), int(3)];
  const labels: string[] = [];
  for (let i = 0; i < int(55); i++) labels.push(b.toString('latin1', 224 + i * 80, 304 + i * 80).trimEnd());
  const data = b.subarray(1024 + int(23));
  const copy = Buffer.from(data);
  return {
    nx,
    ny,
    nz,
    mode,
    nsymbt: int(23),
    cell: [b.readFloatLE(40), b.readFloatLE(44), b.readFloatLE(48)],
    map: b.toString('latin1', 208, 212),
    machst: [...b.subarray(212, 216)],
    labels,
    pixels: mode === 1 ? new Int16Array(copy.buffer, copy.byteOffset, copy.length / 2) : new Int8Array(copy.buffer, copy.byteOffset, copy.length),
    fileBytes: b.length,
  };
}

/** `cloudlet k=v ...` labels joined into one record. */
export function cloudletLabels(labels: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const label of labels.filter((l) => l.startsWith('cloudlet '))) {
    for (const token of label.slice(9).split(' ').filter(Boolean)) {
      const eq = token.indexOf('=');
      out[token.slice(0, eq)] = token.slice(eq + 1);
    }
  }
  return out;
}

export interface TiffPage {
  offset: number;
  /** Tag -> values (numbers) or the string for ASCII. */
  tags: Map<number, number[] | string>;
  pixels: Uint8Array;
}

/** Little-endian classic TIFF, 8-bit, strips uncompressed (1) or LZW (5). */
export function readTiff(file: string): TiffPage[] {
  const b = fs.readFileSync(file);
  if (b.toString('latin1', 0, 2) !== 'II' || b.readUInt16LE(2) !== 42) throw new Error(`${file}: not a little-endian classic TIFF`);
  const pages: TiffPage[] = [];
  for (let offset = b.readUInt32LE(4); offset !== 0; ) {
    const count = b.readUInt16LE(offset);
    const tags = new Map<number, number[] | string>();
    for (let i = 0; i < count; i++) {
      const at = offset + 2 + i * 12;
      const [tag, type, n] = [b.readUInt16LE(at), b.readUInt16LE(at + 2), b.readUInt32LE(at + 4)];
      const size = type === 3 ? 2 : type === 4 ? 4 : 1;
      const where = size * n > 4 ? b.readUInt32LE(at + 8) : at + 8;
      if (type === 2) tags.set(tag, b.toString('latin1', where, where + n - 1));
      else tags.set(tag, Array.from({ length: n }, (_, k) => (size === 2 ? b.readUInt16LE(where + k * 2) : size === 4 ? b.readUInt32LE(where + k * 4) : (b[where + k] as number))));
    }
    const offsets = tags.get(273) as number[];
    const counts = tags.get(279) as number[];
    const strips = offsets.map((o, i) => b.subarray(o, o + (counts[i] as number)));
    const compression = (tags.get(259) as number[])[0];
    const decoded = strips.map((s) => (compression === 5 ? lzwDecode(s) : s));
    pages.push({ offset, tags, pixels: new Uint8Array(Buffer.concat(decoded)) });
    offset = b.readUInt32LE(offset + 2 + count * 12);
  }
  return pages;
}

export function lzwDecode(data: Uint8Array): Buffer {
  const out: number[] = [];
  let table: number[][] = [];
  const reset = (): void => {
    table = Array.from({ length: 258 }, (_, i) => [i]);
  };
  reset();
  let width = 9;
  let bitPos = 0;
  const read = (): number => {
    let code = 0;
    for (let i = 0; i < width; i++, bitPos++) {
      const byte = data[bitPos >> 3];
      if (byte === undefined) throw new Error('LZW data ended without EOI');
      code = (code << 1) | ((byte >> (7 - (bitPos & 7))) & 1);
    }
    return code;
  };
  let old: number[] | undefined;
  for (;;) {
    const code = read();
    if (code === 257) break;
    if (code === 256) {
      reset();
      width = 9;
      old = undefined;
      continue;
    }
    let entry: number[];
    if (code < table.length) entry = table[code] as number[];
    else if (code === table.length && old) entry = [...old, old[0] as number];
    else throw new Error(`LZW code ${code} with ${table.length} entries`);
    out.push(...entry);
    if (old) table.push([...old, entry[0] as number]);
    old = entry;
    // libtiff's decoder: one entry behind the encoder, so it widens at 511, 1023, 2047.
    if (table.length >= (1 << width) - 1 && width < 12) width++;
  }
  return Buffer.from(out);
}
