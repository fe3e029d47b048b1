import fs from 'node:fs';
import path from 'node:path';
import { tempDir } from '@cloudlet/core/testing';
import { checkComplete, type CompletenessResult, formatOf } from './formats';
import { mrcFile, mrcFrameBytes, mrcHeader, type MrcSpec, tiffFile } from './testing/movie-writers';

let dir: string;
let n = 0;

beforeAll(() => {
  dir = tempDir('cloudlet-formats-');
});

afterAll(() => {
  fs.rmSync(dir, { recursive: true, force: true });
});

/** Writes `data` to a fresh file with extension `ext` and checks it. */
async function check(data: Buffer, ext = '.mrc'): Promise<CompletenessResult> {
  const file = path.join(dir, `movie-${++n}${ext}`);
  fs.writeFileSync(file, data);
  return checkComplete(file);
}

/** noUncheckedIndexedAccess, and Buffer offsets would take undefined silently. */
function nth(values: number[], i: number): number {
  const v = values[i];
  if (v === undefined) throw new RangeError(`no element ${i}`);
  return v;
}

function retry(reason: RegExp): CompletenessResult {
  return { complete: false, retry: true, reason: expect.stringMatching(reason) as unknown as string };
}

function reject(reason: RegExp): CompletenessResult {
  return { complete: false, retry: false, reason: expect.stringMatching(reason) as unknown as string };
}

describe('formatOf', () => {
  test.each([
    ['a/FoilHole_1.mrc', 'mrc'],
    ['b.MRCS', 'mrc'],
    ['c.tif', 'tiff'],
    ['d.TIFF', 'tiff'],
    ['e.eer', 'eer'],
    ['f.mrc.tmp', undefined],
    ['g.jpg', undefined],
    ['mrc', undefined],
  ])('%s is %s', (file, format) => {
    expect(formatOf(file)).toBe(format);
  });
});

describe('MRC', () => {
  const modes: [number, number][] = [
    [0, 1],
    [1, 2],
    [2, 4],
    [6, 2],
    [12, 2],
    [101, 0.5],
  ];

  test.each(modes)('mode %i: complete at exactly header + NZ frames, truncated by a byte or a frame', async (mode, bytesPerPixel) => {
    const spec: MrcSpec = { nx: 6, ny: 4, nz: 3, mode };
    const frame = 6 * 4 * bytesPerPixel;
    expect(mrcFrameBytes(spec)).toBe(frame);
    const whole = mrcFile(spec);
    expect(whole.length).toBe(1024 + 3 * frame);
    expect(await check(whole)).toEqual({ complete: true, format: 'mrc', width: 6, height: 4, frames: 3, bytes: whole.length });
    expect(await check(whole.subarray(0, -1))).toEqual(retry(new RegExp(`^truncated: ${whole.length - 1} of ${whole.length} bytes$`)));
    expect(await check(whole.subarray(0, -frame))).toEqual(retry(/^truncated: /));
  });

  test('an extended header counts towards the size', async () => {
    const spec: MrcSpec = { nx: 8, ny: 8, nz: 2, mode: 1, nsymbt: 131072 };
    const whole = mrcFile(spec);
    expect(await check(whole)).toMatchObject({ complete: true, frames: 2, bytes: 1024 + 131072 + 256 });
    expect(await check(whole.subarray(0, 1024 + 131072))).toEqual(retry(/truncated/));
    // Read without NSYMBT, the same file would be too big: the extended header is not frames.
    expect(await check(Buffer.concat([mrcHeader({ ...spec, nsymbt: 0 }), whole.subarray(1024)]))).toEqual(reject(/header says/));
  });

  test('mode 101 with odd NX pads every row to a whole byte', async () => {
    const spec: MrcSpec = { nx: 7, ny: 5, nz: 4, mode: 101 };
    expect(mrcFrameBytes(spec)).toBe(4 * 5);
    expect(await check(mrcFile(spec))).toMatchObject({ complete: true, width: 7, height: 5, frames: 4, bytes: 1024 + 80 });
    // Packing 35 pixels without row padding gives 18 bytes a frame: not this file.
    expect(await check(Buffer.concat([mrcHeader(spec), Buffer.alloc(4 * 18)]))).toEqual(retry(/truncated/));
  });

  test('a header that promises more frames than present may still be arriving; fewer is final', async () => {
    const spec: MrcSpec = { nx: 16, ny: 16, nz: 10, mode: 0 };
    expect(await check(mrcFile(spec, 7))).toEqual(retry(/^truncated: 2816 of 3584 bytes$/));
    expect(await check(mrcFile(spec, 12))).toEqual(reject(/^header says 3584 bytes, file has 4096$/));
  });

  test('a big-endian header is read as such, with or without MACHST', async () => {
    const spec: MrcSpec = { nx: 10, ny: 12, nz: 3, mode: 2, bigEndian: true };
    expect(await check(mrcFile(spec))).toMatchObject({ complete: true, width: 10, height: 12, frames: 3 });
    expect(await check(mrcFile({ ...spec, machst: false }))).toMatchObject({ complete: true, width: 10, height: 12, frames: 3 });
    expect(await check(mrcFile({ ...spec, machst: false }, 2))).toEqual(retry(/truncated/));
  });

  test('a MACHST that lies is overruled by dimensions that only make sense the other way', async () => {
    const h = mrcFile({ nx: 10, ny: 12, nz: 3, mode: 1 });
    h[212] = 0x11;
    expect(await check(h)).toMatchObject({ complete: true, width: 10, height: 12 });
  });

  test('without the MAP stamp only exact arithmetic counts', async () => {
    const spec: MrcSpec = { nx: 8, ny: 8, nz: 2, mode: 1, stamp: false, machst: false };
    expect(await check(mrcFile(spec))).toMatchObject({ complete: true, frames: 2 });
    expect(await check(mrcFile(spec, 1))).toEqual(reject(/not an MRC file \(no MAP stamp/));
  });

  test.each<[string, MrcSpec, RegExp]>([
    ['unknown mode', { nx: 8, ny: 8, nz: 2, mode: 3 }, /unsupported MRC mode 3/],
    ['zero frames', { nx: 8, ny: 8, nz: 0, mode: 1 }, /impossible dimensions 8x8x0/],
    ['a negative side', { nx: -8, ny: 8, nz: 2, mode: 1 }, /impossible dimensions/],
    ['an absurd side', { nx: 70000, ny: 8, nz: 2, mode: 1 }, /absurd dimensions 70000x8x2/],
    ['absurd frames', { nx: 8, ny: 8, nz: 200_000, mode: 1 }, /absurd dimensions/],
    ['a negative extended header', { nx: 8, ny: 8, nz: 2, mode: 1, nsymbt: -4 }, /negative extended header/],
  ])('%s is never a movie', async (_what, spec, reason) => {
    expect(await check(mrcHeader(spec))).toEqual(reject(reason));
  });

  test('garbage, text and the wrong format are never movies; an empty or short file may be arriving', async () => {
    const garbage = Buffer.alloc(4096);
    for (let i = 0; i < garbage.length; i++) garbage[i] = (i * 2654435761) >>> 24;
    expect(await check(garbage)).toEqual(reject(/not an MRC file/));
    expect(await check(Buffer.from('x'.repeat(2000)))).toEqual(reject(/not an MRC file/));
    expect(await check(tiffFile({ width: 64, height: 64, pages: 1 }).data)).toEqual(reject(/not an MRC file/));
    expect(await check(Buffer.alloc(0))).toEqual(retry(/^empty file$/));
    expect(await check(mrcHeader({ nx: 8, ny: 8, nz: 2, mode: 1 }).subarray(0, 500))).toEqual(retry(/truncated: 500 of at least 1024/));
    expect(await check(Buffer.from('hello'))).toEqual(retry(/truncated/));
    expect(await check(Buffer.from('a'.repeat(100)))).toEqual(reject(/not an MRC file/));
  });

  test('a missing file is an error for the caller, not a verdict', async () => {
    await expect(checkComplete(path.join(dir, 'gone.mrc'))).rejects.toMatchObject({ code: 'ENOENT' });
  });
});

describe('TIFF', () => {
  test.each([false, true])('multi-page with strips (big-endian: %s) is complete; frames = pages, size from the first IFD', async (bigEndian) => {
    const t = tiffFile({ width: 20, height: 15, pages: 4, strips: 3, bigEndian });
    expect(await check(t.data, '.tif')).toEqual({ complete: true, format: 'tiff', width: 20, height: 15, frames: 4, bytes: t.data.length });
  });

  test('one strip per page, offsets inline in the IFD', async () => {
    const t = tiffFile({ width: 9, height: 7, pages: 3, strips: 1 });
    expect(await check(t.data, '.tiff')).toMatchObject({ complete: true, frames: 3 });
  });

  test.each([false, true])('cut in the middle of the last strip (big-endian: %s): still arriving', async (bigEndian) => {
    const t = tiffFile({ width: 20, height: 15, pages: 4, strips: 3, bigEndian });
    const [offset, count] = t.strips[3]?.[2] ?? [0, 0];
    expect(await check(t.data.subarray(0, offset + Math.floor(count / 2)), '.tif')).toEqual(retry(/^truncated: page 4 strip 3 of 3 ends at/));
  });

  test('cut anywhere is never complete, and never rejected', async () => {
    const t = tiffFile({ width: 6, height: 5, pages: 2, strips: 2 });
    for (let size = 0; size < t.data.length; size += 3) {
      const r = await check(t.data.subarray(0, size), '.tif');
      expect(r).toMatchObject({ complete: false, retry: true });
    }
  });

  test('an IFD offset past the end of the file: still arriving', async () => {
    const t = tiffFile({ width: 8, height: 8, pages: 2 });
    t.data.writeUInt32LE(t.data.length + 1000, nth(t.nextFields, 1));
    expect(await check(t.data, '.tif')).toEqual(retry(/IFD 3 at offset \d+ is past the end of the file/));
    t.data.writeUInt32LE(t.data.length - 1, nth(t.nextFields, 1));
    expect(await check(t.data, '.tif')).toEqual(retry(/IFD 3 .* past the end of the file/));
  });

  test('a loop in the IFD chain is never a movie', async () => {
    const t = tiffFile({ width: 8, height: 8, pages: 3 });
    t.data.writeUInt32LE(nth(t.ifds, 1), nth(t.nextFields, 2));
    expect(await check(t.data, '.tif')).toEqual(reject(/loops back/));
    t.data.writeUInt32LE(nth(t.ifds, 0), nth(t.nextFields, 0));
    expect(await check(t.data, '.tif')).toEqual(reject(/loops back/));
  });

  test('no IFDs, an empty IFD, BigTIFF, other magic: never movies', async () => {
    const t = tiffFile({ width: 8, height: 8, pages: 1 });
    const none = Buffer.from(t.data);
    none.writeUInt32LE(0, 4);
    expect(await check(none, '.tif')).toEqual(reject(/no IFDs/));
    const empty = Buffer.from(t.data);
    empty.writeUInt16LE(0, nth(t.ifds, 0));
    expect(await check(empty, '.tif')).toEqual(reject(/has no entries/));
    const big = Buffer.from([0x49, 0x49, 43, 0, 8, 0, 0, 0, 16, 0, 0, 0, 0, 0, 0, 0]);
    expect(await check(big, '.tif')).toEqual(reject(/^BigTIFF is not supported$/));
    expect(await check(mrcFile({ nx: 8, ny: 8, nz: 1, mode: 0 }), '.tif')).toEqual(reject(/not a TIFF file/));
    expect(await check(Buffer.from([0x4d, 0x4d, 0, 43, 0, 0, 0, 8]), '.tif')).toEqual(reject(/BigTIFF/));
    expect(await check(Buffer.alloc(0), '.tif')).toEqual(retry(/empty file/));
  });

  test('a page without strip offsets or with mismatched counts is never a movie', async () => {
    const t = tiffFile({ width: 8, height: 8, pages: 1 });
    const noOffsets = Buffer.from(t.data);
    // Retag StripOffsets (entry 6) as an unrelated tag.
    noOffsets.writeUInt16LE(305, nth(t.ifds, 0) + 2 + 5 * 12);
    expect(await check(noOffsets, '.tif')).toEqual(reject(/no strip or tile offsets/));
    const mismatched = Buffer.from(t.data);
    mismatched.writeUInt32LE(3, nth(t.ifds, 0) + 2 + 8 * 12 + 4);
    expect(await check(mismatched, '.tif')).toEqual(reject(/2 strip offsets but 3 byte counts/));
  });
});

describe('EER and other files', () => {
  test('EER is not supported yet; other names are not movies', async () => {
    expect(await check(Buffer.alloc(100), '.eer')).toEqual(reject(/^EER movies are not supported yet$/));
    expect(await check(Buffer.alloc(100), '.txt')).toEqual(reject(/not a movie file name/));
  });
});
