import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { tempDir } from '@cloudlet/core/testing';
import type { StepJob } from './executor';
import {
  buildBatchScript,
  checkScriptOptions,
  latest,
  outcomeFromRecord,
  parseDuration,
  parseSacct,
  parseScontrolJob,
  parseSqueue,
  shellQuote,
  slurmComment,
  slurmJobName,
  validateJob,
} from './executor-slurm-script';

function hostileValues(pwnDir: string): string[] {
  return [
    `$(touch ${pwnDir}/p1).mrc`,
    `\`touch ${pwnDir}/p2\``,
    'a;b\n.tif',
    `; touch ${pwnDir}/p3`,
    `' ; touch ${pwnDir}/p4 ; '`,
    `"$(touch ${pwnDir}/p5)"`,
    `\\'\\"\\`,
    '$HOME ${PATH} * ? [a] ~ !!',
    '--',
    '-c',
    '',
    ' leading and trailing ',
    'µ 𝄞 ü — 日本語',
    'line1\nline2\r\n\ttab',
    '%j %% 100%',
    '\n#SBATCH --wrap=reboot\n',
  ];
}

/** A program that writes its arguments, an env var and its cwd, NUL-separated, to the file in $0. */
const RECORDER = 'printf "%s\\0" "$@" "$HOSTILE_ENV" "$(pwd)" > "$0"; echo recorder-stderr >&2';

function job(overrides: Partial<StepJob> = {}): StepJob {
  return { key: 's1/movie_001.tif/motion/1', argv: ['/bin/true'], cwd: '/data', env: {}, timeoutS: 30, logFile: '/data/logs/motion.log', ...overrides };
}

describe('batch script', () => {
  test('under bash, argv, env and cwd arrive byte for byte and nothing in them runs', () => {
    const dir = tempDir();
    const pwnDir = path.join(dir, 'pwn');
    fs.mkdirSync(pwnDir);
    const hostile = hostileValues(pwnDir);
    // No slash can be in a directory name: this one would touch a file in bash's cwd (dir or cwd).
    const cwd = path.join(dir, `$(touch PWNED) a;b\n\\ "q" 'q' %j µ`);
    fs.mkdirSync(cwd);
    const out = path.join(dir, 'argv.bin');
    const envValue = `'$(touch ${pwnDir}/p7)'\n\`x\``;
    const script = buildBatchScript(job({ key: `key\n$(touch ${pwnDir}/p8)`, argv: ['/bin/sh', '-c', RECORDER, out, ...hostile], cwd, env: { HOSTILE_ENV: envValue }, logFile: path.join(cwd, 'step.log') }), { scriptDir: dir });
    // One command per line, no raw control characters (sbatch refuses "\r\n").
    expect(script.text).not.toMatch(/[\x00-\x09\x0b-\x1f\x7f]/);
    expect(script.text.split('\n')).toHaveLength(script.text.split('\n').indexOf('set -euo pipefail') + 6);
    fs.writeFileSync(script.file, script.text);
    execFileSync('/bin/bash', [script.file], { cwd: dir, env: { PATH: process.env.PATH } });
    const expected = Buffer.from([...hostile, envValue, cwd].map((v) => `${v}\0`).join(''));
    expect(fs.readFileSync(out)).toEqual(expected);
    expect(fs.readdirSync(pwnDir)).toEqual([]);
    expect([path.join(dir, 'PWNED'), path.join(cwd, 'PWNED')].filter((f) => fs.existsSync(f))).toEqual([]);
    expect(fs.readFileSync(path.join(cwd, 'step.log'), 'utf8')).toBe('recorder-stderr\n');
  });

  test('quotes single quotes the bash way', () => {
    expect(shellQuote("it's")).toBe(`'it'\\''s'`);
    expect(shellQuote('')).toBe("''");
    expect(shellQuote('a\r\nb\x1b')).toBe(`'a'$'\\r\\n''b'$'\\x1b'''`);
  });

  test('the header names the job, carries the key, the time limit in minutes plus a margin, and the log', () => {
    const script = buildBatchScript(job({ timeoutS: 61, logFile: '/data/logs/100% done.log' }), { scriptDir: '/var/cloudlet/slurm', partition: 'test', account: 'cryo-em' });
    const header = script.text.split('\n').filter((l) => l.startsWith('#SBATCH '));
    expect(header).toEqual(
      expect.arrayContaining([
        `#SBATCH --job-name=${slurmJobName('s1/movie_001.tif/motion/1')}`,
        '#SBATCH --comment=s1/movie_001.tif/motion/1',
        '#SBATCH --time=3',
        '#SBATCH --chdir="/data"',
        '#SBATCH --output="/data/logs/100%% done.log"',
        '#SBATCH --error="/data/logs/100%% done.log"',
        '#SBATCH --open-mode=append',
        '#SBATCH --partition=test',
        '#SBATCH --account=cryo-em',
      ]),
    );
    expect(script.text.startsWith('#!/bin/bash\n')).toBe(true);
    expect(script.file).toMatch(/^\/var\/cloudlet\/slurm\/job-[0-9a-f]{16}\.sh$/);
    expect(buildBatchScript(job({ timeoutS: 30 }), { scriptDir: '/s' }).text).toContain('#SBATCH --time=2\n');
  });

  test('paths Slurm cannot carry stay out of #SBATCH lines; only comments precede the body', () => {
    for (const bad of ['/data/a\nb', '/data/a\\b', '/data/a"b']) {
      const script = buildBatchScript(job({ cwd: bad, logFile: `${bad}/x.log`, key: `k\n#SBATCH --wrap=reboot` }), { scriptDir: '/s' });
      const lines = script.text.split('\n');
      const body = lines.indexOf('set -euo pipefail');
      expect(lines.slice(0, body).every((l) => l.startsWith('#'))).toBe(true);
      expect(lines.slice(0, body).join('\n')).not.toContain('/data/a');
      expect(script.text).toContain(`#SBATCH --output="${script.file.replace(/\.sh$/, '.out')}"`);
      expect(script.text).toContain(`exec >>${shellQuote(`${bad}/x.log`)} 2>&1\ncd -- ${shellQuote(bad)}\n`);
    }
  });

  test('job names are plain, bounded and distinct; comments decode to the key', () => {
    const a = slurmJobName('s1/a b.tif/motion');
    const b = slurmJobName('s1/a_b.tif/motion');
    expect(a).toMatch(/^cloudlet-[A-Za-z0-9._-]+$/);
    expect(a).not.toBe(b);
    expect(slurmJobName('x'.repeat(500)).length).toBeLessThanOrEqual(9 + 48 + 1 + 12);
    for (const key of ['plain/key-1', 'a|b c\n"d"%e', 'µ/𝄞']) {
      const comment = slurmComment(key);
      expect(comment).toMatch(/^[A-Za-z0-9._/:=+@,%-]*$/);
      expect(decodeURIComponent(comment)).toBe(key);
    }
  });

  test('refuses jobs no executor could run as given', () => {
    const bads: Partial<StepJob>[] = [{ env: { 'A-B': 'x' } }, { env: { '1A': 'x' } }, { env: { 'A B': 'x' } }, { argv: [] }, { argv: ['a\0b'] }, { cwd: 'relative' }, { timeoutS: 0 }, { timeoutS: Number.NaN }];
    for (const bad of bads) {
      expect(() => validateJob(job(bad))).toThrow(TypeError);
    }
    expect(() => validateJob(job({ env: { _OK1: 'fine' } }))).not.toThrow();
    expect(() => checkScriptOptions({ scriptDir: '/s', partition: 'a b' })).toThrow(/partition/);
    expect(() => checkScriptOptions({ scriptDir: 'relative' })).toThrow(/scriptDir/);
  });
});

describe('Slurm answers', () => {
  const record = (state: string, exitCode = '0:0', elapsedS = 4) => ({ id: '7', name: 'n', state, exitCode, elapsedS });

  test('final states map to outcomes', () => {
    expect(outcomeFromRecord(record('COMPLETED'), 1.5)).toEqual({ status: 'ok', seconds: 4 });
    expect(outcomeFromRecord(record('COMPLETED', '0:0', 0), 1.25)).toEqual({ status: 'ok', seconds: 1.25 });
    expect(outcomeFromRecord(record('FAILED', '3:0'), 0)).toEqual({ status: 'failed', reason: 'exit code 3', exitCode: 3, seconds: 4 });
    expect(outcomeFromRecord(record('FAILED', '0:9'), 0)).toEqual({ status: 'failed', reason: 'killed by signal 9', exitCode: null, seconds: 4 });
    expect(outcomeFromRecord(record('TIMEOUT', '0:15'), 0)).toEqual({ status: 'timeout', seconds: 4 });
    expect(outcomeFromRecord(record('CANCELLED by 0'), 0)).toEqual({ status: 'failed', reason: 'cancelled', exitCode: null, seconds: 4 });
    expect(outcomeFromRecord(record('OUT_OF_MEMORY', '0:125'), 0)).toMatchObject({ status: 'failed', reason: 'out of memory' });
    expect(outcomeFromRecord(record('NODE_FAIL', '1:0'), 0)).toMatchObject({ status: 'failed', reason: 'node failure', exitCode: 1 });
    expect(outcomeFromRecord(record('PREEMPTED'), 0)).toMatchObject({ status: 'failed', reason: 'slurm: preempted' });
    for (const live of ['PENDING', 'RUNNING', 'COMPLETING', 'REQUEUED', 'SUSPENDED']) expect(outcomeFromRecord(record(live), 0)).toBeUndefined();
  });

  test('sacct -P rows, from slurmdbd or the jobcomp file', () => {
    const rows = parseSacct('1|cloudlet-a|FAILED|3:0|0\n2|cloudlet-b|TIMEOUT|0:0|87\n\nsacct: noise\n');
    expect(rows).toEqual([
      { id: '1', name: 'cloudlet-a', state: 'FAILED', exitCode: '3:0', elapsedS: 0 },
      { id: '2', name: 'cloudlet-b', state: 'TIMEOUT', exitCode: '0:0', elapsedS: 87 },
    ]);
    expect(outcomeFromRecord(rows[1]!, 0)).toEqual({ status: 'timeout', seconds: 87 });
  });

  test('scontrol show job -o, as Slurm 22.05 prints a job that ran out of time', () => {
    const line =
      'JobId=3 JobName=cloudlet-x UserId=root(0) GroupId=root(0) MCS_label=N/A Priority=4294901757 Nice=0 Account=(null) QOS=(null) JobState=TIMEOUT Reason=TimeLimit Dependency=(null) Requeue=0 Restarts=0 BatchFlag=1 Reboot=0 ExitCode=0:15 RunTime=00:01:27 TimeLimit=00:01:00 TimeMin=N/A';
    expect(parseScontrolJob(line)).toEqual({ id: '3', name: 'cloudlet-x', state: 'TIMEOUT', exitCode: '0:15', elapsedS: 87 });
    expect(parseScontrolJob('')).toBeUndefined();
    expect(parseDuration('1-02:03:04')).toBe(93784);
    expect(parseDuration('05:06')).toBe(306);
    expect(parseDuration('UNLIMITED')).toBe(0);
  });

  test('squeue rows; foreign rows that do not parse are skipped; the latest job wins', () => {
    const rows = parseSqueue('12|RUNNING|cloudlet-a|s1/a\n13|PENDING|other|(null)\nbad line\n14|RUNNING|x|a|b\n');
    expect(rows).toEqual([
      { id: '12', state: 'RUNNING', name: 'cloudlet-a', comment: 's1/a' },
      { id: '13', state: 'PENDING', name: 'other', comment: '(null)' },
    ]);
    expect(latest(rows)?.id).toBe('13');
    expect(latest([{ id: '5', n: 1 }, { id: '5', n: 2 }, { id: '4', n: 3 }])).toEqual({ id: '5', n: 2 });
    expect(latest([])).toBeUndefined();
  });
});
