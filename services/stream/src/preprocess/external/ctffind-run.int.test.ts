/**
 * ctffind-run as a real process, driving a stand-in for CTFFIND, and a whole preset CTF step run
 * by the local executor and read back by the ctffind4 parser.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { createLocalExecutor } from '../../executor-local';
import { EXTERNAL_PARSERS } from './index';
import { compilePreset, loadPreset } from './testing-presets';

jest.setTimeout(30_000);

const HELPER = path.join(__dirname, 'ctffind-run.js');
const DIST = path.join(__dirname, '../..');

/**
 * Stand-in for CTFFIND: the real program cannot run here (not packaged for Debian, built against
 * wxWidgets, and this machine has no GPU for the steps around it). It reads its answers as CTFFIND
 * does, one line per question, records argv, stdin and the locale beside itself, and writes a
 * summary .txt in CTFFIND 4.1's layout next to the diagnostic image it was told to write.
 */
const STAND_IN = `#!${process.execPath}
const fs = require('fs');
const path = require('path');
let stdin = '';
process.stdin.setEncoding('utf8');
process.stdin.on('data', (d) => { stdin += d; });
process.stdin.on('end', () => {
  fs.writeFileSync(path.join(__dirname, 'record.json'), JSON.stringify({ argv: process.argv.slice(2), stdin, lcAll: process.env.LC_ALL ?? null }));
  const diagnostic = stdin.split('\\n')[1] ?? '';
  if (diagnostic.endsWith('.mrc')) {
    fs.writeFileSync(diagnostic.replace(/\\.mrc$/, '.txt'), '# Output from CTFFind version 4.1.14 (stand-in)\\n# Columns: #1 - micrograph number; #2 - defocus 1 [Angstroms]; #3 - defocus 2; #4 - azimuth of astigmatism; #5 - additional phase shift [radians]; #6 - cross correlation; #7 - spacing (in Angstroms) up to which CTF rings were fit successfully\\n1.000000 12000.0 12400.0 10.0 0.000000 0.25 3.8\\n');
  }
  process.exit(Number(process.env.STAND_IN_EXIT ?? 0));
});
`;

/** Stand-in that leaves without reading its stdin, as a crashing CTFFIND would. */
const EARLY_EXIT = `#!${process.execPath}
process.exit(4);
`;

let dir: string;
let standIn: string;
beforeEach(async () => {
  dir = await fs.mkdtemp(path.join(os.tmpdir(), 'cloudlet-ctffind-run-'));
  standIn = path.join(dir, 'ctffind');
  await fs.writeFile(standIn, STAND_IN, { mode: 0o755 });
});
afterEach(async () => {
  await fs.rm(dir, { recursive: true, force: true });
});

function helper(args: string[], env: Record<string, string> = {}): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [HELPER, ...args], { cwd: dir, env: { ...process.env, ...env }, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('close', (code) => resolve({ code, stderr }));
  });
}

async function record(): Promise<{ argv: string[]; stdin: string; lcAll: string | null }> {
  return JSON.parse(await fs.readFile(path.join(dir, 'record.json'), 'utf8')) as { argv: string[]; stdin: string; lcAll: string | null };
}

describe('ctffind-run', () => {
  it('passes program options as argv and each answer as one stdin line, shell text untouched', async () => {
    const answers = [path.join(dir, 'in.mrc'), path.join(dir, 'diag.mrc'), '0.83', '$(touch pwned)', "a b 'c'", 'no'];
    const r = await helper([standIn, '--omp-num-threads', '2', '--', ...answers]);
    expect(r).toEqual({ code: 0, stderr: '' });
    const rec = await record();
    expect(rec.argv).toEqual(['--omp-num-threads', '2']);
    expect(rec.stdin).toBe(answers.map((a) => `${a}\n`).join(''));
    await expect(fs.stat(path.join(dir, 'pwned'))).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it("passes on the program's exit status", async () => {
    expect((await helper([standIn, '--', 'x'], { STAND_IN_EXIT: '3' })).code).toBe(3);
  });

  it('refuses an answer with a line break before starting the program', async () => {
    const r = await helper([standIn, '--', 'in.mrc', 'diag.mrc\nyes']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/answer 2 contains a line break/);
    await expect(fs.stat(path.join(dir, 'record.json'))).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('reports a usage error without "--" or answers', async () => {
    expect((await helper([standIn, 'in.mrc'])).code).toBe(2);
    expect((await helper([standIn, '--'])).code).toBe(2);
  });

  it('exits 127 when the program cannot be started', async () => {
    const r = await helper([path.join(dir, 'no-such-ctffind'), '--', 'x']);
    expect(r.code).toBe(127);
    expect(r.stderr).toMatch(/cannot run .*no-such-ctffind: ENOENT/);
  });

  it('survives a program that exits without reading its answers', async () => {
    const early = path.join(dir, 'early');
    await fs.writeFile(early, EARLY_EXIT, { mode: 0o755 });
    // Far more than a pipe holds (64 KiB), so writing must meet the closed pipe; one argument stays under Linux's 128 KiB limit.
    const answers = Array.from({ length: 8 }, () => 'x'.repeat(100_000));
    expect((await helper([early, '--', ...answers])).code).toBe(4);
  });
});

describe('the motioncor2-ctffind4 CTF step, end to end with the stand-in', () => {
  it('runs under the local executor and its output parses into metrics', async () => {
    const doc = loadPreset('motioncor2-ctffind4.yml');
    doc.vars = { ...doc.vars, ctffind: standIn, node: process.execPath, cloudlet_stream_dist: DIST };
    const steps = compilePreset(doc, 'motioncor2-ctffind4.yml');
    const i = doc.steps.findIndex((s) => s.name === 'ctf');
    const step = steps[i];
    if (!step) throw new Error('no ctf step');
    const out = path.join(dir, '000001_m');
    await fs.mkdir(out);
    const ctx = { movie: '/data/m 1.tif', name: 'm 1.tif', stem: 'm 1', out, id: 1, root: '/data', vars: doc.vars };
    const outcome = await createLocalExecutor().run({ key: 'ctf-1', argv: step.argv(ctx), cwd: out, env: step.spec.env, timeoutS: step.spec.timeout_s, logFile: path.join(out, 'ctf.log') });
    expect(outcome.status).toBe('ok');
    const rec = await record();
    expect(rec.lcAll).toBe('C');
    expect(rec.stdin.split('\n').slice(0, 3)).toEqual([path.join(out, 'm 1_sum.mrc'), path.join(out, 'm 1_ctf.mrc'), doc.vars.pixel_size]);
    const parser = EXTERNAL_PARSERS[step.spec.metrics ?? ''];
    if (!parser) throw new Error(`no parser ${String(step.spec.metrics)}`);
    const m = await parser({ out, stem: ctx.stem, movie: ctx.movie });
    expect(m).toMatchObject({ engines: { ctf: 'ctffind4' }, defocusU_A: 12400, defocusV_A: 12000, astigmatism_A: 400, ctfFitResolution_A: 3.8, files: { ctf_txt: 'm 1_ctf.txt' } });
    expect(m.astigmatismAngle_deg).toBeCloseTo(100, 9);
  });
});
