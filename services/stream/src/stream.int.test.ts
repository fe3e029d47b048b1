/**
 * The stream service in this process over real files written slowly to real directories:
 * detection in event and poll mode, everything that must be passed over with a reason, steps
 * that fail, hang or crash, restarts, renames, and hostile names.
 */
import fs from 'node:fs';
import path from 'node:path';
import yaml from 'js-yaml';
import { createLogger } from '@cloudlet/core';
import { tempDir, waitFor } from '@cloudlet/core/testing';
import { createStream, type StreamService } from './app';
import { streamSection } from './config';
import { writeMovie, writeMovieSlowly } from './testing/tiny-movies';

jest.setTimeout(60_000);

const log = createLogger({ name: 'stream-test', level: 'silent' });

/** A step that records its argv and writes its output atomically (tmp, then rename). */
const STEP = `#!/bin/sh
out="$1"; shift
printf '%s\\n' "$@" >> "$out/argv.txt"
echo end >> "$out/trace.txt"
printf 'ok' > "$out/.step.tmp" && mv "$out/.step.tmp" "$out/step.out"
`;

const NOOP_PIPELINE = { steps: [{ name: 'noop', builtin: 'noop' }] };

function setup(overrides: Record<string, unknown> = {}, pipeline?: unknown): { dir: string; data: string; start(): Promise<StreamService> } {
  const dir = tempDir('cloudlet-stream-');
  const data = path.join(dir, 'data');
  fs.mkdirSync(data);
  // These tests are about detection and the runner, not the stages: noop unless a test says otherwise.
  const pipelineFile = path.join(dir, 'pipeline.yml');
  fs.writeFileSync(pipelineFile, yaml.dump(pipeline ?? NOOP_PIPELINE));
  const config = streamSection.parse({
    roots: [{ path: data, mode: 'event' }],
    settle_ms: 300,
    poll_interval_ms: 300,
    partial_timeout_s: 2,
    ledger_file: path.join(dir, 'ledger.sqlite'),
    output_dir: path.join(dir, 'out'),
    pipeline_file: pipelineFile,
    listen_port: 0,
    ...overrides,
  });
  return {
    dir,
    data,
    async start() {
      const s = createStream({ config, log });
      await s.start();
      return s;
    },
  };
}

function stepPipeline(dir: string, extra: Record<string, unknown> = {}): unknown {
  const script = path.join(dir, 'step.sh');
  fs.writeFileSync(script, STEP, { mode: 0o755 });
  return { steps: [{ name: 'step', run: [script, '{{out}}', '{{movie}}', '{{name}}'], outputs: ['{{out}}/step.out'], timeout_s: 10, retries: 0, ...extra }] };
}

const states = (s: StreamService): string[] => s.ledger.all().map((m) => m.state);

describe.each(['event', 'poll'] as const)('detection in %s mode', (mode) => {
  test('movies written slowly are each processed once, with a time per stage', async () => {
    const fx = setup({ roots: [] });
    const s = await setup({ roots: [{ path: fx.data, mode }], ledger_file: path.join(fx.dir, 'l2.sqlite') }).start();
    try {
      const names = ['a.mrc', 'with space.mrc', 'ünïcode ☃.mrc', 'new\nline.mrc'];
      fs.mkdirSync(path.join(fx.data, 'grid1', 'square2'), { recursive: true });
      await Promise.all([...names.map((n) => writeMovieSlowly(path.join(fx.data, n), 5, 80)), writeMovieSlowly(path.join(fx.data, 'grid1', 'square2', 'deep.mrc'), 5, 80)]);
      await waitFor(() => s.ledger.counts().done === 5, 20_000, 'five movies done');
      for (const m of s.ledger.all()) {
        expect(m.times.found).toBeLessThanOrEqual(m.times.settled as number);
        expect(m.times.settled).toBeLessThanOrEqual(m.times.queued as number);
        expect(m.times.done).toBeGreaterThanOrEqual(m.times.queued as number);
        // Never picked up before it held still: queued after the file's last write.
        expect(m.times.queued).toBeGreaterThanOrEqual(m.mtimeMs);
      }
      expect(s.ledger.all().map((m) => m.path).sort()).toEqual([...names, 'grid1/square2/deep.mrc'].sort());
    } finally {
      await s.stop();
    }
  });
});

describe('the stream service', () => {
  test('what is not a movie is passed over with a reason, and the rest keeps flowing', async () => {
    const fx = setup({ partial_timeout_s: 1 });
    const s = await fx.start();
    try {
      fs.writeFileSync(path.join(fx.data, 'garbage.mrc'), Buffer.alloc(2000, 7));
      const lying = Buffer.alloc(1024 + 100);
      lying.writeInt32LE(16, 0);
      lying.writeInt32LE(16, 4);
      lying.writeInt32LE(40, 8); // says 40 frames, has less than one
      lying.write('MAP ', 208);
      fs.writeFileSync(path.join(fx.data, 'lying.mrc'), lying);
      fs.writeFileSync(path.join(fx.data, 'deleted.mrc'), Buffer.alloc(10));
      setTimeout(() => fs.rmSync(path.join(fx.data, 'deleted.mrc')), 100);
      fs.writeFileSync(path.join(fx.data, 'notes.txt'), 'not a movie pattern');
      fs.symlinkSync(fx.data, path.join(fx.data, 'loop'));
      writeMovie(path.join(fx.data, 'good.mrc'));
      await waitFor(() => s.ledger.passedOver().length >= 3 && s.ledger.counts().done === 1, 15_000, 'three passed over, one done');
      const reasons = Object.fromEntries(s.ledger.passedOver().map((p) => [p.path, `${p.status}: ${p.reason ?? ''}`]));
      expect(reasons['garbage.mrc']).toMatch(/^rejected: /);
      expect(reasons['lying.mrc']).toMatch(/^rejected: stayed incomplete: /);
      expect(reasons['deleted.mrc']).toMatch(/^vanished: /);
      expect(reasons['notes.txt']).toBeUndefined();
    } finally {
      await s.stop();
    }
  });

  test('a restart resumes without redoing anything; a rename or a touch is not a new movie', async () => {
    const fx = setup();
    fs.mkdirSync(fx.dir, { recursive: true });
    const pipeline = stepPipeline(fx.dir);
    const fx2 = setup({ roots: [{ path: fx.data, mode: 'event' }], ledger_file: path.join(fx.dir, 'l.sqlite'), output_dir: path.join(fx.dir, 'out') }, pipeline);
    let s = await fx2.start();
    for (let i = 0; i < 3; i++) writeMovie(path.join(fx.data, `m${i}.mrc`));
    await waitFor(() => s.ledger.counts().done === 3, 15_000, 'three done');
    await s.stop();
    fs.renameSync(path.join(fx.data, 'm0.mrc'), path.join(fx.data, 'renamed.mrc'));
    const later = new Date(Date.now() + 5000);
    fs.utimesSync(path.join(fx.data, 'm1.mrc'), later, later);
    writeMovie(path.join(fx.data, 'm3.mrc'));
    s = await fx2.start();
    try {
      await waitFor(() => s.ledger.counts().done === 4, 15_000, 'the new one done');
      await waitFor(() => s.ledger.all().some((m) => m.path === 'renamed.mrc'), 10_000, 'the rename noticed');
      await waitFor(() => s.watcher.settling() === 0, 10_000, 'settling to finish');
      expect(s.ledger.all()).toHaveLength(4);
      for (const dir of fs.readdirSync(path.join(fx.dir, 'out'))) {
        expect(fs.readFileSync(path.join(fx.dir, 'out', dir, 'trace.txt'), 'utf8')).toBe('end\n');
      }
    } finally {
      await s.stop();
    }
  });

  test('a hostile file name is only ever an argument', async () => {
    const fx = setup();
    const pipeline = stepPipeline(fx.dir);
    const fx2 = setup({ roots: [{ path: fx.data, mode: 'event' }], ledger_file: path.join(fx.dir, 'l.sqlite'), output_dir: path.join(fx.dir, 'out') }, pipeline);
    const s = await fx2.start();
    const names = ['$(touch pwned).mrc', '`touch pwned`.mrc', 'a;touch pwned;b.mrc', "it's \"quoted\".mrc", 'x\ntouch pwned.mrc'];
    const pwned = (): boolean => fs.existsSync(path.join(process.cwd(), 'pwned')) || fs.readdirSync(fx.dir, { recursive: true }).some((p) => path.basename(String(p)) === 'pwned');
    try {
      for (const n of names) writeMovie(path.join(fx.data, n));
      await waitFor(() => s.ledger.counts().done === names.length, 15_000, 'all done');
      expect(pwned()).toBe(false);
      const argv = fs.readdirSync(path.join(fx.dir, 'out')).map((d) => fs.readFileSync(path.join(fx.dir, 'out', d, 'argv.txt'), 'utf8'));
      for (const n of names) expect(argv.some((a) => a.includes(`${path.join(fx.data, n)}\n${n}\n`))).toBe(true);
    } finally {
      await s.stop();
    }
  });

  test('a step that fails, hangs or is missing fails the movie with a reason; retry requeues it', async () => {
    const fx = setup();
    const failing = path.join(fx.dir, 'fail.sh');
    fs.writeFileSync(failing, '#!/bin/sh\necho "boom: bad input" >&2\nexit 3\n', { mode: 0o755 });
    const hanging = path.join(fx.dir, 'hang.sh');
    fs.writeFileSync(hanging, '#!/bin/sh\nsleep 60\n', { mode: 0o755 });
    const run = async (steps: unknown[]): Promise<string | null> => {
      const f = setup({ roots: [{ path: fx.data, mode: 'event' }], ledger_file: path.join(fx.dir, `${Math.random()}.sqlite`), output_dir: path.join(fx.dir, `out${Math.random()}`) }, { steps });
      const s = await f.start();
      try {
        await waitFor(() => s.ledger.counts().failed === 1, 15_000, 'the movie to fail');
        return s.ledger.inState('failed')[0]?.reason ?? null;
      } finally {
        await s.stop();
      }
    };
    writeMovie(path.join(fx.data, 'x.mrc'));
    expect(await run([{ name: 'fails', run: [failing], retries: 1 }])).toBe('fails failed: exit code 3');
    expect(await run([{ name: 'hangs', run: [hanging], timeout_s: 0.5, retries: 0 }])).toBe('hangs timed out after 0.5 s');
    expect(await run([{ name: 'missing', run: ['/nonexistent/motioncor2'], retries: 0 }])).toMatch(/^missing failed: cannot run \/nonexistent\/motioncor2/);
  });

  test('newest-first takes the latest movie when the queue backs up', async () => {
    const fx = setup();
    const slow = path.join(fx.dir, 'slow.sh');
    fs.writeFileSync(slow, '#!/bin/sh\nsleep 0.3\n', { mode: 0o755 });
    for (let i = 0; i < 6; i++) {
      writeMovie(path.join(fx.data, `m${i}.mrc`));
      const t = new Date(Date.now() - 60_000 + i * 1000);
      fs.utimesSync(path.join(fx.data, `m${i}.mrc`), t, t);
    }
    const f = setup({ roots: [{ path: fx.data, mode: 'event' }], ledger_file: path.join(fx.dir, 'l.sqlite'), workers: 1, priority: 'newest' }, { steps: [{ name: 'slow', run: [slow] }] });
    const s = await f.start();
    try {
      await waitFor(() => s.ledger.counts().done === 6, 20_000, 'all done');
      const order = s.ledger.all().sort((a, b) => (a.times.done as number) - (b.times.done as number)).map((m) => m.path);
      expect(order.slice(1)).toEqual(['m5.mrc', 'm4.mrc', 'm3.mrc', 'm2.mrc', 'm1.mrc', 'm0.mrc'].filter((n) => n !== order[0]));
    } finally {
      await s.stop();
    }
  });

  test('a root that disappears and comes back is picked up again', async () => {
    const fx = setup({ roots: [] });
    const f = setup({ roots: [{ path: fx.data, mode: 'poll' }], ledger_file: path.join(fx.dir, 'l.sqlite') });
    const s = await f.start();
    try {
      writeMovie(path.join(fx.data, 'before.mrc'));
      await waitFor(() => s.ledger.counts().done === 1, 10_000, 'first');
      fs.rmSync(fx.data, { recursive: true });
      await new Promise((resolve) => setTimeout(resolve, 700)); // a couple of poll rounds with the share gone
      fs.mkdirSync(fx.data);
      writeMovie(path.join(fx.data, 'after.mrc'));
      await waitFor(() => s.ledger.counts().done === 2, 10_000, 'second, after the root came back');
      expect(states(s)).toEqual(['done', 'done']);
    } finally {
      await s.stop();
    }
  });
});
