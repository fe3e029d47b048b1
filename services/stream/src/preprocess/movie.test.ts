import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { writeMrc, type MrcMode } from './mrc';
import { loadGain, openMovie } from './movie';

let dir: string;
beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'movie-'));
});
afterEach(() => {
  fs.rmSync(dir, { recursive: true, force: true });
});

const optics = { voltage_kV: 300, cs_mm: 2.7, amplitudeContrast: 0.07, dosePerFrame_ePerA2: 1 };

describe('loadGain', () => {
  // 4 x 2:  1 2 3 4 / 5 6 7 8
  const source = Float32Array.from({ length: 8 }, (_, i) => i + 1);

  it.each([
    [0, false, false, 4, 2, [1, 2, 3, 4, 5, 6, 7, 8]],
    // A counter-clockwise quarter turn as displayed (row 0 on top): the right column comes to the top.
    [1, false, false, 2, 4, [4, 8, 3, 7, 2, 6, 1, 5]],
    [2, false, false, 4, 2, [8, 7, 6, 5, 4, 3, 2, 1]],
    [3, false, false, 2, 4, [5, 1, 6, 2, 7, 3, 8, 4]],
    [0, true, false, 4, 2, [4, 3, 2, 1, 8, 7, 6, 5]],
    [0, false, true, 4, 2, [5, 6, 7, 8, 1, 2, 3, 4]],
    [1, true, false, 2, 4, [8, 4, 7, 3, 6, 2, 5, 1]],
  ] as const)('rotate %d, flipX %s, flipY %s', async (rotate, flipX, flipY, w, h, expected) => {
    const file = path.join(dir, 'gain.mrc');
    await writeMrc(file, { width: 4, height: 2, frames: [source], mode: 2 });
    const g = await loadGain({ file, rotate, flipX, flipY }, w, h);
    expect([g.width, g.height]).toEqual([w, h]);
    expect(Array.from(g.data)).toEqual(expected);
  });
});

describe('openMovie', () => {
  it.each([
    [0, true], [1, true], [6, true], [2, true], [12, true], [1, false], [6, false], [2, false], [101, true],
  ] as const)('mode %d, little-endian %s: frames come back as written', async (mode: MrcMode, littleEndian) => {
    const file = path.join(dir, 'm.mrc');
    const frames = [0, 1].map((z) => Float32Array.from({ length: 64 * 64 }, (_, i) => ((i * 7 + z * 3) % 13) + 1));
    await writeMrc(file, { width: 64, height: 64, frames, mode, littleEndian, pixelSizeA: 1.06 });
    const m = await openMovie(file, optics);
    try {
      expect(m).toMatchObject({ width: 64, height: 64, frames: 2, pixelSize_A: 1.06 });
      for (const z of [1, 0]) expect(Array.from(await m.frame(z))).toEqual(Array.from(frames[z] as Float32Array));
    } finally {
      await m.close();
    }
  });

  it('multiplies the gain into every frame', async () => {
    const file = path.join(dir, 'm.mrc');
    await writeMrc(file, { width: 64, height: 64, frames: [new Float32Array(64 * 64).fill(3), new Float32Array(64 * 64).fill(5)], mode: 0, pixelSizeA: 1 });
    const gain = path.join(dir, 'gain.mrc');
    await writeMrc(gain, { width: 64, height: 64, frames: [Float32Array.from({ length: 64 * 64 }, (_, i) => (i % 2 ? 0.5 : 2))], mode: 2 });
    const m = await openMovie(file, { ...optics, gain: { file: gain, rotate: 0, flipX: false, flipY: false } });
    try {
      expect(Array.from((await m.frame(1)).subarray(0, 4))).toEqual([10, 2.5, 10, 2.5]);
    } finally {
      await m.close();
    }
  });
});
