/**
 * The simulator with its detector on: acquiring through the state writes movies that grow
 * chunk by chunk at their final names and end at exactly the size the MRC header promises.
 */
import fs from 'node:fs';
import path from 'node:path';
import { tempDir, waitFor } from '@cloudlet/core/testing';
import { type SimFixture, startSimulator } from './testing/harness';
import { readMrc } from './testing/movie-readers';

jest.setTimeout(30_000);

const WIDTH = 64;
const HEIGHT = 48;
const FRAMES = 3;
/** Header, no extended header, int16 pixels. */
const MOVIE_BYTES = 1024 + FRAMES * WIDTH * HEIGHT * 2;
const INTERVAL_S = 0.6;

let f: SimFixture | undefined;
let dir: string;

beforeEach(() => {
  dir = tempDir('cloudlet-sim-detector-');
});

afterEach(async () => {
  await f?.stop();
  f = undefined;
  fs.rmSync(dir, { recursive: true, force: true });
});

/** Every size each file in `dir` was seen at, polled until `until` resolves. */
async function watchSizes(until: Promise<unknown>): Promise<Map<string, number[]>> {
  const seen = new Map<string, number[]>();
  let done = false;
  const finish = (): void => {
    done = true;
  };
  until.then(finish, finish);
  const sample = (): void => {
    for (const name of fs.readdirSync(dir)) {
      const size = fs.statSync(path.join(dir, name), { throwIfNoEntry: false })?.size;
      if (size === undefined) continue;
      const sizes = seen.get(name) ?? [];
      if (sizes[sizes.length - 1] !== size) sizes.push(size);
      seen.set(name, sizes);
    }
  };
  while (!done) {
    sample();
    await new Promise((resolve) => setTimeout(resolve, 3));
  }
  await until;
  // The last write may land between the last sample and the signal: look once more.
  sample();
  return seen;
}

function movieLogs(fx: SimFixture): Record<string, unknown>[] {
  return fx.logs.filter((l) => l.msg === 'movie written');
}

test('acquiring writes a movie per exposure, growing over write_seconds to the size its header predicts; stopping stops it', async () => {
  const fx = await startSimulator({
    config: { exposure_interval_s: INTERVAL_S, detector: { enabled: true, output_dir: dir, frames: FRAMES, width: WIDTH, height: HEIGHT, write_seconds: 0.4, write_chunks: 10 } },
  });
  f = fx;
  await waitFor(() => fx.logs.some((l) => l.msg === 'detector ready'), 5000, 'the detector');
  fx.sim.state.setValves(true);
  expect(fx.sim.state.startAcquiring()).toBe(true);

  const sizes = await watchSizes(waitFor(() => movieLogs(fx).length >= 2, 15_000, 'two movies written'));
  fx.sim.state.stopAcquiring();

  const names = ['FoilHole_00001.mrc', 'FoilHole_00002.mrc'];
  for (const name of names) {
    const seen = sizes.get(name) ?? [];
    // Seen while growing (at least two sizes short of the end), never shrinking, ending whole.
    expect(seen.filter((s) => s < MOVIE_BYTES).length).toBeGreaterThanOrEqual(2);
    expect([...seen].sort((a, b) => a - b)).toEqual(seen);
    expect(seen[seen.length - 1]).toBe(MOVIE_BYTES);
    const m = readMrc(path.join(dir, name));
    expect(m).toMatchObject({ nx: WIDTH, ny: HEIGHT, nz: FRAMES, mode: 1, nsymbt: 0, fileBytes: MOVIE_BYTES });
    expect(1024 + m.nsymbt + m.nz * m.nx * m.ny * 2).toBe(m.fileBytes);
  }
  expect(movieLogs(fx).slice(0, 2)).toEqual(
    names.map((name) => expect.objectContaining({ component: 'detector', path: path.join(dir, name), bytes: MOVIE_BYTES, seconds: expect.any(Number) as unknown }) as unknown),
  );
  expect(movieLogs(fx).every((l) => (l.seconds as number) >= 0.39)).toBe(true);

  // Stopped: whatever was in flight finishes, then nothing more appears for several exposure intervals.
  await waitFor(() => fx.sim.detector?.stats().writing === undefined && fx.sim.detector?.stats().queued === 0, 5000, 'the detector to go idle');
  const after = fs.readdirSync(dir).map((n) => [n, fs.statSync(path.join(dir, n)).size]);
  await new Promise((resolve) => setTimeout(resolve, 3 * INTERVAL_S * 1000));
  expect(fs.readdirSync(dir).map((n) => [n, fs.statSync(path.join(dir, n)).size])).toEqual(after);
  expect(after.every(([, size]) => size === MOVIE_BYTES)).toBe(true);
});

test('the detector stays off unless enabled', async () => {
  const fx = await startSimulator({ config: { detector: { output_dir: dir } } });
  f = fx;
  expect(fx.sim.detector).toBeUndefined();
  fx.sim.state.setValves(true);
  fx.sim.state.startAcquiring();
  await waitFor(() => fx.sim.state.snapshot().exposures >= 3, 5000, 'three exposures');
  expect(fs.readdirSync(dir)).toEqual([]);
});
