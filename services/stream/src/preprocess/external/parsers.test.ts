/**
 * The parsers against files in the programs' real formats (fixtures/, laid out as MotionCor2 1.4+
 * and 1.0-1.3, RELION 4/5 and CTFFIND 4.1.14 / 5.0.2 write them; see the comments at the top of
 * each parser for the sources), and against the ways those files go wrong in practice.
 */
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { MovieMetrics } from '../metrics';
import { writeMrc } from '../mrc';
import { motioncor2Stem } from './motioncor2';
import { EXTERNAL_PARSERS, parseCtffindText, type ParserContext } from './index';

// tsc copies only .ts files to dist: read the fixtures from the source tree.
const FIXTURES = path.join(__dirname, '../../../src/preprocess/external/fixtures');

const dirs: string[] = [];
afterAll(async () => {
  await Promise.all(dirs.map((d) => fs.rm(d, { recursive: true, force: true })));
});

/** A movie output folder holding `files` (fixture name or literal text, by destination). */
async function outDir(files: Record<string, { fixture: string } | string>): Promise<string> {
  const out = await fs.mkdtemp(path.join(os.tmpdir(), 'cloudlet-external-'));
  dirs.push(out);
  for (const [dest, src] of Object.entries(files)) {
    await fs.mkdir(path.dirname(path.join(out, dest)), { recursive: true });
    const text = typeof src === 'string' ? src : await fs.readFile(path.join(FIXTURES, src.fixture), 'utf8');
    await fs.writeFile(path.join(out, dest), text);
  }
  return out;
}

async function fixture(name: string): Promise<string> {
  return fs.readFile(path.join(FIXTURES, name), 'utf8');
}

/** A small but complete MRC image, standing in for a motion-corrected sum. */
async function sum(file: string): Promise<void> {
  await fs.mkdir(path.dirname(file), { recursive: true });
  await writeMrc(file, { width: 8, height: 8, frames: [new Float32Array(64).fill(1)], mode: 2, pixelSizeA: 0.83 });
}

function ctx(out: string, movieName: string): ParserContext {
  return { out, movie: `/data/session7/${movieName}`, stem: movieName.replace(/\.[^.]*$/, '') };
}

/** Every number anywhere in the record is finite: NaN or Infinity would poison curation and charts. */
function expectAllFinite(m: MovieMetrics): void {
  const walk = (v: unknown, at: string): void => {
    if (typeof v === 'number') expect([at, Number.isFinite(v)]).toEqual([at, true]);
    else if (v && typeof v === 'object') for (const [k, x] of Object.entries(v)) walk(x, `${at}.${k}`);
  };
  walk(m, 'metrics');
}

async function expectBadOutput(p: Promise<unknown>, file: string, problem: RegExp): Promise<void> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e as Error & { code?: string },
  );
  expect(err).toBeDefined();
  expect(err?.code).toBe('bad_output');
  expect(err?.message).toContain(file);
  expect(err?.message).toMatch(problem);
}

describe('motioncor2', () => {
  const movie = 'FoilHole_2231_Data_2245_fractions.tiff';
  const log = 'FoilHole_2231_Data_2245_fractions-Patch-Full.log';

  it('reads the -Patch-Full.log of MotionCor2 1.4+ (-LogDir), rebasing the shifts on frame 1', async () => {
    const out = await outDir({ [log]: { fixture: log } });
    await sum(path.join(out, 'FoilHole_2231_Data_2245_fractions_sum.mrc'));
    await sum(path.join(out, 'FoilHole_2231_Data_2245_fractions_sum_DW.mrc'));
    const m = await parse('motioncor2', ctx(out, movie));
    expect(m.engines).toEqual({ motion: 'motioncor2' });
    expect(m.frames).toBe(8);
    expect(m.shifts_px?.[0]).toEqual({ x: 0, y: 0 });
    // Written relative to the central frame (5): frame 8 minus frame 1.
    expect(m.shifts_px?.[7]?.x).toBeCloseTo(-4.14, 6);
    expect(m.shifts_px?.[7]?.y).toBeCloseTo(3.09, 6);
    expect(m.totalMotion_px).toBeCloseTo(5.170185, 5);
    expect(m.maxFrameMotion_px).toBeCloseTo(1.330038, 5);
    expect(m.files).toEqual({ motion_log: log, sum: 'FoilHole_2231_Data_2245_fractions_sum.mrc', sum_dw: 'FoilHole_2231_Data_2245_fractions_sum_DW.mrc' });
    expectAllFinite(m);
  });

  it('reads the <prefix>0-Full.log of older versions (-LogFile)', async () => {
    const out = await outDir({ 'grid3_00420-Full.log': { fixture: 'grid3_00420-Full.log' } });
    await sum(path.join(out, 'grid3_0042.mrc'));
    const m = await parse('motioncor2', ctx(out, 'grid3_0042.mrc'));
    expect(m.frames).toBe(4);
    expect(m.totalMotion_px).toBeCloseTo(3.3, 9);
    expect(m.maxFrameMotion_px).toBeCloseTo(1.3, 9);
    expect(m.files).toEqual({ motion_log: 'grid3_00420-Full.log', sum: 'grid3_0042.mrc' });
  });

  it('names logs as MotionCor2 does: up to the first .mrc, .tif or .eer', () => {
    expect(motioncor2Stem('a.mrcs')).toBe('a');
    expect(motioncor2Stem('b_0001.TIFF')).toBe('b_0001');
    expect(motioncor2Stem('c.eer')).toBe('c');
    expect(motioncor2Stem('sq1_-0.0.tif')).toBe('sq1_-0.0');
  });

  const badLogs: [string, (text: string) => string, RegExp][] = [
    ['truncated mid-line', (t) => t.slice(0, t.length - 7), /truncated: the last line is incomplete/],
    ['NaN shift', (t) => t.replace('-0.74', ' nan'), /line 10 x shift: "nan" is not a number/],
    ['four columns', (t) => t.replace('   6     -0.41      0.27', '   6     -0.41      0.27  1.0'), /line 9: 4 columns, expected 3/],
    ['a frame missing', (t) => t.replace(/^ {3}3 .*\n/m, ''), /frame 4, expected 3/],
    ['no frames', (t) => t.split('\n').filter((l) => l.startsWith('#') || l === '').join('\n'), /0 frame line\(s\)/],
  ];
  it.each(badLogs)('rejects a log with %s, naming the file', async (_what, damage, problem) => {
    const out = await outDir({ [log]: damage(await fixture(log)) });
    await sum(path.join(out, 'FoilHole_2231_Data_2245_fractions_sum.mrc'));
    await expectBadOutput(parse('motioncor2', ctx(out, movie)), log, problem);
  });

  it('rejects a missing log, listing the names it looked for', async () => {
    const out = await outDir({});
    await sum(path.join(out, 'FoilHole_2231_Data_2245_fractions_sum.mrc'));
    await expectBadOutput(parse('motioncor2', ctx(out, movie)), out, /no MotionCor2 full-frame log \(looked for .*-Patch-Full\.log.*0-Full\.log/);
  });

  it('rejects a missing or truncated sum', async () => {
    const out = await outDir({ [log]: { fixture: log } });
    await expectBadOutput(parse('motioncor2', ctx(out, movie)), out, /no MotionCor2 output sum/);
    const file = path.join(out, 'FoilHole_2231_Data_2245_fractions_sum.mrc');
    await sum(file);
    await fs.truncate(file, 1024 + 100);
    await expectBadOutput(parse('motioncor2', ctx(out, movie)), file, /not a complete MRC image: .*truncated/);
  });
});

describe('relion_motioncorr', () => {
  it('reads the per-movie STAR of RELION 4/5, skipping frames left out of the sum', async () => {
    const out = await outDir({ 'relion/movie.star': { fixture: 'relion-movie.star' }, 'relion/corrected_micrographs.star': { fixture: 'relion-corrected_micrographs.star' } });
    await sum(path.join(out, 'relion/movie.mrc'));
    const m = await parse('relion_motioncorr', ctx(out, 'sq1_0007_-0.0.tif'));
    expect(m.engines).toEqual({ motion: 'relion_motioncorr' });
    expect([m.frames, m.width_px, m.height_px, m.pixelSize_A]).toEqual([8, 5760, 4092, 0.83]);
    expect(m.shifts_px).toHaveLength(7);
    expect(m.shifts_px?.[0]).toEqual({ x: 0, y: 0 });
    expect(m.shifts_px?.[6]?.x).toBeCloseTo(-1.989805, 6);
    expect(m.totalMotion_px).toBeCloseTo(2.570555, 5);
    expect(m.maxFrameMotion_px).toBeCloseTo(0.834765, 5);
    expect(m.files).toEqual({ motion_star: 'relion/movie.star', sum: 'relion/movie.mrc' });
    expectAllFinite(m);
  });

  it('prefers the STAR named as RELION names it after the movie (dots become underscores)', async () => {
    const named = (await fixture('relion-movie.star')).replace('-1.989805', '-2.989805');
    const out = await outDir({ 'relion/sq1_5_0001.star': named, 'relion/other.star': { fixture: 'relion-movie.star' } });
    await sum(path.join(out, 'relion/sq1_5_0001.mrc'));
    const m = await parse('relion_motioncorr', ctx(out, 'sq1.5_0001.tif'));
    expect(m.shifts_px?.[6]?.x).toBeCloseTo(-2.989805, 6);
  });

  it('refuses to guess between two per-movie STAR files', async () => {
    const out = await outDir({ 'relion/a.star': { fixture: 'relion-movie.star' }, 'relion/b.star': { fixture: 'relion-movie.star' } });
    await expectBadOutput(parse('relion_motioncorr', ctx(out, 'movie.tif')), path.join(out, 'relion'), /2 per-movie STAR files/);
  });

  const badStars: [string, (text: string) => string, RegExp][] = [
    ['a row cut short', (t) => t.replace('           5    -1.452913     1.180655 ', '           5    -1.452913'), /line \d+: 2 values in data_global_shift, which has 3 columns/],
    ['NaN shift', (t) => t.replace('-1.690021', 'nan'), /frame 6 x shift: "nan" is not a number/],
    ['fewer rows than frames', (t) => t.replace(/_rlnImageSizeZ +8/, '_rlnImageSizeZ 9'), /8 rows, but data_general says 9 frames/],
    ['no data_global_shift', (t) => t.replace('data_global_shift', 'data_something_else'), /no data_global_shift block/],
    ['no shift column', (t) => t.replace('_rlnMicrographShiftY #3', '_rlnSomethingElse #3'), /no _rlnMicrographShiftY column/],
    ['an unaligned frame between aligned ones', (t) => t.replace('    -1.120480     0.901377', ' -9999.000000 -9999.000000'), /frame 5: aligned after a frame that was not/],
    ['a truncated last line', (t) => t.trimEnd().slice(0, -3), /truncated: the last line is incomplete/],
  ];
  it.each(badStars)('rejects a STAR file with %s, naming the file', async (_what, damage, problem) => {
    const out = await outDir({ 'relion/movie.star': damage(await fixture('relion-movie.star')) });
    await sum(path.join(out, 'relion/movie.mrc'));
    await expectBadOutput(parse('relion_motioncorr', ctx(out, 'movie.tif')), path.join(out, 'relion/movie.star'), problem);
  });

  it('rejects a missing STAR file and a STAR file without its sum', async () => {
    const out = await outDir({});
    await expectBadOutput(parse('relion_motioncorr', ctx(out, 'movie.tif')), out, /no RELION per-movie motion STAR file/);
    const out2 = await outDir({ 'relion/movie.star': { fixture: 'relion-movie.star' } });
    await expectBadOutput(parse('relion_motioncorr', ctx(out2, 'movie.tif')), path.join(out2, 'relion/movie.mrc'), /missing/);
  });
});

describe('ctffind4 and ctffind5', () => {
  it('reads a CTFFIND 4.1 result: U >= V kept, azimuth folded into [0, 180)', async () => {
    const out = await outDir({ 'FoilHole_2231_Data_2245_fractions_ctf.txt': { fixture: 'FoilHole_2231_Data_2245_fractions_ctf.txt' }, 'FoilHole_2231_Data_2245_fractions_ctf.mrc': 'x' });
    const m = await parse('ctffind4', ctx(out, 'FoilHole_2231_Data_2245_fractions.tiff'));
    expect(m.engines).toEqual({ ctf: 'ctffind4' });
    expect(m.defocusU_A).toBeCloseTo(14873.416016, 5);
    expect(m.defocusV_A).toBeCloseTo(14502.708984, 5);
    expect(m.astigmatism_A).toBeCloseTo(370.707032, 5);
    expect(m.astigmatismAngle_deg).toBeCloseTo(142.787754, 5);
    expect(m.phaseShift_deg).toBe(0);
    expect(m.ctfCc).toBeCloseTo(0.187341, 6);
    expect(m.ctfFitResolution_A).toBeCloseTo(3.514286, 6);
    expect(m.files).toEqual({ ctf_txt: 'FoilHole_2231_Data_2245_fractions_ctf.txt', ctf_diagnostic: 'FoilHole_2231_Data_2245_fractions_ctf.mrc' });
    expectAllFinite(m);
  });

  it('reads a CTFFIND 5 result: swaps defocus 1 < 2 and turns the axis, radians to degrees, "inf" fit left unset', async () => {
    const out = await outDir({ 'grid3_0042_ctf.txt': { fixture: 'grid3_0042_ctf.txt' } });
    const m = await parse('ctffind5', ctx(out, 'grid3_0042.mrc'));
    expect(m.engines).toEqual({ ctf: 'ctffind5' });
    expect(m.defocusU_A).toBeCloseTo(21660.503906, 5);
    expect(m.defocusV_A).toBeCloseTo(21044.091797, 5);
    expect(m.astigmatism_A).toBeCloseTo(616.412109, 5);
    expect(m.astigmatismAngle_deg).toBeCloseTo(22.504417, 5);
    expect(m.phaseShift_deg).toBeCloseTo(30, 4);
    expect(m).not.toHaveProperty('ctfFitResolution_A');
    expectAllFinite(m);
    const text = await fixture('grid3_0042_ctf.txt');
    expect(parseCtffindText(text, 'f.txt', 5).sample).toEqual({ tiltAxisAngle_deg: 84.219604, tiltAngle_deg: 7.833216, thickness_A: 1432.871094 });
    expect(parseCtffindText(text.replace(' inf ', ' 3.9 '), 'f.txt', 5).metrics.ctfFitResolution_A).toBe(3.9);
  });

  it('reads a result line without the # header', () => {
    expect(parseCtffindText('1.0 9000.0 8800.0 10.0 0.0 0.2 4.5\n', 'f.txt', 4).metrics.defocusU_A).toBe(9000);
  });

  const ctf4 = 'FoilHole_2231_Data_2245_fractions_ctf.txt';
  const badCtf: [string, 4 | 5, string, (text: string) => string, RegExp][] = [
    ['truncated after the header', 4, ctf4, (t) => t.slice(0, t.indexOf('\n1.000000') + 1), /no result line after the # header/],
    ['NaN defocus', 4, ctf4, (t) => t.replace('14873.416016', 'nan'), /column 2 \(defocus 1\): "nan" is not a number/],
    ['-nan cross correlation', 4, ctf4, (t) => t.replace('0.187341', '-nan'), /column 6 \(cross correlation\): "-nan"/],
    ['a column missing', 4, ctf4, (t) => t.replace(' 3.514286', ''), /6 columns, expected 7 \(CTFFIND4 layout\)/],
    ['two result lines', 4, ctf4, (t) => `${t}2.000000 1 1 0 0 0 5\n`, /2 result lines/],
    ['CTFFIND4 output read as CTFFIND5', 5, ctf4, (t) => t, /declares 7 columns; CTFFIND5 writes 10/],
    ['a CTFFIND5 line cut short', 5, 'grid3_0042_ctf.txt', (t) => t.replace(' 1432.871094', ''), /9 columns, expected 10 \(CTFFIND5 layout\)/],
  ];
  it.each(badCtf)('rejects %s, naming the file', async (_what, version, src, damage, problem) => {
    const name = 'm_ctf.txt';
    const out = await outDir({ [name]: damage(await fixture(src)) });
    await expectBadOutput(parse(`ctffind${version}`, ctx(out, 'm.tif')), path.join(out, name), problem);
  });

  it('rejects a missing result and an empty one', async () => {
    const out = await outDir({});
    await expectBadOutput(parse('ctffind4', ctx(out, 'm.tif')), out, /no CTFFIND4 result \(\.txt\) \(looked for m_ctf\.txt, m\.txt\)/);
    const out2 = await outDir({ 'm_ctf.txt': '' });
    await expectBadOutput(parse('ctffind5', ctx(out2, 'm.tif')), path.join(out2, 'm_ctf.txt'), /empty/);
  });
});

function parse(name: string, c: ParserContext): Promise<MovieMetrics> {
  const parser = EXTERNAL_PARSERS[name];
  if (!parser) throw new Error(`no parser ${name}`);
  return parser(c);
}
