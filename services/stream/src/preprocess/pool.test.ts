import fs from 'node:fs';
import path from 'node:path';
import { tempDir } from '@cloudlet/core/testing';
import { writeMrc } from './mrc';
import { StageFailure, StagePool } from './pool';
import type { StageInput, StageName, StageOptions } from './stage-types';

jest.setTimeout(30_000);

const FAKE = path.join(__dirname, '..', 'testing', 'fake-stages.js');
const OPTIONS: StageOptions = {
  optics: { voltage_kV: 300, cs_mm: 2.7, amplitudeContrast: 0.07, dosePerFrame_ePerA2: 0 },
  motion: { bin: 2, iterations: 4, patches: null },
  sum: { reducedBin: 2 },
  ctf: { tile: 256, minRes_A: 30, maxRes_A: 5, minDefocus_A: 5000, maxDefocus_A: 50000, phaseShift: false, ccThreshold: 0.3 },
  picking: { radiusMin_A: 50, radiusMax_A: 100, threshold: 4 },
  thumbnails: { maxSide: 256 },
};

const dir = tempDir('cloudlet-pool-');

function input(movie: string, stage: StageName = 'motion'): StageInput {
  return { stage, movie: path.join(dir, movie), out: dir, options: OPTIONS, previous: {} };
}

async function failure(p: Promise<unknown>): Promise<StageFailure> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(StageFailure);
  return err as StageFailure;
}

beforeAll(async () => {
  await writeMrc(path.join(dir, 'good.mrc'), { width: 8, height: 8, mode: 1, frames: [1, 2, 3].map((f) => Array.from({ length: 64 }, (_, i) => (i % 7) + f)) });
  await writeMrc(path.join(dir, 'single.mrc'), { width: 8, height: 8, mode: 1, frames: [Array.from({ length: 64 }, (_, i) => i)] });
  for (const bad of ['hang.mrc', 'oom.mrc', 'exit.mrc', 'throw.mrc']) fs.writeFileSync(path.join(dir, bad), '');
});

describe('StagePool', () => {
  test('runs a stage in a worker and returns its metrics; the previous metrics reach the stage', async () => {
    const pool = new StagePool({ size: 1, stagesModule: FAKE });
    try {
      expect(await pool.run(input('good.mrc'))).toMatchObject({ frames: 3, width_px: 8, height_px: 8 });
      expect(await pool.run({ ...input('good.mrc', 'sum'), previous: { frames: 3 } })).toMatchObject({ reductionRatio: 10 });
      const missing = await failure(pool.run(input('good.mrc', 'sum')));
      expect(missing).toMatchObject({ code: 'error', message: 'sum ran without frames from an earlier stage' });
    } finally {
      await pool.close();
    }
  });

  test("a stage's errors come back as {code, message}: bad_movie stays bad_movie, anything else is error", async () => {
    const pool = new StagePool({ size: 1, stagesModule: FAKE });
    try {
      expect(await failure(pool.run(input('single.mrc')))).toMatchObject({ code: 'bad_movie', message: '1 frame: nothing to align' });
      expect(await failure(pool.run(input('throw.mrc')))).toMatchObject({ code: 'error', message: 'motion broke on throw.mrc' });
      expect(await failure(pool.run(input('missing.mrc')))).toMatchObject({ code: 'bad_movie', message: expect.stringContaining('missing.mrc') as unknown });
    } finally {
      await pool.close();
    }
  });

  test('a hung stage is terminated on timeout and on abort, and its slot keeps working', async () => {
    const pool = new StagePool({ size: 1, stagesModule: FAKE });
    try {
      const started = Date.now();
      expect(await failure(pool.run(input('hang.mrc'), { timeoutMs: 300 }))).toMatchObject({ code: 'timeout', message: 'motion timed out after 0.3 s' });
      expect(Date.now() - started).toBeLessThan(5000);
      const controller = new AbortController();
      const hung = pool.run(input('hang.mrc'), { signal: controller.signal });
      // Queued behind the hung one in a pool of one: only terminating the hung worker frees it.
      const next = pool.run(input('good.mrc'));
      setTimeout(() => controller.abort(), 200);
      expect(await failure(hung)).toMatchObject({ code: 'aborted' });
      expect(await next).toMatchObject({ frames: 3 });
      expect(pool.busy).toBe(0);
    } finally {
      await pool.close();
    }
  });

  test('a worker that runs out of memory or exits fails its task with the reason; the pool goes on', async () => {
    const pool = new StagePool({ size: 2, stagesModule: FAKE, memoryMb: 32 });
    try {
      const [oom, exited, good] = await Promise.allSettled([pool.run(input('oom.mrc')), pool.run(input('exit.mrc')), pool.run(input('good.mrc'))]);
      expect(oom).toMatchObject({ status: 'rejected', reason: { code: 'error', message: 'motion: the worker thread ran out of memory (limit 32 MB)' } });
      expect(exited).toMatchObject({ status: 'rejected', reason: { code: 'error', message: 'motion: the worker thread exited with code 3' } });
      expect(good).toMatchObject({ status: 'fulfilled', value: { frames: 3 } });
      expect(await pool.run(input('good.mrc'))).toMatchObject({ frames: 3 });
    } finally {
      await pool.close();
    }
  });

  test('runs up to size stages at once, and queues the rest', async () => {
    const pool = new StagePool({ size: 2, stagesModule: FAKE });
    try {
      const hung = [pool.run(input('hang.mrc'), { timeoutMs: 2000 }), pool.run(input('hang.mrc'), { timeoutMs: 2000 })];
      const third = pool.run(input('good.mrc'), { timeoutMs: 1000 });
      // Both workers are taken: the third waits in the queue until its own time runs out.
      expect(await failure(third)).toMatchObject({ code: 'timeout' });
      expect(pool.busy).toBe(2);
      await Promise.allSettled(hung);
    } finally {
      await pool.close();
    }
  });

  test('a missing stage table or stage is a task error naming it, not a dead pool', async () => {
    const pool = new StagePool({ size: 1, stagesModule: path.join(dir, 'no-such-stages.js') });
    try {
      expect(await failure(pool.run(input('good.mrc')))).toMatchObject({ code: 'error', message: expect.stringContaining('cannot load the stages from') as unknown });
      fs.writeFileSync(path.join(dir, 'no-such-stages.js'), 'exports.STAGES = {};\n');
      expect(await failure(pool.run(input('good.mrc')))).toMatchObject({ message: expect.stringContaining('no stage "motion"') as unknown });
      fs.writeFileSync(path.join(dir, 'empty.js'), 'exports.nothing = 1;\n');
      const other = new StagePool({ size: 1, stagesModule: path.join(dir, 'empty.js') });
      expect(await failure(other.run(input('good.mrc')))).toMatchObject({ message: expect.stringContaining('exports no STAGES table') as unknown });
      await other.close();
    } finally {
      await pool.close();
    }
  });

  test('close fails what is queued or running; a closed pool takes no work; a bad size is refused', async () => {
    const pool = new StagePool({ size: 1, stagesModule: FAKE });
    const running = failure(pool.run(input('hang.mrc')));
    const queued = failure(pool.run(input('good.mrc')));
    await new Promise((resolve) => setTimeout(resolve, 100));
    await pool.close();
    expect(await running).toMatchObject({ code: 'aborted' });
    expect(await queued).toMatchObject({ code: 'aborted' });
    expect(await failure(pool.run(input('good.mrc')))).toMatchObject({ code: 'aborted', message: 'the stage pool is closed' });
    const controller = new AbortController();
    controller.abort();
    const open = new StagePool({ size: 1, stagesModule: FAKE });
    expect(await failure(open.run(input('good.mrc'), { signal: controller.signal }))).toMatchObject({ code: 'aborted' });
    await open.close();
    expect(() => new StagePool({ size: 0 })).toThrow(/positive integer/);
  });
});
