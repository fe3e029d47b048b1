/**
 * The files the stages leave in a movie's output folder and read back. Every write goes to a
 * temporary name first and is renamed into place, so a stage killed half-way leaves either
 * the old file or the new one, never a torn one, and running it again is always safe.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { averageAmplitude } from './ctf';
import { readMrcFrame, readMrcHeader, writeMrc, type MrcMode } from './mrc';

export interface Image {
  data: Float32Array;
  width: number;
  height: number;
  pixelSize_A: number;
}

function temporary(file: string): string {
  return path.join(path.dirname(file), `.${path.basename(file)}.${process.pid}.${Math.random().toString(36).slice(2)}.tmp`);
}

export async function writeFileAtomic(file: string, data: string | Uint8Array): Promise<void> {
  const tmp = temporary(file);
  try {
    await fs.writeFile(tmp, data);
    await fs.rename(tmp, file);
  } catch (err) {
    await fs.rm(tmp, { force: true });
    throw err;
  }
}

export async function writeJson(file: string, value: unknown): Promise<void> {
  await writeFileAtomic(file, `${JSON.stringify(value, null, 2)}\n`);
}

/** A stage's input from an earlier stage; missing means the pipeline ran out of order. */
export async function readJson<T>(file: string, producer: string): Promise<T> {
  let text: string;
  try {
    text = await fs.readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new Error(`${path.basename(file)} is missing in ${path.dirname(file)}: the ${producer} stage has not run`, { cause: err });
    throw err;
  }
  return JSON.parse(text) as T;
}

export async function exists(file: string): Promise<boolean> {
  return fs.stat(file).then(() => true, () => false);
}

/** One image (a single-frame MRC) written atomically; returns its size in bytes. */
export async function writeImage(file: string, image: Image, mode: MrcMode): Promise<number> {
  const tmp = temporary(file);
  const { bytes } = await writeMrc(tmp, { width: image.width, height: image.height, frames: [image.data], mode, pixelSizeA: image.pixelSize_A, labels: ['cloudlet stream pre-processing'] });
  await fs.rename(tmp, file);
  return bytes;
}

export async function readImage(file: string, producer: string): Promise<Image> {
  if (!(await exists(file))) throw new Error(`${path.basename(file)} is missing in ${path.dirname(file)}: the ${producer} stage has not run`);
  const h = await readMrcHeader(file);
  return { data: await readMrcFrame(file, h, 0), width: h.width, height: h.height, pixelSize_A: h.pixelSizeA ?? NaN };
}

export const SUM_FILE = 'sum.mrc';
export const reducedFile = (bin: number): string => `sum_bin${bin}.mrc`;
const SPECTRUM_FILE = 'spectrum.mrc';

/**
 * The mean amplitude spectrum of `tile`-sized tiles of sum.mrc (ctf.ts's averageAmplitude),
 * which ctf, ice and thumbnails all need: computed once, kept as spectrum.mrc, and
 * recomputed whenever sum.mrc is newer or the tile size differs.
 */
export async function sumAmplitude(out: string, tile: number): Promise<{ amp: Float32Array; pixelSize_A: number }> {
  const sumFile = path.join(out, SUM_FILE);
  const cache = path.join(out, SPECTRUM_FILE);
  const [sumStat, cacheStat] = await Promise.all([fs.stat(sumFile).catch(() => undefined), fs.stat(cache).catch(() => undefined)]);
  if (!sumStat) throw new Error(`${SUM_FILE} is missing in ${out}: the sum stage has not run`);
  if (cacheStat && cacheStat.mtimeMs >= sumStat.mtimeMs) {
    const c = await readImage(cache, 'ctf');
    if (c.width === tile / 2 + 1 && c.height === tile) return { amp: c.data, pixelSize_A: c.pixelSize_A };
  }
  const sum = await readImage(sumFile, 'sum');
  if (!(tile <= sum.width && tile <= sum.height)) throw new RangeError(`CTF tile ${tile} is larger than the ${sum.width}x${sum.height} sum`);
  const amp = await averageAmplitude(sum.data, sum.width, sum.height, tile);
  await writeImage(cache, { data: amp, width: tile / 2 + 1, height: tile, pixelSize_A: sum.pixelSize_A }, 2);
  return { amp, pixelSize_A: sum.pixelSize_A };
}
