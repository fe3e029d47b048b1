import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { mergeMetrics, type MovieMetrics } from './metrics';
import { readMrcHeader, writeMrc, type MrcMode } from './mrc';
import { autoBin, STAGES } from './stages';
import { STAGE_NAMES, type StageInput, type StageName, type StageOptions } from './stage-types';
import { linearDrift, syntheticMovie } from './synthetic';
import { buildTiff } from './testing/tiff-builder';

const OPTIONS: StageOptions = {
  optics: { voltage_kV: 300, cs_mm: 2.7, amplitudeContrast: 0.07, dosePerFrame_ePerA2: 1 },
  motion: { bin: 2, iterations: 6, patches: null },
  sum: { reducedBin: 2 },
  ctf: { tile: 128, minRes_A: 30, maxRes_A: 5, minDefocus_A: 2000, maxDefocus_A: 50000, phaseShift: false, ccThreshold: 0.3 },
  picking: { radiusMin_A: 6, radiusMax_A: 10, threshold: 6 },
  thumbnails: { maxSide: 64 },
};

let dir: string;
beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'stages-'));
});
afterEach(() => {
  fs.rmSync(dir, { recursive: true, force: true });
});

function input(stage: StageName, movie: string, options: Partial<StageOptions> = {}, previous: MovieMetrics = {}): StageInput {
  const out = path.join(dir, 'out');
  fs.mkdirSync(out, { recursive: true });
  return { stage, movie, out, options: { ...OPTIONS, ...options }, previous };
}

async function movieFile(frames: ArrayLike<number>[], width: number, height: number, o: { mode?: MrcMode; pixelSizeA?: number; name?: string } = {}): Promise<string> {
  const file = path.join(dir, o.name ?? 'movie.mrc');
  await writeMrc(file, { width, height, frames, mode: o.mode ?? 0, pixelSizeA: o.pixelSizeA ?? 1 });
  return file;
}

/** Poisson-ish counts: enough structure that nothing is all zero. */
function counts(width: number, height: number, frames: number, seed = 1): Float32Array[] {
  let s = seed;
  const next = (): number => (s = (s * 1103515245 + 12345) % 2147483648) / 2147483648;
  return Array.from({ length: frames }, () => Float32Array.from({ length: width * height }, () => Math.floor(next() * 4)));
}

async function expectBadMovie(p: Promise<unknown>, message: RegExp): Promise<void> {
  await expect(p).rejects.toMatchObject({ code: 'bad_movie', message: expect.stringMatching(message) as unknown });
}

describe('bad movies fail with code bad_movie', () => {
  it('an unsupported MRC mode', async () => {
    const file = await movieFile(counts(64, 64, 2), 64, 64);
    const fd = fs.openSync(file, 'r+');
    const mode = Buffer.alloc(4);
    mode.writeInt32LE(4, 0); // complex 32-bit: not a detector mode
    fs.writeSync(fd, mode, 0, 4, 12);
    fs.closeSync(fd);
    await expectBadMovie(STAGES.motion(input('motion', file)), /unsupported MRC mode 4/);
  });

  it('a header that promises more frames than the file holds, or fewer', async () => {
    const file = await movieFile(counts(64, 64, 3), 64, 64);
    fs.truncateSync(file, fs.statSync(file).size - 100);
    await expectBadMovie(STAGES.motion(input('motion', file)), /truncated/);
    const longer = await movieFile(counts(64, 64, 3), 64, 64, { name: 'longer.mrc' });
    fs.appendFileSync(longer, Buffer.alloc(64 * 64));
    await expectBadMovie(STAGES.motion(input('motion', longer)), /accounts for only/);
  });

  it('a gain reference of the wrong size, and one that fits only once rotated', async () => {
    const file = await movieFile(counts(128, 64, 2), 128, 64);
    const gain = path.join(dir, 'gain.mrc');
    await writeMrc(gain, { width: 64, height: 128, frames: [new Float32Array(64 * 128).fill(1)], mode: 2 });
    const optics = (rotate: 0 | 1): StageOptions['optics'] => ({ ...OPTIONS.optics, gain: { file: gain, flipX: false, flipY: false, rotate } });
    await expectBadMovie(STAGES.motion(input('motion', file, { optics: optics(0) })), /gain reference gain.mrc is 64x128 after orienting, but the movie frames are 128x64/);
    await expect(STAGES.motion(input('motion', file, { optics: optics(1) }))).resolves.toMatchObject({ frames: 2 });
  });

  it('NaN in a frame', async () => {
    const frames = counts(64, 64, 3);
    (frames[1] as Float32Array)[64 * 10 + 5] = NaN;
    const file = await movieFile(frames, 64, 64, { mode: 2 });
    await expectBadMovie(STAGES.motion(input('motion', file)), /frame 1 has NaN at pixel \(5, 10\)/);
  });

  it('NaN in the gain reference', async () => {
    const file = await movieFile(counts(64, 64, 2), 64, 64);
    const gain = path.join(dir, 'gain.mrc');
    const g = new Float32Array(64 * 64).fill(1);
    g[7] = NaN;
    await writeMrc(gain, { width: 64, height: 64, frames: [g], mode: 2 });
    await expectBadMovie(STAGES.motion(input('motion', file, { optics: { ...OPTIONS.optics, gain: { file: gain, flipX: false, flipY: false, rotate: 0 } } })), /holds NaN/);
  });

  it('an all-zero frame', async () => {
    const frames = counts(64, 64, 4);
    (frames[2] as Float32Array).fill(0);
    await expectBadMovie(STAGES.motion(input('motion', await movieFile(frames, 64, 64))), /frame 2 is all zeros/);
  });

  it('a single frame', async () => {
    await expectBadMovie(STAGES.motion(input('motion', await movieFile(counts(64, 64, 1), 64, 64))), /at least 2 frames/);
  });

  it('absurd pixel sizes, from the header or the configuration, and none at all', async () => {
    await expectBadMovie(STAGES.motion(input('motion', await movieFile(counts(64, 64, 2), 64, 64, { pixelSizeA: 0.05 }))), /pixel size 0.05 A is outside 0.2-20 A \(from the header/);
    const ok = await movieFile(counts(64, 64, 2), 64, 64, { name: 'ok.mrc' });
    await expectBadMovie(STAGES.motion(input('motion', ok, { optics: { ...OPTIONS.optics, pixelSize_A: 25 } })), /pixel size 25 A is outside/);
    const none = await movieFile(counts(64, 64, 2), 64, 64, { pixelSizeA: 0, name: 'none.mrc' });
    await expectBadMovie(STAGES.motion(input('motion', none)), /no pixel size/);
    await expect(STAGES.motion(input('motion', none, { optics: { ...OPTIONS.optics, pixelSize_A: 0.83 } }))).resolves.toMatchObject({ pixelSize_A: 0.83 });
  });

  it('broken and unsupported TIFFs', async () => {
    const bad = path.join(dir, 'movie.tif');
    fs.writeFileSync(bad, Buffer.from('II*\0garbage'));
    await expectBadMovie(STAGES.motion(input('motion', bad, { optics: { ...OPTIONS.optics, pixelSize_A: 1 } })), /movie\.tif/);
    const eer = path.join(dir, 'movie.eer');
    fs.writeFileSync(eer, buildTiff({ width: 64, height: 64, pages: counts(64, 64, 2), bits: 8 }));
    await expectBadMovie(STAGES.motion(input('motion', eer, { optics: { ...OPTIONS.optics, pixelSize_A: 1 } })), /EER is not supported/);
  });

  it('a stage whose input an earlier stage has not written fails, but not as a bad movie', async () => {
    const file = await movieFile(counts(64, 64, 2), 64, 64);
    const err = await STAGES.sum(input('sum', file)).catch((e: unknown) => e as { code?: string; message: string });
    expect(err).toBeInstanceOf(Error);
    expect((err as { code?: string }).code).not.toBe('bad_movie');
    expect((err as Error).message).toMatch(/motion\.json is missing.*the motion stage has not run/);
  });
});

describe('all stages on a small synthetic movie', () => {
  it('write their files and metrics, and running one again gives the same files', async () => {
    const frames = 10;
    const drift = linearDrift(frames, { x: 6, y: -4 });
    const m = await syntheticMovie({ size: 256, frames, seed: 3, dosePerFrame: 2, ctf: { defocusU_A: 12000, defocusV_A: 11000, astigmatismAngle_deg: 30 }, drift, particles: { count: 10, radius_px: 8 } });
    const file = path.join(dir, 'movie.tif');
    fs.writeFileSync(file, buildTiff({ width: 256, height: 256, pages: m.frames, bits: 8, compression: 'lzw' }));
    let metrics: MovieMetrics = {};
    const options = { optics: { ...OPTIONS.optics, pixelSize_A: 1, dosePerFrame_ePerA2: 2 } };
    for (const stage of STAGE_NAMES) metrics = mergeMetrics(metrics, await STAGES[stage](input(stage, file, options, metrics)));
    const out = path.join(dir, 'out');

    expect(metrics).toMatchObject({ frames, width_px: 256, height_px: 256, pixelSize_A: 1, movieBytes: fs.statSync(file).size });
    expect(Object.keys(metrics.engines ?? {}).sort()).toEqual([...STAGE_NAMES].sort());
    const last = metrics.shifts_px?.[frames - 1];
    expect(Math.hypot((last?.x ?? 0) - 6, (last?.y ?? 0) + 4)).toBeLessThan(1);
    expect(metrics.totalMotion_px).toBeGreaterThan(6);
    expect(metrics.maxFrameMotion_px).toBeGreaterThan(0.5);

    const sum = await readMrcHeader(path.join(out, 'sum.mrc'));
    expect(sum).toMatchObject({ width: 256, height: 256, frames: 1, mode: 12 });
    const reduced = await readMrcHeader(path.join(out, 'sum_bin2.mrc'));
    expect(reduced).toMatchObject({ width: 128, height: 128, mode: 12 });
    expect(reduced.pixelSizeA).toBeCloseTo(2, 5);
    expect(metrics.reducedBytes).toBe(fs.statSync(path.join(out, 'sum_bin2.mrc')).size);
    expect(metrics.reductionRatio).toBeCloseTo((metrics.movieBytes ?? 0) / (metrics.reducedBytes ?? 1), 1);

    expect(metrics.defocusU_A).toBeGreaterThan(metrics.defocusV_A ?? Infinity);
    expect(metrics.astigmatism_A).toBeCloseTo((metrics.defocusU_A ?? 0) - (metrics.defocusV_A ?? 0), 0);
    expect(metrics.iceRatio).toBeGreaterThan(0.5);
    expect(metrics.particles).toBe(fs.readFileSync(path.join(out, 'picks.star'), 'utf8').split('\n').filter((l) => /^\d/.test(l)).length);
    for (const f of Object.values(metrics.files ?? {})) expect(fs.existsSync(path.join(out, f))).toBe(true);
    for (const png of ['ctf.png', 'sum.png', 'spectrum.png']) expect(fs.readFileSync(path.join(out, png)).subarray(1, 4).toString()).toBe('PNG');
    expect(JSON.parse(fs.readFileSync(path.join(out, 'ctf.json'), 'utf8'))).toMatchObject({ tile: 128, pixelSize_A: 1 });

    const before = fs.readFileSync(path.join(out, 'sum.mrc'));
    await STAGES.sum(input('sum', file, options, metrics));
    expect(fs.readFileSync(path.join(out, 'sum.mrc')).equals(before)).toBe(true);
    expect(fs.readdirSync(out).filter((f) => f.endsWith('.tmp'))).toEqual([]);
  }, 30_000);

  it('ice reports no value, and says why, when Nyquist is coarser than the ice band', async () => {
    const m = await syntheticMovie({ size: 128, frames: 3, seed: 4, dosePerFrame: 4, ctf: { defocusU_A: 20000, defocusV_A: 20000, astigmatismAngle_deg: 0 } });
    const file = await movieFile(m.frames, 128, 128, { pixelSizeA: 2 });
    for (const stage of ['motion', 'sum'] as const) await STAGES[stage](input(stage, file));
    const r = await STAGES.ice(input('ice', file));
    expect(r.iceRatio).toBeUndefined();
    expect(JSON.parse(fs.readFileSync(path.join(dir, 'out', 'ice.json'), 'utf8'))).toMatchObject({ skipped: expect.stringMatching(/Nyquist 4 A is coarser/) as unknown });
  });
});

test("motion bin 'auto' brings the long side near 512 pixels and never below bin 1", () => {
  expect(autoBin(4096, 4096)).toBe(8); // Falcon 4
  expect(autoBin(5760, 4092)).toBe(11); // K3
  expect(autoBin(512, 512)).toBe(1);
  expect(autoBin(128, 96)).toBe(1);
});
