/**
 * The Slurm executor against a real single-node Slurm 22.05 (startSlurm: munged, slurmctld,
 * slurmd, jobcomp/filetxt accounting). Tests share the cluster and run in order; the last one
 * makes the controller forget its jobs.
 */
import { execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { createLogger } from '@cloudlet/core';
import { type SlurmCluster, startSlurm, tempDir, waitFor } from '@cloudlet/core/testing';
import type { Executor, StepJob } from './executor';
import { createSlurmExecutor, type SlurmExecutorOptions } from './executor-slurm';
import { slurmJobName } from './executor-slurm-script';

jest.setTimeout(90_000);

const log = createLogger({ name: 'slurm-test', level: 'silent' });
let slurm: SlurmCluster;
let dir: string;
const executors: Executor[] = [];

beforeAll(async () => {
  slurm = await startSlurm();
  dir = tempDir('cloudlet-slurm-exec-');
}, 60_000);

afterEach(async () => {
  await Promise.all(executors.splice(0).map((e) => e.close()));
});

afterAll(async () => {
  await slurm?.stop();
});

function executor(overrides: Partial<SlurmExecutorOptions> = {}): Required<Executor> {
  const e = createSlurmExecutor({ env: slurm.env, partition: slurm.partition, scriptDir: path.join(dir, 'scripts'), pollIntervalMs: 200, log, ...overrides });
  executors.push(e);
  return e;
}

function step(name: string, argv: string[], overrides: Partial<StepJob> = {}): StepJob {
  return { key: `session-1/${name}/${crypto.randomUUID()}`, argv, cwd: dir, env: {}, timeoutS: 60, logFile: path.join(dir, `${name}.log`), ...overrides };
}

function slurmOut(cmd: string, args: string[]): string {
  return execFileSync(cmd, args, { env: slurm.env, encoding: 'utf8' });
}

/** Every job Slurm knows under this step's name: in the controller and in the jobcomp records. */
function jobIds(key: string): string[] {
  const name = slurmJobName(key);
  const live = slurmOut('squeue', ['-h', '-t', 'all', `--name=${name}`, '-o', '%i']).split('\n');
  const done = slurmOut('sacct', ['-c', '-X', '-n', '-P', '-o', 'JobID,JobName']).split('\n').filter((l) => l.endsWith(`|${name}`)).map((l) => l.split('|')[0]);
  return [...new Set([...live, ...done])].filter((id): id is string => Boolean(id));
}

async function waitUntilRunning(key: string): Promise<void> {
  await waitFor(() => slurmOut('squeue', ['-h', `--name=${slurmJobName(key)}`, '-o', '%T']).trim() === 'RUNNING', 30_000, 'the job to run');
}

/** A program that writes its arguments, an env var and its cwd, NUL-separated, to the file in $0. */
const RECORDER = 'printf "%s\\0" "$@" "$HOSTILE_ENV" "$(pwd)" > "$0"';

test('a step that succeeds: outcome ok, its output written, one job in Slurm', async () => {
  const out = path.join(dir, 'ok.txt');
  const job = step('ok', ['/bin/sh', '-c', 'echo done > "$0"', out]);
  const outcome = await executor().run(job);
  expect(outcome).toEqual({ status: 'ok', seconds: expect.any(Number) as unknown });
  expect(outcome.status === 'ok' && outcome.seconds).toBeGreaterThan(0);
  expect(fs.readFileSync(out, 'utf8')).toBe('done\n');
  expect(jobIds(job.key)).toHaveLength(1);
});

test('a step that exits 3: failed with exit code 3, its stderr in the log file', async () => {
  const job = step('exit3', ['/bin/sh', '-c', 'echo "it went wrong" >&2; exit 3']);
  expect(await executor().run(job)).toEqual({ status: 'failed', reason: 'exit code 3', exitCode: 3, seconds: expect.any(Number) as unknown });
  expect(fs.readFileSync(job.logFile, 'utf8')).toContain('it went wrong');
});

test('hostile argv, env, key and paths arrive byte for byte and nothing in them runs', async () => {
  const pwn = path.join(dir, 'pwn');
  fs.mkdirSync(pwn);
  const hostile = [`$(touch ${pwn}/1).mrc`, `\`touch ${pwn}/2\``, 'a;b\n.tif', `; touch ${pwn}/3`, `' ; touch ${pwn}/4 ; '`, `"$(touch ${pwn}/5)"`, `\\'\\"\\`, '$HOME ${PATH} * ~', '--', '', ' spaced ', 'µ 𝄞 日本語', 'l1\nl2\r\n\tt', '%j %% 100%', '\n#SBATCH --wrap=reboot\n'];
  const env = { HOSTILE_ENV: `'$(touch ${pwn}/6)'\n\`touch ${pwn}/7\`` };
  // One directory sbatch can be told about (quotes, %, $), one it cannot (newline, backslash).
  for (const dirName of [`100% $(touch PWNED) 'q' µ`, `a;b\n\\ "$(touch PWNED)"`]) {
    const cwd = path.join(dir, dirName);
    fs.mkdirSync(cwd);
    const out = path.join(dir, `argv-${crypto.randomUUID()}.bin`);
    const job = step('hostile', ['/bin/sh', '-c', RECORDER, out, ...hostile], { cwd, env, logFile: path.join(cwd, 'step.log'), key: `s/$(touch ${pwn}/8)|a;b\n.tif/${crypto.randomUUID()}` });
    expect(await executor().run(job)).toEqual({ status: 'ok', seconds: expect.any(Number) as unknown });
    expect(fs.readFileSync(out)).toEqual(Buffer.from([...hostile, env.HOSTILE_ENV, cwd].map((v) => `${v}\0`).join('')));
    expect(fs.existsSync(path.join(cwd, 'step.log'))).toBe(true);
    expect([path.join(cwd, 'PWNED'), path.join(dir, 'PWNED'), path.join(dir, 'scripts', 'PWNED')].filter((f) => fs.existsSync(f))).toEqual([]);
  }
  expect(fs.readdirSync(pwn)).toEqual([]);
});

test('aborting the signal cancels the job', async () => {
  const job = step('abort', ['/bin/sleep', '300']);
  const abort = new AbortController();
  const outcome = executor().run(job, abort.signal);
  await waitUntilRunning(job.key);
  abort.abort();
  expect(await outcome).toEqual({ status: 'failed', reason: 'cancelled', exitCode: null, seconds: expect.any(Number) as unknown });
  expect(slurmOut('squeue', ['-h', `--name=${slurmJobName(job.key)}`, '-o', '%T']).trim()).toBe('');
});

test('adopt: a restarted service follows the running job to its end instead of submitting again', async () => {
  const out = path.join(dir, 'adopted.txt');
  const job = step('adopt', ['/bin/sh', '-c', 'sleep 2; echo late > "$0"', out]);
  const before = executor();
  const first = before.run(job);
  await waitUntilRunning(job.key);
  await before.close();
  expect(await first).toEqual({ status: 'unavailable', reason: 'executor closed' });

  const after = executor();
  const adopted = await after.adopt([job.key, 'session-1/never-submitted']);
  expect([...adopted.keys()]).toEqual([job.key]);
  expect(await adopted.get(job.key)).toMatchObject({ status: 'ok' });
  expect(fs.readFileSync(out, 'utf8')).toBe('late\n');
  // Running the same step again finds the finished job rather than submitting a second.
  expect(await after.run(job)).toMatchObject({ status: 'ok' });
  expect(jobIds(job.key)).toHaveLength(1);
});

test('an sbatch whose answer was lost is not submitted twice', async () => {
  // The one stand-in here: a wrapper that submits for real, then fails as if the reply was lost.
  const realSbatch = execFileSync('sh', ['-c', 'command -v sbatch'], { encoding: 'utf8' }).trim();
  const bin = path.join(dir, 'lossy-bin');
  fs.mkdirSync(bin);
  const mark = path.join(bin, 'answered-once');
  fs.writeFileSync(path.join(bin, 'sbatch'), `#!/bin/sh\nif [ -e '${mark}' ]; then exec '${realSbatch}' "$@"; fi\ntouch '${mark}'\n'${realSbatch}' "$@" >/dev/null\necho 'sbatch: error: Socket timed out on send/recv operation' >&2\nexit 1\n`, { mode: 0o755 });
  const lossy = executor({ env: { ...slurm.env, PATH: `${bin}:${slurm.env.PATH ?? ''}` } });
  const job = step('lost-answer', ['/bin/true']);
  expect(await lossy.run(job)).toEqual({ status: 'unavailable', reason: expect.stringContaining('Socket timed out') as unknown });
  expect(await lossy.run(job)).toMatchObject({ status: 'ok' });
  expect(jobIds(job.key)).toHaveLength(1);
});

test('slurmctld down: unavailable within the command time limit, nothing submitted; fine again after a restart', async () => {
  const e = executor();
  const job = step('outage', ['/bin/true']);
  await slurm.stopController();
  const started = Date.now();
  const outcome = await e.run(job);
  expect(outcome).toEqual({ status: 'unavailable', reason: expect.stringMatching(/squeue|controller/) as unknown });
  expect(Date.now() - started).toBeLessThan(20_000);
  await slurm.startController();
  expect(jobIds(job.key)).toEqual([]);
  expect(await e.run(job)).toMatchObject({ status: 'ok' });
  expect(jobIds(job.key)).toHaveLength(1);
});

test('adopt finds a job that finished while no service watched, even after the controller lost its state', async () => {
  const job = step('forgotten', ['/bin/sh', '-c', 'exit 4']);
  expect(await executor().run(job)).toMatchObject({ status: 'failed', exitCode: 4 });
  await slurm.stopController();
  await slurm.startController({ clearState: true });
  expect(slurmOut('squeue', ['-h', '-t', 'all', '-o', '%i'])).toBe('');
  const adopted = await executor().adopt([job.key]);
  expect(await adopted.get(job.key)).toEqual({ status: 'failed', reason: 'exit code 4', exitCode: 4, seconds: expect.any(Number) as unknown });
});
