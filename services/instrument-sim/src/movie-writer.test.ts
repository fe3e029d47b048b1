import fs from 'node:fs';
import path from 'node:path';
import { tempDir } from '@cloudlet/core/testing';
import type { FrameSource } from './exposure';
import { type MovieMetadata, mrcBytes, mrcLabels } from './movie-formats';
import { type MovieParams, writeMovie } from './movie-writer';
import { cloudletLabels, readMrc, readTiff } from './testing/movie-readers';

const META: MovieMetadata = { defocusUm: -1.5, doseRate: 15, driftPxPerFrame: [0.3, -0.2], frameSeconds: 0.25, magnification: 75000, pixelSizeA: 1.0, stageUm: [0, 0] };

let dir: string;
let n = 0;

beforeAll(() => {
  dir = tempDir('cloudlet-movies-');
});

afterAll(() => {
  fs.rmSync(dir, { recursive: true, force: true });
});

function file(ext: string): string {
  return path.join(dir, `movie-${++n}.${ext}`);
}

/** Known counts: value(frame, x, y), optionally past every pixel type's range. */
function pattern(width: number, height: number, frames: number, value = (f: number, x: number, y: number): number => (f * 7 + y * 3 + x) % 100): FrameSource {
  return {
    width,
    height,
    frames,
    fill(frame, y0, out) {
      for (let i = 0; i < out.length; i++) out[i] = value(frame, i % width, y0 + Math.floor(i / width));
    },
  };
}

function expected(source: FrameSource, clamp: number): number[] {
  const out: number[] = [];
  for (let f = 0; f < source.frames; f++) {
    const frame = new Uint16Array(source.width * source.height);
    source.fill(f, 0, frame);
    out.push(...[...frame].map((v) => Math.min(clamp, v)));
  }
  return out;
}

function params(p: Partial<MovieParams> & Pick<MovieParams, 'format' | 'width' | 'height' | 'frames'>): MovieParams {
  return { ...META, ...p };
}

describe('MRC movies', () => {
  test.each([
    [1, 2, 32767],
    [0, 1, 127],
  ] as const)('mode %i: header, labels and every pixel as written, size = 1024 + NZ frames', async (mode, bytesPerPixel, clamp) => {
    const source = pattern(7, 5, 3, (f, x, y) => (f === 2 && x === 6 && y === 4 ? 40_000 : (f * 7 + y * 3 + x) % 100));
    const out = file('mrc');
    const written = await writeMovie(out, params({ format: 'mrc', mrcMode: mode, width: 7, height: 5, frames: 3, pixelSizeA: 0.83, source }));
    const m = readMrc(out);
    expect(written.bytes).toBe(1024 + 3 * 7 * 5 * bytesPerPixel);
    expect(mrcBytes(7, 5, 3, mode)).toBe(written.bytes);
    expect(m.fileBytes).toBe(written.bytes);
    expect(m).toMatchObject({ nx: 7, ny: 5, nz: 3, mode, nsymbt: 0, map: 'MAP ', machst: [0x44, 0x44, 0, 0] });
    expect(m.cell.map((c) => Math.round(c * 1000) / 1000)).toEqual([5.81, 4.15, 2.49]);
    expect([...m.pixels]).toEqual(expected(source, clamp));
    expect(cloudletLabels(m.labels)).toEqual({ defocus_um: '-1.5', dose_e_px_s: '15', drift_px_per_frame: '0.3,-0.2', frame_s: '0.25', mag: '75000', pixel_A: '0.83', stage_um: '0,0' });
  });

  test('the labels read as the microscope was set, each at most 80 characters', () => {
    const labels = mrcLabels(META);
    expect(labels.length).toBeGreaterThan(1);
    expect(labels.every((l) => l.length <= 80 && l.startsWith('cloudlet '))).toBe(true);
    expect(labels.join(' ').replace(/ cloudlet/g, '')).toBe('cloudlet defocus_um=-1.5 dose_e_px_s=15 drift_px_per_frame=0.3,-0.2 frame_s=0.25 mag=75000 pixel_A=1.0 stage_um=0,0');
  });

  test('the simulated exposure by default: counts around dose rate times frame time', async () => {
    const out = file('mrc');
    await writeMovie(out, params({ format: 'mrc', width: 64, height: 64, frames: 4, doseRate: 20, frameSeconds: 0.2 }));
    const m = readMrc(out);
    const mean = Array.from(m.pixels).reduce((a, b) => a + b, 0) / m.pixels.length;
    expect(mean).toBeGreaterThan(3.8);
    expect(mean).toBeLessThan(4.2);
  });
});

describe('TIFF movies', () => {
  test.each(['none', 'lzw'] as const)('compression %s: one 8-bit strip per page, description on the first, every pixel as written', async (compression) => {
    const source = pattern(9, 5, 4, (f, x, y) => (x === 0 && y === 0 ? 1000 : f * 40 + y * 9 + x));
    const out = file('tiff');
    const written = await writeMovie(out, params({ format: 'tiff', tiffCompression: compression, width: 9, height: 5, frames: 4, source }));
    expect(fs.statSync(out).size).toBe(written.bytes);
    const pages = readTiff(out);
    expect(pages).toHaveLength(4);
    for (const [i, page] of pages.entries()) {
      expect(page.offset % 2).toBe(0);
      expect(Object.fromEntries([256, 257, 258, 259, 262, 273, 277, 278, 279].map((t) => [t, (page.tags.get(t) as number[]).length]))).toEqual({ 256: 1, 257: 1, 258: 1, 259: 1, 262: 1, 273: 1, 277: 1, 278: 1, 279: 1 });
      expect([256, 257, 258, 259, 262, 277, 278].map((t) => (page.tags.get(t) as number[])[0])).toEqual([9, 5, 8, compression === 'lzw' ? 5 : 1, 1, 1, 5]);
      expect(page.tags.has(270)).toBe(i === 0);
    }
    expect(JSON.parse(pages[0]?.tags.get(270) as string)).toEqual({ source: 'cloudlet instrument-sim', defocus_um: -1.5, dose_e_px_s: 15, drift_px_per_frame: [0.3, -0.2], frame_s: 0.25, mag: 75000, pixel_A: 1, stage_um: [0, 0] });
    expect(pages.flatMap((p) => [...p.pixels])).toEqual(expected(source, 255));
  });

  test('uncompressed size is the header, IFDs, description and pixels, each part on a word boundary', async () => {
    const out = file('tiff');
    const written = await writeMovie(out, params({ format: 'tiff', tiffCompression: 'none', width: 5, height: 3, frames: 2, source: pattern(5, 3, 2) }));
    const description = JSON.parse(readTiff(out)[0]?.tags.get(270) as string) as object;
    const descriptionBytes = JSON.stringify(description).length + 1;
    const even = (x: number): number => x + (x % 2);
    expect(written.bytes).toBe(8 + (2 + 10 * 12 + 4) + even(descriptionBytes) + even(15) + (2 + 9 * 12 + 4) + even(15));
  });
});

describe('writing', () => {
  test('is spread over write_seconds in chunks: the file grows, then stops at its final size', async () => {
    const out = file('mrc');
    const sizes: number[] = [];
    const poll = setInterval(() => {
      const size = fs.existsSync(out) ? fs.statSync(out).size : -1;
      if (size >= 0 && sizes[sizes.length - 1] !== size) sizes.push(size);
    }, 5);
    const started = Date.now();
    const written = await writeMovie(out, params({ format: 'mrc', width: 64, height: 64, frames: 4, writeSeconds: 0.5, chunks: 10 }));
    clearInterval(poll);
    expect(Date.now() - started).toBeGreaterThanOrEqual(490);
    expect(written.seconds).toBeGreaterThanOrEqual(0.49);
    expect(written.bytes).toBe(1024 + 4 * 64 * 64 * 2);
    const growing = sizes.filter((s) => s > 0 && s < written.bytes);
    expect(growing.length).toBeGreaterThanOrEqual(3);
    expect([...sizes].sort((a, b) => a - b)).toEqual(sizes);
  });

  test('never overwrites an existing file', async () => {
    const out = file('mrc');
    fs.writeFileSync(out, 'precious');
    await expect(writeMovie(out, params({ format: 'mrc', width: 16, height: 16, frames: 1 }))).rejects.toMatchObject({ code: 'EEXIST' });
    expect(fs.readFileSync(out, 'utf8')).toBe('precious');
  });

  test('an abort stops the writes and closes the file where it stands', async () => {
    const out = file('mrc');
    const abort = new AbortController();
    const writing = writeMovie(out, params({ format: 'mrc', width: 64, height: 64, frames: 4, writeSeconds: 1, chunks: 10, signal: abort.signal }));
    setTimeout(() => abort.abort(), 250);
    await expect(writing).rejects.toMatchObject({ name: 'AbortError' });
    const size = fs.statSync(out).size;
    expect(size).toBeGreaterThan(0);
    expect(size).toBeLessThan(1024 + 4 * 64 * 64 * 2);
  });

  test('rejects impossible sizes before creating anything', async () => {
    const out = file('mrc');
    await expect(writeMovie(out, params({ format: 'mrc', width: 0, height: 16, frames: 1 }))).rejects.toThrow(/width/);
    await expect(writeMovie(out, params({ format: 'tiff', width: 16, height: 16, frames: 1.5 }))).rejects.toThrow(/frames/);
    expect(fs.existsSync(out)).toBe(false);
  });
});
