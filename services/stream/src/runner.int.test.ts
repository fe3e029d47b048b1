/**
 * The runner with a real ledger and real commands (the local executor): steps' metrics reach
 * the ledger and the next step, a bad movie fails at once, external steps' outputs are parsed,
 * and a restart between a step's work and its record neither loses its metrics nor redoes it.
 */
import fs from 'node:fs';
import path from 'node:path';
import { createLogger } from '@cloudlet/core';
import { tempDir, waitFor } from '@cloudlet/core/testing';
import { createLocalExecutor } from './executor-local';
import { Ledger, type Movie } from './ledger';
import { compilePipeline } from './pipeline-spec';
import type { MovieMetrics } from './preprocess/metrics';
import { type BuiltinContext, type BuiltinStep, type MetricsParser, type MovieEvent, Runner } from './runner';

jest.setTimeout(30_000);

const log = createLogger({ name: 'runner-test', level: 'silent' });

interface Harness {
  dir: string;
  ledger: Ledger;
  runner: Runner;
  events: MovieEvent[];
  movie: Movie;
}

function coded(message: string, code: string): Error {
  return Object.assign(new Error(message), { code });
}

async function harness(pipeline: unknown, builtins: Record<string, BuiltinStep>, parsers: Record<string, MetricsParser> = {}, dir = tempDir('cloudlet-runner-')): Promise<Harness> {
  const data = path.join(dir, 'data');
  fs.mkdirSync(data, { recursive: true });
  fs.writeFileSync(path.join(data, 'm.mrc'), 'movie');
  const ledger = new Ledger(path.join(dir, 'l.sqlite'));
  const { movie } = ledger.ingest({ fingerprint: 'fp', root: data, path: 'm.mrc', size: 5, mtimeMs: 1, format: 'mrc', frames: 2, width: 4, height: 4, foundAt: 1, settledAt: 1 });
  const steps = compilePipeline(pipeline, 'p.yml', new Set(Object.keys(builtins)), new Set(Object.keys(parsers)));
  const runner = new Runner({ ledger, steps, builtins: new Map(Object.entries(builtins)), parsers: new Map(Object.entries(parsers)), executor: createLocalExecutor(), outputRoot: path.join(dir, 'out'), workers: 1, order: 'oldest', unavailableBackoffMs: 1000, log });
  const events: MovieEvent[] = [];
  runner.on('movie', (e) => events.push(e));
  await runner.start();
  return { dir, ledger, runner, events, movie };
}

async function finish(h: Harness): Promise<Movie> {
  const m = await waitFor(() => {
    const now = h.ledger.get(h.movie.id);
    return now && (now.state === 'done' || now.state === 'failed') ? now : undefined;
  }, 15_000, 'the movie to finish');
  await h.runner.stop();
  h.ledger.close();
  return m;
}

test("builtins' metrics are merged step by step, each step sees the earlier ones, and each merge is an event", async () => {
  const seen: MovieMetrics[] = [];
  const record = (metrics: MovieMetrics | undefined): BuiltinStep => (ctx: BuiltinContext) => {
    seen.push(ctx.metrics);
    return Promise.resolve(metrics);
  };
  const h = await harness({ steps: [{ name: 'a', builtin: 'a' }, { name: 'b', builtin: 'b' }, { name: 'c', builtin: 'c' }] }, {
    a: record({ engines: { a: 'builtin' }, frames: 2, files: { x: 'x.mrc' } }),
    b: record(undefined),
    c: record({ engines: { c: 'builtin' }, defocusU_A: 9000, files: { y: 'y.png' } }),
  });
  const m = await finish(h);
  expect(m.state).toBe('done');
  expect(seen).toEqual([{}, { engines: { a: 'builtin' }, frames: 2, files: { x: 'x.mrc' } }, { engines: { a: 'builtin' }, frames: 2, files: { x: 'x.mrc' } }]);
  expect(m.metrics).toEqual({ engines: { a: 'builtin', c: 'builtin' }, frames: 2, defocusU_A: 9000, files: { x: 'x.mrc', y: 'y.png' } });
  expect(h.events.filter((e) => e.type === 'metrics').map((e) => [e.step, e.movie.metrics.frames])).toEqual([
    ['a', 2],
    ['c', 2],
  ]);
});

test('a bad movie fails at once with the reason, whatever the retries; other errors are retried', async () => {
  let calls = 0;
  const bad = await harness({ steps: [{ name: 'motion', builtin: 'motion', retries: 3 }] }, {
    motion: () => {
      calls++;
      return Promise.reject(coded('frame 3 holds NaN', 'bad_movie'));
    },
  });
  expect(await finish(bad)).toMatchObject({ state: 'failed', reason: 'motion: bad movie: frame 3 holds NaN', attempts: 1 });
  expect(calls).toBe(1);
  expect(bad.events.map((e) => e.type)).not.toContain('retry');

  calls = 0;
  const flaky = await harness({ steps: [{ name: 'motion', builtin: 'motion', retries: 2 }] }, {
    motion: () => {
      calls++;
      return Promise.reject(new Error('disk full'));
    },
  });
  expect(await finish(flaky)).toMatchObject({ state: 'failed', reason: 'motion failed: disk full', attempts: 3 });
  expect(calls).toBe(3);
});

test("a builtin reporting a timeout is the step's timeout", async () => {
  const h = await harness({ steps: [{ name: 'ctf', builtin: 'ctf', timeout_s: 0.5, retries: 0 }] }, {
    ctf: (ctx) => {
      expect(ctx.timeoutMs).toBe(500);
      return Promise.reject(coded('ctf timed out', 'timeout'));
    },
  });
  expect(await finish(h)).toMatchObject({ state: 'failed', reason: 'ctf timed out after 0.5 s' });
});

test("an external step's parser turns its outputs into metrics; output it cannot read fails the step", async () => {
  const step = { name: 'ctf', run: ['/bin/sh', '-c', 'printf 12345 > "$0/ctf.txt"', '{{out}}'], outputs: ['{{out}}/ctf.txt'], metrics: 'ctffind4', retries: 0 };
  const parsed: { out: string; stem: string; movie: string }[] = [];
  const h = await harness({ steps: [step] }, {}, {
    ctffind4: (ctx) => {
      parsed.push(ctx);
      return Promise.resolve({ engines: { ctf: 'ctffind4' }, defocusU_A: Number(fs.readFileSync(path.join(ctx.out, 'ctf.txt'), 'utf8')) });
    },
  });
  const m = await finish(h);
  expect(m).toMatchObject({ state: 'done', metrics: { engines: { ctf: 'ctffind4' }, defocusU_A: 12345 } });
  expect(parsed).toEqual([{ out: expect.stringMatching(/out\/000001_m$/) as unknown, stem: 'm', movie: path.join(h.dir, 'data', 'm.mrc') }]);

  const broken = await harness({ steps: [step] }, {}, { ctffind4: () => Promise.reject(new Error('ctf.txt: line 3 has 5 columns')) });
  expect(await finish(broken)).toMatchObject({ state: 'failed', reason: 'ctf failed: its output could not be read (ctffind4): ctf.txt: line 3 has 5 columns', metrics: {} });
});

test('after a stop between the work and its record, the work is not redone and its metrics are not lost', async () => {
  const dir = tempDir('cloudlet-runner-');
  const trace = path.join(dir, 'trace.txt');
  const pipeline = {
    steps: [
      { name: 'ext', run: ['/bin/sh', '-c', 'echo ran >> "$1"; printf x > "$0/ext.out"', '{{out}}', trace], outputs: ['{{out}}/ext.out'], metrics: 'p' },
      { name: 'plain', run: ['/bin/sh', '-c', 'echo plain >> "$1"; printf x > "$0/plain.out"', '{{out}}', trace], outputs: ['{{out}}/plain.out'] },
      { name: 'inner', builtin: 'inner', outputs: ['{{out}}/inner.out'] },
    ],
  };
  // The outputs of a run whose end never reached the ledger.
  const out = path.join(dir, 'out', '000001_m');
  fs.mkdirSync(out, { recursive: true });
  for (const f of ['ext.out', 'plain.out', 'inner.out']) fs.writeFileSync(path.join(out, f), 'x');
  let innerCalls = 0;
  const h = await harness(
    pipeline,
    {
      inner: () => {
        innerCalls++;
        return Promise.resolve({ particles: 7 });
      },
    },
    { p: () => Promise.resolve({ iceRatio: 1.05 }) },
    dir,
  );
  const m = await finish(h);
  expect(m).toMatchObject({ state: 'done', metrics: { iceRatio: 1.05, particles: 7 } });
  expect(fs.existsSync(trace)).toBe(false); // neither command ran again
  expect(innerCalls).toBe(1); // a builtin is asked again: it alone knows its metrics
  expect(m.times['plain.skipped']).toBeDefined();
  expect(m.times['ext.end']).toBeDefined();

  // Requeued (outputs there, ends recorded): everything is skipped, metrics stay.
  const again = new Ledger(path.join(dir, 'l.sqlite'));
  again.transition(m.id, 'queued', { stepIndex: 0 });
  again.close();
  const h2 = await harness(pipeline, { inner: () => Promise.reject(new Error('must not run')) }, { p: () => Promise.reject(new Error('must not parse')) }, dir);
  const m2 = await finish(h2);
  expect(m2).toMatchObject({ state: 'done', metrics: { iceRatio: 1.05, particles: 7 } });
  expect(['ext.skipped', 'plain.skipped', 'inner.skipped'].every((k) => m2.times[k] !== undefined)).toBe(true);
});
