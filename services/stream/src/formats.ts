/**
 * Is a settled file a whole movie? The watcher asks once a file's size and mtime have stopped
 * changing; the answer comes from the format's own arithmetic (MRC: header size plus NZ frames;
 * TIFF: every IFD and every strip or tile inside the file), because a detector writing over
 * CIFS can pause mid-file for longer than any settle time, and Samba can show the final size
 * before the bytes are there. Only headers and IFDs are read, at their offsets, never the
 * pixels: a 4096x4096x40 movie costs a few small reads.
 *
 * `retry: true` means the file may still be arriving (look again later); `retry: false` means
 * it will never be a movie as it stands (wrong magic, unsupported layout, a header that
 * promises less than the file holds). Errors opening or reading the file (ENOENT, EACCES)
 * are thrown: what to do about a vanished file is the watcher's call, not a format question.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { isMrcMode, MAX_FRAMES, MAX_SIDE, MRC_HEADER_BYTES, mrcFrameBytes } from './preprocess/mrc';

export type MovieFormat = 'mrc' | 'tiff' | 'eer';

export type CompletenessResult =
  | { complete: true; format: MovieFormat; width: number; height: number; frames: number; bytes: number }
  | { complete: false; retry: boolean; reason: string };

type Incomplete = Extract<CompletenessResult, { complete: false }>;

/** Beyond these a header is corrupt, not a bigger detector (K3 super-resolution is 11520 wide). */
export { MAX_FRAMES, MAX_SIDE } from './preprocess/mrc';

const EXTENSIONS: Readonly<Record<string, MovieFormat>> = { '.mrc': 'mrc', '.mrcs': 'mrc', '.tif': 'tiff', '.tiff': 'tiff', '.eer': 'eer' };

export function formatOf(file: string): MovieFormat | undefined {
  return EXTENSIONS[path.extname(file).toLowerCase()];
}

export async function checkComplete(file: string): Promise<CompletenessResult> {
  const format = formatOf(file);
  if (format === undefined) return never(`not a movie file name (${path.extname(file) || 'no extension'})`);
  if (format === 'eer') return never('EER movies are not supported yet');
  const fh = await fs.open(file, 'r');
  try {
    const reader = new Reader(fh, (await fh.stat()).size);
    return format === 'mrc' ? await checkMrc(reader) : await checkTiff(reader);
  } finally {
    await fh.close();
  }
}

function never(reason: string): Incomplete {
  return { complete: false, retry: false, reason };
}

function later(reason: string): Incomplete {
  return { complete: false, retry: true, reason };
}

function isIncomplete(value: object): value is Incomplete {
  return 'complete' in value;
}

/** Positional reads that report a short read (the file shrank, or is still being written) as undefined. */
class Reader {
  constructor(
    private readonly fh: fs.FileHandle,
    readonly size: number,
  ) {}

  async read(offset: number, length: number): Promise<Buffer | undefined> {
    if (offset + length > this.size) return undefined;
    const buf = Buffer.alloc(length);
    let done = 0;
    while (done < length) {
      const { bytesRead } = await this.fh.read(buf, done, length - done, offset + done);
      if (bytesRead === 0) return undefined;
      done += bytesRead;
    }
    return buf;
  }
}

// ---- MRC (MRC2014: https://www.ccpem.ac.uk/mrc_format/mrc2014.php) ----


interface MrcHeader {
  nx: number;
  ny: number;
  nz: number;
  mode: number;
  nsymbt: number;
}

function readMrcHeader(h: Buffer, littleEndian: boolean): MrcHeader {
  const int = (byte: number): number => (littleEndian ? h.readInt32LE(byte) : h.readInt32BE(byte));
  return { nx: int(0), ny: int(4), nz: int(8), mode: int(12), nsymbt: int(92) };
}

/** Why `h` cannot describe a movie, or undefined when it can. */
function mrcProblem(h: MrcHeader): string | undefined {
  if (!(h.nx > 0 && h.ny > 0 && h.nz > 0)) return `impossible dimensions ${h.nx}x${h.ny}x${h.nz}`;
  if (h.nx > MAX_SIDE || h.ny > MAX_SIDE || h.nz > MAX_FRAMES) return `absurd dimensions ${h.nx}x${h.ny}x${h.nz}`;
  if (!isMrcMode(h.mode)) return `unsupported MRC mode ${h.mode}`;
  if (h.nsymbt < 0) return `negative extended header size ${h.nsymbt}`;
  return undefined;
}

function frameBytes(h: MrcHeader): number {
  return isMrcMode(h.mode) ? mrcFrameBytes(h.nx, h.ny, h.mode) : 0;
}

/**
 * MACHST says the byte order (0x44 little, 0x11 big); writers that leave it zero (old IMOD,
 * some detector software) get the order whose dimensions and mode make sense.
 */
function mrcByteOrder(h: Buffer): { littleEndian: boolean; problem?: string } {
  const stamp = h[212];
  const declared = stamp === 0x44 || stamp === 0x41 ? true : stamp === 0x11 ? false : undefined;
  const sane = (le: boolean): boolean => mrcProblem(readMrcHeader(h, le)) === undefined;
  if (declared !== undefined && sane(declared)) return { littleEndian: declared };
  if (sane(true)) return { littleEndian: true };
  if (sane(false)) return { littleEndian: false };
  const littleEndian = declared ?? true;
  return { littleEndian, problem: mrcProblem(readMrcHeader(h, littleEndian)) };
}

async function checkMrc(r: Reader): Promise<CompletenessResult> {
  if (r.size === 0) return later('empty file');
  const h = await r.read(0, MRC_HEADER_BYTES);
  if (!h) return partialMrcHeader(r);
  // "MAP " in MRC2014; some writers end it with a NUL. Absent in pre-2000 files.
  const stamped = h.toString('latin1', 208, 211) === 'MAP' && (h[211] === 0x20 || h[211] === 0);
  const order = mrcByteOrder(h);
  if (order.problem) return never(stamped ? `not a usable MRC header: ${order.problem}` : `not an MRC file (no MAP stamp; ${order.problem})`);
  const header = readMrcHeader(h, order.littleEndian);
  const expected = MRC_HEADER_BYTES + header.nsymbt + header.nz * frameBytes(header);
  if (r.size === expected) return { complete: true, format: 'mrc', width: header.nx, height: header.ny, frames: header.nz, bytes: r.size };
  // Without the stamp, only exact arithmetic tells an MRC from any other 1 KiB of bytes.
  if (!stamped) return never(`not an MRC file (no MAP stamp, and the header's ${expected} bytes do not match the file's ${r.size})`);
  if (r.size < expected) return later(`truncated: ${r.size} of ${expected} bytes`);
  return never(`header says ${expected} bytes, file has ${r.size}`);
}

/** A header still arriving: garbage in its first words is already final. */
async function partialMrcHeader(r: Reader): Promise<Incomplete> {
  const truncated = later(`truncated: ${r.size} of at least ${MRC_HEADER_BYTES} bytes (the header)`);
  if (r.size < 16) return truncated;
  const start = await r.read(0, r.size);
  if (!start) return truncated;
  const padded = Buffer.concat([start, Buffer.alloc(MRC_HEADER_BYTES - start.length)]);
  const { problem } = mrcByteOrder(padded);
  return problem ? never(`not an MRC file (${problem})`) : truncated;
}

// ---- TIFF (TIFF 6.0, classic 32-bit offsets) ----

const TAG_WIDTH = 256;
const TAG_HEIGHT = 257;
const TAG_STRIP_OFFSETS = 273;
const TAG_STRIP_BYTE_COUNTS = 279;
const TAG_TILE_OFFSETS = 324;
const TAG_TILE_BYTE_COUNTS = 325;
const WANTED_TAGS = new Set([TAG_WIDTH, TAG_HEIGHT, TAG_STRIP_OFFSETS, TAG_STRIP_BYTE_COUNTS, TAG_TILE_OFFSETS, TAG_TILE_BYTE_COUNTS]);
/** Bytes per value for the integer types these tags may use: BYTE, SHORT, LONG. */
const TIFF_TYPE_BYTES: ReadonlyMap<number, number> = new Map([
  [1, 1],
  [3, 2],
  [4, 4],
]);

interface TiffEntry {
  type: number;
  count: number;
  /** The 4-byte value field: the values themselves when they fit, else their offset. */
  field: Buffer;
}

class TiffFile {
  constructor(
    readonly r: Reader,
    readonly le: boolean,
  ) {}

  u16(b: Buffer, at: number): number {
    return this.le ? b.readUInt16LE(at) : b.readUInt16BE(at);
  }

  u32(b: Buffer, at: number): number {
    return this.le ? b.readUInt32LE(at) : b.readUInt32BE(at);
  }

  async values(tag: number, e: TiffEntry): Promise<number[] | Incomplete> {
    const size = TIFF_TYPE_BYTES.get(e.type);
    if (size === undefined) return never(`tag ${tag} has type ${e.type}, not an integer type`);
    const length = size * e.count;
    let data = e.field;
    if (length > 4) {
      const at = this.u32(e.field, 0);
      const read = await this.r.read(at, length);
      if (!read) return later(`truncated: tag ${tag} values at ${at}..${at + length} lie past the end of the file (${this.r.size} bytes)`);
      data = read;
    }
    const out: number[] = [];
    for (let i = 0; i < e.count; i++) out.push(size === 1 ? (data[i] as number) : size === 2 ? this.u16(data, i * 2) : this.u32(data, i * 4));
    return out;
  }
}

async function checkTiff(r: Reader): Promise<CompletenessResult> {
  if (r.size === 0) return later('empty file');
  const head = await r.read(0, 8);
  if (!head) return later(`truncated: ${r.size} of at least 8 bytes (the header)`);
  const order = head.toString('latin1', 0, 2);
  if (order !== 'II' && order !== 'MM') return never('not a TIFF file (no II or MM byte order mark)');
  const t = new TiffFile(r, order === 'II');
  const version = t.u16(head, 2);
  if (version === 43) return never('BigTIFF is not supported');
  if (version !== 42) return never(`not a TIFF file (version ${version}, not 42)`);
  let offset = t.u32(head, 4);
  if (offset === 0) return never('no IFDs: the TIFF has no pages');
  const seen = new Set<number>();
  let first: { width: number; height: number } | undefined;
  while (offset !== 0) {
    const page = seen.size + 1;
    if (offset < 8) return never(`IFD ${page} offset ${offset} points into the header`);
    if (seen.has(offset)) return never(`the IFD chain loops back to offset ${offset} after ${seen.size} IFDs`);
    if (seen.size >= MAX_FRAMES) return never(`more than ${MAX_FRAMES} IFDs`);
    seen.add(offset);
    const ifd = await readIfd(t, offset, page);
    if (isIncomplete(ifd)) return ifd;
    first ??= ifd;
    offset = ifd.next;
  }
  if (!first) return never('no IFDs: the TIFF has no pages');
  return { complete: true, format: 'tiff', width: first.width, height: first.height, frames: seen.size, bytes: r.size };
}

/** One IFD checked end to end: its entries, its size, and its strips or tiles. */
async function readIfd(t: TiffFile, offset: number, page: number): Promise<{ width: number; height: number; next: number } | Incomplete> {
  const eof = `the end of the file (${t.r.size} bytes)`;
  const countBytes = await t.r.read(offset, 2);
  if (!countBytes) return later(`truncated: IFD ${page} at offset ${offset} is past ${eof}`);
  const count = t.u16(countBytes, 0);
  if (count === 0) return never(`IFD ${page} at offset ${offset} has no entries`);
  const body = await t.r.read(offset + 2, count * 12 + 4);
  if (!body) return later(`truncated: IFD ${page} entries at ${offset}..${offset + 6 + count * 12} run past ${eof}`);
  const entries = new Map<number, TiffEntry>();
  for (let i = 0; i < count; i++) {
    const at = i * 12;
    const tag = t.u16(body, at);
    if (WANTED_TAGS.has(tag)) entries.set(tag, { type: t.u16(body, at + 2), count: t.u32(body, at + 4), field: body.subarray(at + 8, at + 12) });
  }
  const single = async (tag: number): Promise<number | Incomplete> => {
    const e = entries.get(tag);
    if (!e || e.count !== 1) return never(`IFD ${page} has no ${tag === TAG_WIDTH ? 'ImageWidth' : 'ImageLength'} (tag ${tag})`);
    const v = await t.values(tag, e);
    return isIncomplete(v) ? v : (v[0] as number);
  };
  const width = await single(TAG_WIDTH);
  if (typeof width !== 'number') return width;
  const height = await single(TAG_HEIGHT);
  if (typeof height !== 'number') return height;
  if (width < 1 || height < 1 || width > MAX_SIDE || height > MAX_SIDE) return never(`IFD ${page} has absurd dimensions ${width}x${height}`);
  const problem = await checkData(t, entries, page);
  if (problem !== undefined) return problem;
  return { width, height, next: t.u32(body, count * 12) };
}

/** Every strip (or tile) of a page ends inside the file. */
async function checkData(t: TiffFile, entries: Map<number, TiffEntry>, page: number): Promise<Incomplete | undefined> {
  const tiled = entries.has(TAG_TILE_OFFSETS);
  const [offTag, countTag, what] = tiled ? [TAG_TILE_OFFSETS, TAG_TILE_BYTE_COUNTS, 'tile'] : [TAG_STRIP_OFFSETS, TAG_STRIP_BYTE_COUNTS, 'strip'];
  const offEntry = entries.get(offTag);
  const countEntry = entries.get(countTag);
  if (!offEntry) return never(`IFD ${page} has no strip or tile offsets`);
  if (!countEntry) return never(`IFD ${page} has ${what} offsets but no byte counts (tag ${countTag})`);
  if (offEntry.count !== countEntry.count || offEntry.count === 0) return never(`IFD ${page} has ${offEntry.count} ${what} offsets but ${countEntry.count} byte counts`);
  const offsets = await t.values(offTag, offEntry);
  if (isIncomplete(offsets)) return offsets;
  const counts = await t.values(countTag, countEntry);
  if (isIncomplete(counts)) return counts;
  for (let i = 0; i < offsets.length; i++) {
    const end = (offsets[i] as number) + (counts[i] as number);
    if (end > t.r.size) return later(`truncated: page ${page} ${what} ${i + 1} of ${offsets.length} ends at ${end}, past the end of the file (${t.r.size} bytes)`);
  }
  return undefined;
}
