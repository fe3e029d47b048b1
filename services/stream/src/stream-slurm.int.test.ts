/** The stream service with its steps on a real single-node Slurm, end to end. */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import yaml from 'js-yaml';
import { createLogger } from '@cloudlet/core';
import { type SlurmCluster, startSlurm, tempDir, waitFor } from '@cloudlet/core/testing';
import { createStream } from './app';
import { streamSection } from './config';
import { createSlurmExecutor } from './executor-slurm';
import { writeMovie } from './testing/tiny-movies';

jest.setTimeout(120_000);

let slurm: SlurmCluster;
beforeAll(async () => {
  slurm = await startSlurm();
});
afterAll(async () => {
  await slurm?.stop();
});

test('movies flow through steps run as Slurm jobs, named so a restart could find them', async () => {
  const dir = tempDir('cloudlet-stream-slurm-');
  fs.chmodSync(dir, 0o755);
  const data = path.join(dir, 'data');
  fs.mkdirSync(data);
  const step = path.join(dir, 'step.sh');
  fs.writeFileSync(step, '#!/bin/sh\nprintf "%s" "$1" > "$2/.sum.tmp" && mv "$2/.sum.tmp" "$2/sum.txt"\n', { mode: 0o755 });
  const pipelineFile = path.join(dir, 'p.yml');
  fs.writeFileSync(pipelineFile, yaml.dump({ steps: [{ name: 'sum', run: [step, '{{name}}', '{{out}}'], outputs: ['{{out}}/sum.txt'], timeout_s: 120 }] }));
  const config = streamSection.parse({ roots: [{ path: data, mode: 'event' }], settle_ms: 100, ledger_file: path.join(dir, 'l.sqlite'), output_dir: path.join(dir, 'out'), pipeline_file: pipelineFile, executor: 'slurm', listen_port: 0 });
  const log = createLogger({ name: 't', level: 'silent' });
  const executor = createSlurmExecutor({ partition: slurm.partition, env: { ...process.env, ...slurm.env }, pollIntervalMs: 200, scriptDir: path.join(dir, 'scripts'), log });
  const s = createStream({ config, log, executor });
  await s.start();
  try {
    const names = ['a.mrc', '$(touch pwned) b.mrc'];
    for (const n of names) writeMovie(path.join(data, n));
    await waitFor(() => s.ledger.counts().done === 2, 90_000, 'both movies through Slurm');
    const sums = fs.readdirSync(path.join(dir, 'out')).map((d) => fs.readFileSync(path.join(dir, 'out', d, 'sum.txt'), 'utf8')).sort();
    expect(sums).toEqual([...names].sort());
    expect(fs.readdirSync(dir, { recursive: true }).some((p) => path.basename(String(p)) === 'pwned')).toBe(false);
    // Slurm's own record of finished jobs: one job per movie and step, each named for its key.
    const jobs = execFileSync('sacct', ['-c', '-X', '-n', '-P', '-o', 'JobID,JobName,State'], { env: { ...process.env, ...slurm.env }, encoding: 'utf8' }).trim().split('\n');
    expect(jobs.filter((l) => /\|cloudlet-[^|]+\|COMPLETED$/.test(l))).toHaveLength(2);
  } finally {
    await s.stop();
  }
});
