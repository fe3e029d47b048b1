import fs from 'node:fs';
import path from 'node:path';
import { AppError } from '@cloudlet/core';
import { tempDir } from '@cloudlet/core/testing';
import { buildTiff, type TestCompression, type TestTiff } from './testing/tiff-builder';
import { readTiffFrame, readTiffFrames, readTiffHeader } from './tiff';
import { lzwDecode } from './tiff-lzw';

let dir: string;
let n = 0;

beforeAll(() => {
  dir = tempDir('cloudlet-tiff-');
});

afterAll(() => {
  fs.rmSync(dir, { recursive: true, force: true });
});

function write(data: Buffer, ext = '.tif'): string {
  const p = path.join(dir, `movie-${++n}${ext}`);
  fs.writeFileSync(p, data);
  return p;
}

/** Page z: pixels covering the whole range of the sample type, different per page. */
function pixels(width: number, height: number, z: number, lo: number, hi: number): number[] {
  const span = hi - lo + 1;
  return Array.from({ length: width * height }, (_, i) => lo + ((i * 7919 + z * 104729 + i * i) % span));
}

async function readAll(p: string): Promise<number[][]> {
  const pages: number[][] = [];
  for await (const f of readTiffFrames(p)) pages.push([...f]);
  return pages;
}

const RANGES = { 4: [0, 15], 8: [0, 255], 16: [0, 65535], 32: [0, 4294967295] } as const;

describe('readTiff', () => {
  const compressions: TestCompression[] = ['none', 'lzw', 'deflate', 'deflate-old', 'packbits'];
  const cases = compressions.flatMap((c) => ([4, 8, 16] as const).flatMap((bits) => [true, false].map((le) => [c, bits, le] as const)));
  it.each(cases)('%s, %i-bit, little-endian %s: exact pixels over strips', async (compression, bits, littleEndian) => {
    const [lo, hi] = RANGES[bits];
    const width = 13;
    const height = 7;
    const pages = [0, 1, 2].map((z) => pixels(width, height, z, lo, hi));
    const p = write(buildTiff({ width, height, pages, bits, compression, littleEndian, rowsPerStrip: 3 }));
    const info = await readTiffHeader(p);
    expect(info).toMatchObject({ littleEndian, width, height });
    expect(info.pages).toHaveLength(3);
    expect(await readAll(p)).toEqual(pages);
    expect([...(await readTiffFrame(p, info, 2))]).toEqual(pages[2]);
  });

  it.each([
    [8, 'lzw', true],
    [16, 'deflate', false],
    [16, 'none', true],
    [8, 'packbits', false],
  ] as const)('predictor 2 with %i-bit %s (little-endian %s)', async (bits, compression, littleEndian) => {
    const [lo, hi] = RANGES[bits];
    const pages = [pixels(9, 5, 0, lo, hi), pixels(9, 5, 1, lo, hi)];
    const p = write(buildTiff({ width: 9, height: 5, pages, bits, compression, littleEndian, predictor: 2, rowsPerStrip: 2 }));
    expect(await readAll(p)).toEqual(pages);
  });

  it.each(['none', 'lzw', 'deflate'] as const)('tiles that overhang the image (%s)', async (compression) => {
    const pages = [pixels(21, 19, 0, 0, 65535)];
    const p = write(buildTiff({ width: 21, height: 19, pages, bits: 16, compression, tile: { width: 16, height: 16 } }));
    expect(await readAll(p)).toEqual(pages);
  });

  it('4-bit tiles pack two pixels a byte, MSB first', async () => {
    const pages = [pixels(19, 17, 0, 0, 15), pixels(19, 17, 1, 0, 15)];
    const p = write(buildTiff({ width: 19, height: 17, pages, bits: 4, compression: 'lzw', littleEndian: false, tile: { width: 16, height: 16 } }));
    expect(await readAll(p)).toEqual(pages);
  });

  it('signed and float samples', async () => {
    const ints = [pixels(5, 3, 0, -32768, 32767)];
    expect(await readAll(write(buildTiff({ width: 5, height: 3, pages: ints, bits: 16, sampleFormat: 2 })))).toEqual(ints);
    const floats = [[0.5, -1.25, 1e30, -0, 3, 7, 1e-30, 2, 9].map(Math.fround)];
    expect(await readAll(write(buildTiff({ width: 3, height: 3, pages: floats, bits: 32, sampleFormat: 3, littleEndian: false, compression: 'deflate' })))).toEqual(floats);
  });

  it('large LZW strips: the code width grows and the table is cleared', async () => {
    const pages = [pixels(128, 96, 0, 0, 65535), Array.from({ length: 128 * 96 }, () => 0)];
    const p = write(buildTiff({ width: 128, height: 96, pages, bits: 16, compression: 'lzw' }));
    expect(await readAll(p)).toEqual(pages);
  });

  it('decodes the TIFF 6.0 specification example codes', () => {
    // Codes 256 7 258 8 8 258 6 257 at 9 bits, MSB first, from the specification's worked example.
    const codes = [256, 7, 258, 8, 8, 258, 6, 257];
    let bits = 0n;
    for (const c of codes) bits = (bits << 9n) | BigInt(c);
    const total = codes.length * 9;
    const padded = bits << BigInt((8 - (total % 8)) % 8);
    const bytes = Buffer.from(padded.toString(16).padStart(Math.ceil(total / 8) * 2, '0'), 'hex');
    expect([...lzwDecode(bytes, 8)]).toEqual([7, 7, 7, 8, 8, 7, 7, 6]);
  });
});

describe('errors', () => {
  async function failure(promise: Promise<unknown>): Promise<AppError> {
    const err: unknown = await promise.then(() => undefined, (e: unknown) => e);
    expect(err).toBeInstanceOf(AppError);
    return err as AppError;
  }

  const spec: TestTiff = { width: 8, height: 8, pages: [pixels(8, 8, 0, 0, 255), pixels(8, 8, 1, 0, 255)], bits: 8, compression: 'lzw' };

  it('an .eer file says EER is not supported', async () => {
    const err = await failure(readTiffHeader(write(buildTiff(spec), '.eer')));
    expect(err.code).toBe('eer_unsupported');
    expect(err.message).toMatch(/EER is not supported/);
  });

  it('EER compression inside a .tif says EER is not supported', async () => {
    const b = buildTiff({ ...spec, compression: 'none' });
    // Compression (259) is the fourth entry of the first IFD; its value sits at entry + 8.
    const ifd = b.readUInt32LE(4);
    const entry = ifd + 2 + 3 * 12;
    expect(b.readUInt16LE(entry)).toBe(259);
    b.writeUInt16LE(65001, entry + 8);
    expect((await failure(readTiffHeader(write(b)))).message).toMatch(/EER is not supported/);
  });

  it('a truncated file names the strip that runs past the end', async () => {
    const b = buildTiff({ ...spec, compression: 'none' });
    const p = write(b);
    const info = await readTiffHeader(p);
    fs.truncateSync(p, (info.pages[1]?.offsets[0] ?? 0) + 10);
    expect((await failure(readTiffHeader(p))).message).toMatch(/truncated/);
    expect((await failure(readTiffFrame(p, info, 1))).message).toMatch(/truncated: page 1 strip 0/);
  });

  it('corrupt deflate and LZW data are clear errors', async () => {
    const deflated = buildTiff({ ...spec, compression: 'deflate', pages: [spec.pages[0] as number[]] });
    const p = write(deflated);
    const info = await readTiffHeader(p);
    const at = info.pages[0]?.offsets[0] ?? 0;
    const b = fs.readFileSync(p);
    b.fill(0xff, at, at + 4);
    fs.writeFileSync(p, b);
    expect((await failure(readTiffFrame(p, info, 0))).message).toMatch(/page 0 strip 0: cannot deflate-decode/);
    expect(() => lzwDecode(Buffer.from([0x80, 0x1f, 0xf0]), 4)).toThrow(/corrupt LZW data/);
  });

  it('not a TIFF', async () => {
    expect((await failure(readTiffHeader(write(Buffer.from('hello, world'))))).message).toMatch(/not a TIFF file/);
  });
});
