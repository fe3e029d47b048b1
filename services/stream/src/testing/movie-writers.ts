/**
 * Small, exact movie files for tests: MRC headers and classic TIFFs built byte by byte, with
 * the offsets of their parts reported so a test can cut or corrupt a file at a chosen place.
 */

export interface MrcSpec {
  nx: number;
  ny: number;
  nz: number;
  mode: number;
  /** Extended header bytes (NSYMBT); filled with 0xee. */
  nsymbt?: number;
  bigEndian?: boolean;
  /** Write "MAP " at byte 208 (default true). */
  stamp?: boolean;
  /** Write MACHST at byte 212 (default true). */
  machst?: boolean;
}

/** Frame bytes as MRC2014 counts them: 4-bit (mode 101) rows padded to a whole byte. */
export function mrcFrameBytes(spec: Pick<MrcSpec, 'nx' | 'ny' | 'mode'>): number {
  const perPixel: Record<number, number> = { 0: 1, 1: 2, 2: 4, 6: 2, 12: 2 };
  if (spec.mode === 101) return Math.ceil(spec.nx / 2) * spec.ny;
  const bytes = perPixel[spec.mode];
  if (bytes === undefined) throw new RangeError(`no frame size for mode ${spec.mode}`);
  return spec.nx * spec.ny * bytes;
}

export function mrcHeader(spec: MrcSpec): Buffer {
  const h = Buffer.alloc(1024);
  const int = (byte: number, v: number): number => (spec.bigEndian ? h.writeInt32BE(v, byte) : h.writeInt32LE(v, byte));
  const float = (byte: number, v: number): number => (spec.bigEndian ? h.writeFloatBE(v, byte) : h.writeFloatLE(v, byte));
  [spec.nx, spec.ny, spec.nz, spec.mode].forEach((v, i) => int(i * 4, v));
  [spec.nx, spec.ny, spec.nz].forEach((v, i) => int(28 + i * 4, v));
  [spec.nx, spec.ny, spec.nz].forEach((v, i) => float(40 + i * 4, v));
  [90, 90, 90].forEach((v, i) => float(52 + i * 4, v));
  [1, 2, 3].forEach((v, i) => int(64 + i * 4, v));
  int(92, spec.nsymbt ?? 0);
  int(108, 20140);
  if (spec.stamp ?? true) h.write('MAP ', 208, 'latin1');
  if (spec.machst ?? true) Buffer.from(spec.bigEndian ? [0x11, 0x11, 0, 0] : [0x44, 0x44, 0, 0]).copy(h, 212);
  int(220, 1);
  h.write('cloudlet test movie', 224, 'latin1');
  return h;
}

/** A whole MRC: header, extended header, then `frames` frames (default NZ) of a byte pattern. */
export function mrcFile(spec: MrcSpec, frames = spec.nz): Buffer {
  const data = Buffer.alloc(frames * mrcFrameBytes(spec));
  for (let i = 0; i < data.length; i++) data[i] = (i * 7) & 0xff;
  return Buffer.concat([mrcHeader(spec), Buffer.alloc(spec.nsymbt ?? 0, 0xee), data]);
}

export interface TiffSpec {
  width: number;
  height: number;
  pages: number;
  bigEndian?: boolean;
  /** Strips per page (default 2); rows are shared out, the last strip taking the rest. */
  strips?: number;
}

export interface TiffLayout {
  data: Buffer;
  /** Offset of each page's IFD. */
  ifds: number[];
  /** Offset of each IFD's next-IFD field. */
  nextFields: number[];
  /** Each page's strips as [offset, byteCount]. */
  strips: [number, number][][];
}

/**
 * An 8-bit uncompressed multi-page TIFF laid out as detectors stream them: each page's IFD,
 * then its strip offset and byte count arrays, then its strips.
 */
export function tiffFile(spec: TiffSpec): TiffLayout {
  const be = spec.bigEndian ?? false;
  const stripCount = spec.strips ?? 2;
  const rowsPerStrip = Math.ceil(spec.height / stripCount);
  const parts: Buffer[] = [];
  let at = 0;
  const push = (b: Buffer): number => {
    parts.push(b);
    const where = at;
    at += b.length;
    return where;
  };
  const u16 = (v: number): Buffer => {
    const b = Buffer.alloc(2);
    if (be) b.writeUInt16BE(v);
    else b.writeUInt16LE(v);
    return b;
  };
  const u32 = (v: number): Buffer => {
    const b = Buffer.alloc(4);
    if (be) b.writeUInt32BE(v);
    else b.writeUInt32LE(v);
    return b;
  };
  push(Buffer.concat([Buffer.from(be ? 'MM' : 'II', 'latin1'), u16(42), u32(8)]));
  const layout: TiffLayout = { data: Buffer.alloc(0), ifds: [], nextFields: [], strips: [] };
  for (let page = 0; page < spec.pages; page++) {
    const rows = Array.from({ length: stripCount }, (_, i) => Math.max(0, Math.min(rowsPerStrip, spec.height - i * rowsPerStrip)));
    const counts = rows.map((r) => r * spec.width);
    const entryCount = 9;
    const ifdAt = at;
    const arraysAt = ifdAt + 2 + entryCount * 12 + 4;
    const countsAt = arraysAt + stripCount * 4;
    const firstStripAt = countsAt + stripCount * 4;
    const offsets = counts.map((_, i) => firstStripAt + counts.slice(0, i).reduce((a, b) => a + b, 0));
    const pageEnd = firstStripAt + counts.reduce((a, b) => a + b, 0);
    const entry = (tag: number, type: number, count: number, value: Buffer): Buffer => Buffer.concat([u16(tag), u16(type), u32(count), value]);
    const short = (v: number): Buffer => Buffer.concat([u16(v), Buffer.alloc(2)]);
    const entries = [
      entry(256, 4, 1, u32(spec.width)),
      entry(257, 4, 1, u32(spec.height)),
      entry(258, 3, 1, short(8)),
      entry(259, 3, 1, short(1)),
      entry(262, 3, 1, short(1)),
      entry(273, 4, stripCount, stripCount === 1 ? u32(firstStripAt) : u32(arraysAt)),
      entry(277, 3, 1, short(1)),
      entry(278, 4, 1, u32(rowsPerStrip)),
      entry(279, 4, stripCount, stripCount === 1 ? u32(counts[0] as number) : u32(countsAt)),
    ];
    const isLast = page === spec.pages - 1;
    layout.ifds.push(push(Buffer.concat([u16(entryCount), ...entries])));
    layout.nextFields.push(push(u32(isLast ? 0 : pageEnd)));
    push(Buffer.concat([...offsets.map(u32), ...counts.map(u32)]));
    layout.strips.push(offsets.map((o, i) => [o, counts[i] as number]));
    for (const c of counts) {
      const strip = Buffer.alloc(c);
      for (let i = 0; i < c; i++) strip[i] = (page * 31 + i) & 0xff;
      push(strip);
    }
  }
  layout.data = Buffer.concat(parts);
  return layout;
}
