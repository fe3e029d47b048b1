/**
 * The built-in pipeline through createStream, with a real watcher on a temp dir and the stages
 * in worker threads: bad movies end with a reason (refused by the completeness check before the
 * ledger, or failed by a stage without retries) while good ones are processed, their metrics in
 * the ledger, the API and the event stream, and the service keeps going.
 */
import fs from 'node:fs';
import path from 'node:path';
import { createLogger } from '@cloudlet/core';
import { tempDir, waitFor } from '@cloudlet/core/testing';
import { createStream, type StreamService } from './app';
import { streamSection } from './config';
import type { Movie } from './ledger';
import type { MovieMetrics } from './preprocess/metrics';
import { type Frame, type MrcMode, writeMrc } from './preprocess/mrc';
import { syntheticMovie } from './preprocess/synthetic';

// Generous: with the other suites' stages running beside it on two cores, everything is slower.
jest.setTimeout(300_000);

const SIDE = 512;
const FRAMES = 8;

let dir: string;
let data: string;
let staging: string;
let stream: StreamService;
let url: string;
const events: Record<string, unknown>[] = [];
const controller = new AbortController();

/** Written outside the watched root, then renamed in: the test is about processing, not settling. */
async function put(name: string, frames: Frame[], mode: MrcMode, patch?: (file: Buffer) => void): Promise<void> {
  const tmp = path.join(staging, name);
  await writeMrc(tmp, { width: SIDE, height: SIDE, frames, mode, pixelSizeA: 1 });
  if (patch) {
    const bytes = fs.readFileSync(tmp);
    patch(bytes);
    fs.writeFileSync(tmp, bytes);
  }
  fs.renameSync(tmp, path.join(data, name));
}

async function goodFrames(seed: number): Promise<Float32Array[]> {
  const movie = await syntheticMovie({ size: SIDE, frames: FRAMES, seed, dosePerFrame: 4, ctf: { defocusU_A: 15000, defocusV_A: 14000, astigmatismAngle_deg: 30 }, particles: { count: 20, radius_px: 40 } });
  return movie.frames;
}

function byPath(p: string): Movie | undefined {
  return stream.ledger.all().find((m) => m.path === p);
}

beforeAll(async () => {
  dir = tempDir('cloudlet-preprocess-');
  data = path.join(dir, 'data');
  staging = path.join(dir, 'staging');
  fs.mkdirSync(data);
  fs.mkdirSync(staging);
  const config = streamSection.parse({
    roots: [{ path: data, mode: 'event' }],
    settle_ms: 200,
    ledger_file: path.join(dir, 'ledger.sqlite'),
    output_dir: path.join(dir, 'out'),
    // pipeline_file stays empty: the built-in pipeline, motion to thumbnails.
    workers: 2,
    listen_port: 0,
    preprocess: { optics: { dose_per_frame: 4 }, ctf: { tile: 256 } },
  });
  // The real stages (preprocess/stages.ts), the default the workers load.
  stream = createStream({ config, log: createLogger({ name: 'preprocess-test', level: 'silent' }) });
  ({ url } = await stream.start());
  const res = await fetch(`${url}/api/events`, { signal: controller.signal });
  void (async () => {
    const decoder = new TextDecoder();
    let buffered = '';
    try {
      for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
        buffered += decoder.decode(chunk, { stream: true });
        const lines = buffered.split('\n');
        buffered = lines.pop() ?? '';
        for (const line of lines) if (line.startsWith('data: ')) events.push(JSON.parse(line.slice(6)) as Record<string, unknown>);
      }
    } catch {
      // aborted at the end
    }
  })();
});

afterAll(async () => {
  controller.abort();
  await stream?.stop();
});

test('bad movies end with a reason, good ones are processed with their metrics, and the service keeps going', async () => {
  const good = await goodFrames(1);
  await put('good_1.mrc', good, 1);
  // Mode 3 (complex int16) in a header whose sizes otherwise fit: the completeness check refuses it.
  await put('mode3.mrc', good, 1, (b) => b.writeInt32LE(3, 12));
  // The header claims 7 frames, the file holds 8.
  await put('size_lie.mrc', good, 1, (b) => b.writeInt32LE(FRAMES - 1, 8));
  const withNaN = good.map((f) => f.slice());
  (withNaN[2] as Float32Array)[1234] = NaN;
  await put('nan.mrc', withNaN, 2);
  await put('zero_frame.mrc', good.map((f, i) => (i === 3 ? new Float32Array(f.length) : f)), 1);
  await put('single.mrc', good.slice(0, 1), 1);

  await waitFor(() => stream.ledger.counts().done === 1 && stream.ledger.counts().failed === 3 && stream.ledger.passedOver().length === 2, 240_000, 'one done, three failed, two passed over');
  const reasons = Object.fromEntries(stream.ledger.passedOver().map((p) => [p.path, `${p.status}: ${p.reason ?? ''}`]));
  expect(reasons['mode3.mrc']).toMatch(/^rejected: .*unsupported MRC mode 3/);
  expect(reasons['size_lie.mrc']).toMatch(/^rejected: header says \d+ bytes, file has \d+/);
  for (const [name, why] of [
    ['nan.mrc', /NaN/],
    ['zero_frame.mrc', /zero|empty/i],
    ['single.mrc', /frame/],
  ] as const) {
    const m = byPath(name);
    expect(m).toMatchObject({ state: 'failed', step: 'motion', attempts: 1 });
    expect(m?.reason).toMatch(/^motion: bad movie: /);
    expect(m?.reason).toMatch(why);
  }

  const done = byPath('good_1.mrc') as Movie;
  expect(done.state).toBe('done');
  checkMetrics(done.metrics);
  // The options reached the stages (the 256 tile, 300 kV): the fit finds the synthetic defocus.
  expect(Math.abs((done.metrics.defocusU_A as number) - 15000)).toBeLessThan(750);
  expect(Math.abs((done.metrics.defocusV_A as number) - 14000)).toBeLessThan(750);
  // Every stage's end is stamped, in pipeline order.
  const ends = ['motion', 'sum', 'ctf', 'ice', 'picking', 'thumbnails'].map((s) => done.times[`${s}.end`] as number);
  expect(ends.every((t, i) => t > 0 && (i === 0 || t >= (ends[i - 1] as number)))).toBe(true);

  // The API lists the movies with their metrics; the event stream carried them stage by stage.
  const listed = (await (await fetch(`${url}/api/movies`)).json()) as { path: string; state: string; reason: string | null; metrics: MovieMetrics }[];
  const apiGood = listed.find((m) => m.path === 'good_1.mrc');
  expect(apiGood?.metrics).toEqual(done.metrics);
  expect(listed.find((m) => m.path === 'nan.mrc')).toMatchObject({ state: 'failed', reason: expect.stringMatching(/^motion: bad movie: /) as unknown, metrics: {} });
  await waitFor(() => events.some((e) => e.type === 'done'), 5000, 'the done event');
  const metricEvents = events.filter((e) => e.type === 'metrics' && (e.movie as { path: string }).path === 'good_1.mrc');
  expect(metricEvents.map((e) => e.step)).toEqual(['motion', 'sum', 'ctf', 'ice', 'picking', 'thumbnails']);
  expect((metricEvents[0]?.movie as { metrics: MovieMetrics }).metrics.frames).toBe(FRAMES);
  expect(events.find((e) => e.type === 'failed' && (e.movie as { path: string }).path === 'single.mrc')).toMatchObject({ step: 'motion', movie: { reason: expect.stringMatching(/bad movie/) as unknown } });

  // Still going: the next movie is processed like the first.
  // Another exposure of the same field (one more electron per pixel): a new movie, no second synthesis.
  await put('good_2.mrc', good.map((f) => f.map((v) => v + 1)), 1);
  await waitFor(() => byPath('good_2.mrc')?.state === 'done', 120_000, 'the second good movie');
  checkMetrics((byPath('good_2.mrc') as Movie).metrics);
});

test('requeued, a movie skips its finished stages and keeps their metrics', async () => {
  const before = byPath('good_1.mrc') as Movie;
  const out = path.join(dir, 'out', fs.readdirSync(path.join(dir, 'out')).find((d) => d.endsWith('_good_1')) as string);
  for (const stage of ['motion', 'sum', 'ctf', 'ice', 'picking', 'thumbnails']) expect(fs.statSync(path.join(out, `${stage}.metrics.json`)).size).toBeGreaterThan(0);
  stream.ledger.transition(before.id, 'queued', { stepIndex: 0 });
  stream.runner.pump();
  const after = await waitFor(() => {
    const m = byPath('good_1.mrc');
    return m?.state === 'done' && m.times['thumbnails.skipped'] !== undefined ? m : undefined;
  }, 60_000, 'the requeued movie');
  expect(['motion', 'sum', 'ctf', 'ice', 'picking'].every((s) => after.times[`${s}.skipped`] !== undefined)).toBe(true);
  expect(after.metrics).toEqual(before.metrics);

  // As after a stop between a stage's last write and the ledger's record: no ends recorded, no
  // metrics. Each stage's metrics file says it finished: read back, not computed again.
  const motionWritten = fs.statSync(path.join(out, 'motion.json')).mtimeMs;
  stream.ledger.transition(before.id, 'queued', { stepIndex: 0 });
  stream.ledger.db.prepare("UPDATE movies SET times = '{}', metrics = '{}' WHERE id = ?").run(before.id);
  stream.runner.pump();
  const recovered = await waitFor(() => {
    const m = byPath('good_1.mrc');
    return m?.state === 'done' ? m : undefined;
  }, 60_000, 'the movie again');
  expect(recovered.metrics).toEqual(before.metrics);
  expect(fs.statSync(path.join(out, 'motion.json')).mtimeMs).toBe(motionWritten);
});

test('a gain reference that does not exist, or a pipeline naming an unknown parser, stops the service before it starts', () => {
  const log = createLogger({ name: 'preprocess-test', level: 'silent' });
  const base = { roots: [{ path: data, mode: 'event' }], ledger_file: path.join(dir, 'other.sqlite'), output_dir: path.join(dir, 'other'), listen_port: 0 };
  const gain = path.join(dir, 'no-such-gain.mrc');
  const thrown = (fn: () => unknown): unknown => {
    try {
      fn();
    } catch (err) {
      return err;
    }
    return 'nothing thrown';
  };
  expect(thrown(() => createStream({ config: streamSection.parse({ ...base, preprocess: { optics: { gain: { file: gain } } } }), log }))).toMatchObject({
    code: 'config_invalid',
    problems: [`stream.preprocess.optics.gain.file: ${gain} does not exist`],
  });
  const pipeline = path.join(dir, 'p.yml');
  fs.writeFileSync(pipeline, 'steps: [{ name: ctf, run: [ctffind], metrics: gctf }]\n');
  expect(thrown(() => createStream({ config: streamSection.parse({ ...base, pipeline_file: pipeline }), log }))).toMatchObject({
    code: 'pipeline_invalid',
    message: expect.stringContaining('no metrics parser "gctf" (known: motioncor2') as unknown,
  });
});

function checkMetrics(m: MovieMetrics): void {
  expect(m).toMatchObject({ frames: FRAMES, width_px: SIDE, height_px: SIDE });
  expect(Object.keys(m.engines ?? {}).sort()).toEqual(['ctf', 'ice', 'motion', 'picking', 'sum', 'thumbnails']);
  for (const key of ['pixelSize_A', 'reductionRatio', 'defocusU_A', 'iceRatio', 'particles'] as const) expect(typeof m[key]).toBe('number');
}
