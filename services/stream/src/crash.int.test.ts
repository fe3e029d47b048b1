/**
 * The crash test: 1,000 movies are written while the stream service is killed with SIGKILL at
 * 20 random moments and started again each time. Afterwards every movie is done exactly once:
 * judged from the steps' own output (each step appends to a trace only once it has finished its
 * work), not only from the ledger; and none is missing.
 */
import fs from 'node:fs';
import path from 'node:path';
import yaml from 'js-yaml';
import { type RunningProcess, startProcess, tempDir, waitFor } from '@cloudlet/core/testing';
import { Ledger } from './ledger';
import { writeMovie } from './testing/tiny-movies';

jest.setTimeout(240_000);

const MOVIES = 1000;
const KILLS = 20;
const MAIN = path.join(__dirname, 'main.js');

/** Does its work, writes its output atomically, and only then records that it finished. */
const STEP = `#!/bin/sh
name="$1"; out="$2"
printf 'x' > "$out/.$name.tmp" && mv "$out/.$name.tmp" "$out/$name.out"
echo "$name" >> "$out/trace.txt"
`;

test(`${MOVIES} movies, ${KILLS} SIGKILLs: every movie done exactly once`, async () => {
  const dir = tempDir('cloudlet-crash-');
  const data = path.join(dir, 'data');
  const out = path.join(dir, 'out');
  fs.mkdirSync(data);
  const step = path.join(dir, 'step.sh');
  fs.writeFileSync(step, STEP, { mode: 0o755 });
  const pipeline = path.join(dir, 'pipeline.yml');
  fs.writeFileSync(pipeline, yaml.dump({ steps: ['first', 'second'].map((name) => ({ name, run: [step, name, '{{out}}'], outputs: [`{{out}}/${name}.out`], retries: 2 })) }));
  const ledgerFile = path.join(dir, 'ledger.sqlite');
  const config = path.join(dir, 'cloudlet.yml');
  fs.writeFileSync(config, yaml.dump({ site: { state_dir: dir, log_level: 'warn' }, stream: { roots: [{ path: data, mode: 'event' }], settle_ms: 200, poll_interval_ms: 1000, ledger_file: ledgerFile, output_dir: out, pipeline_file: pipeline, workers: 2, listen_port: 0 } }));

  const start = async (): Promise<RunningProcess> => {
    const p = startProcess(process.execPath, [MAIN, '--config', config, 'serve'], { env: { ...process.env, CLOUDLET_SITE__LOG_LEVEL: 'info' } });
    await p.waitForLog((e) => e.msg === 'stream ready', 30_000);
    return p;
  };

  let service = await start();
  let writing = true;
  const writer = (async () => {
    for (let i = 0; i < MOVIES; i++) {
      writeMovie(path.join(data, `movie_${String(i).padStart(4, '0')}.mrc`));
      if (i % 50 === 49) await new Promise((resolve) => setTimeout(resolve, 100));
    }
    writing = false;
  })();

  let kills = 0;
  while (kills < KILLS) {
    await new Promise((resolve) => setTimeout(resolve, 200 + Math.random() * 900));
    await service.stop('SIGKILL');
    kills++;
    service = await start();
  }
  await writer;
  expect(writing).toBe(false);

  const ledger = new Ledger(ledgerFile);
  try {
    await waitFor(() => ledger.counts().done === MOVIES, 180_000, `all ${MOVIES} movies done (now ${JSON.stringify(ledger.counts())})`);
    expect(ledger.all()).toHaveLength(MOVIES);
    const paths = new Set(ledger.all().map((m) => m.path));
    expect(paths.size).toBe(MOVIES);
    const dirs = fs.readdirSync(out);
    expect(dirs).toHaveLength(MOVIES);
    const wrong = dirs.filter((d) => fs.readFileSync(path.join(out, d, 'trace.txt'), 'utf8') !== 'first\nsecond\n');
    expect(wrong).toEqual([]);
  } finally {
    ledger.close();
    await service.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
