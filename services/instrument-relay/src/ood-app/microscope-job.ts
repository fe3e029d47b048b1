/**
 * Test fixtures for the microscope app's job: stage template/*.erb into a directory the way OOD
 * does (rendered, the .erb's file mode kept), run it with ood-apps/test/run_basic_job.sh in its
 * own process group (as a scheduler runs a job), and look at the job's processes through /proc.
 * The relay CLI is ood-apps/test/fixtures/cloudlet-relay, which records every call.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { tempDir } from '@cloudlet/core/testing';
import { OOD_TEST_DIR, REPO_ROOT, renderErb } from '@cloudlet/core/testing';

export const APP_DIR = path.join(REPO_ROOT, 'ood-apps', 'microscope');
export const FIXTURE_CLI = path.join(OOD_TEST_DIR, 'fixtures', 'cloudlet-relay');
const RUN_JOB = path.join(OOD_TEST_DIR, 'run_basic_job.sh');

export const CONN_PARAMS = ['view_password', 'session_id', 'expires_at', 'websocket_path', 'instrument', 'mode'];

/** Renders template/*.erb into a fresh staged directory, as OOD stages a session. */
export async function stageJob(context: Record<string, string>, env: NodeJS.ProcessEnv): Promise<string> {
  const dir = tempDir('microscope-job-');
  const templateDir = path.join(APP_DIR, 'template');
  for (const name of fs.readdirSync(templateDir).filter((n) => n.endsWith('.erb'))) {
    const source = path.join(templateDir, name);
    const target = path.join(dir, name.slice(0, -'.erb'.length));
    fs.writeFileSync(target, await renderErb({ kind: 'template', file: source, context, session: { staged_root: dir } }, { env }));
    fs.chmodSync(target, fs.statSync(source).mode & 0o777);
  }
  return dir;
}

export interface RunningJob {
  child: ChildProcess;
  pgid: number;
  output: string[];
  exited: Promise<number | null>;
}

/** Starts the staged job as the leader of its own process group. */
export function startJob(dir: string, env: NodeJS.ProcessEnv): RunningJob {
  const child = spawn(RUN_JOB, [dir, ...CONN_PARAMS], { env: { ...process.env, ...env }, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  const output: string[] = [];
  for (const stream of [child.stdout, child.stderr]) stream?.on('data', (chunk: Buffer) => output.push(chunk.toString('utf8')));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  if (child.pid === undefined) throw new Error('the job did not start');
  return { child, pgid: child.pid, output, exited };
}

/** Runs a staged job to its end: the exit code and everything it printed. */
export async function runJob(dir: string, env: NodeJS.ProcessEnv): Promise<{ code: number | null; output: string }> {
  const job = startJob(dir, env);
  const code = await job.exited;
  return { code, output: job.output.join('') };
}

export interface ProcessView {
  pid: number;
  argv: string[];
  environ: string[];
}

/** Every live process in process group `pgid`, with its argv and environment. */
export function processGroup(pgid: number): ProcessView[] {
  const found: ProcessView[] = [];
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${entry}/stat`, 'utf8');
      // pid (comm) state ppid pgrp ...; comm may hold spaces and parentheses.
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (Number(fields[2]) !== pgid) continue;
      const split = (file: string): string[] => fs.readFileSync(`/proc/${entry}/${file}`, 'utf8').split('\0').filter(Boolean);
      found.push({ pid: Number(entry), argv: split('cmdline'), environ: split('environ') });
    } catch {
      // the process ended while we looked
    }
  }
  return found;
}

/** The calls the fixture CLI recorded: each a list of its arguments. */
export function recordedCalls(file: string): string[][] {
  if (!fs.existsSync(file)) return [];
  return fs
    .readFileSync(file, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((line) => line.split('\t').slice(1));
}

/** The fixture CLI's pid for each recorded call. */
export function recordedPids(file: string): number[] {
  if (!fs.existsSync(file)) return [];
  return fs
    .readFileSync(file, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((line) => Number(line.split('\t')[0]));
}

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
