/**
 * Sessions as plain child processes of the current user, for `npm start` on machines without
 * podman. No isolation: no mounts (the project folder is the working directory), no uid
 * change, the host's network whatever the app asks, no limits (refused, not ignored). Each process leads its own process group and
 * outlives the launcher; a record (pid, its start time, the labels) lets a restarted launcher
 * find it again, and the start time guards against a recycled pid.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { AppError } from '@cloudlet/core';
import type { LocalAccount } from '@cloudlet/usermap';
import type { FoundSession, LaunchPlan, RunState, SessionBackend, SessionEntry, SessionRef } from './backend';
import type { AppConfig } from './config';

interface ProcessRecord {
  pid: number;
  cwd: string;
  startTime: string;
  labels: Record<string, string>;
}

export class ProcessBackend implements SessionBackend {
  readonly kind = 'process';
  private readonly dir: string;
  /** Exit codes of children this launcher spawned (a restarted launcher cannot learn them). */
  private readonly exits = new Map<string, Promise<number>>();

  constructor(stateDir: string, private readonly stopTimeoutMs = 5000) {
    this.dir = path.join(stateDir, 'processes');
    fs.mkdirSync(this.dir, { recursive: true, mode: 0o700 });
  }

  preflight(_account: LocalAccount, app: AppConfig): Promise<void> {
    const { cpus, memory_mb: memory, pids } = app.limits;
    if (cpus > 0 || memory > 0 || pids > 0) {
      return Promise.reject(
        new AppError(`app ${app.id} sets resource limits, which the process backend cannot enforce; use the podman backend or drop the limits`, {
          code: 'limits_unenforceable',
          status: 500,
          publicMessage: 'This server cannot enforce the resource limits of this application',
        }),
      );
    }
    return Promise.resolve();
  }

  async launch(plan: LaunchPlan): Promise<void> {
    const [command, ...args] = plan.command;
    if (command === undefined) throw new AppError(`app ${plan.app.id} has an empty command`, { code: 'config_invalid' });
    const log = fs.openSync(this.logFile(plan.name), 'w', 0o600);
    const child = spawn(command, args, {
      cwd: plan.projectDir,
      detached: true,
      stdio: ['ignore', log, log],
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: plan.projectDir, LANG: process.env.LANG ?? 'C.UTF-8', ...plan.env },
    });
    fs.closeSync(log);
    const pid = await new Promise<number>((resolve, reject) => {
      child.once('spawn', () => resolve(child.pid as number));
      child.once('error', (err) => reject(new AppError(`cannot start ${command} for app ${plan.app.id}: ${err.message}`, { code: 'spawn_failed', cause: err })));
    });
    this.exits.set(plan.name, new Promise((resolve) => child.once('exit', (code, signal) => resolve(code ?? 128 + (signal ? signalNumber(signal) : 0)))));
    child.unref();
    const record: ProcessRecord = { pid, cwd: plan.projectDir, startTime: processStartTime(pid) ?? '', labels: plan.labels };
    fs.writeFileSync(this.recordFile(plan.name), JSON.stringify(record), { mode: 0o600 });
  }

  async state(ref: SessionRef): Promise<RunState | undefined> {
    const record = this.read(ref.name);
    if (!record) return undefined;
    if (isAlive(record)) return { running: true };
    // A child of ours that just died may not have been reaped yet: give its exit event a moment.
    const exit = this.exits.get(ref.name);
    const exitCode = exit ? await Promise.race([exit, new Promise<undefined>((r) => setTimeout(() => r(undefined), 1000))]) : undefined;
    return { running: false, exitCode };
  }

  list(): Promise<FoundSession[]> {
    const found: FoundSession[] = [];
    for (const file of fs.readdirSync(this.dir)) {
      if (!file.endsWith('.json')) continue;
      const name = file.slice(0, -'.json'.length);
      const record = this.read(name);
      if (record) found.push({ name, uid: process.getuid?.() ?? 0, labels: record.labels, running: isAlive(record) });
    }
    return Promise.resolve(found);
  }

  async remove(ref: SessionRef): Promise<void> {
    const record = this.read(ref.name);
    if (record && isAlive(record)) {
      signalGroup(record.pid, 'SIGTERM');
      const deadline = Date.now() + this.stopTimeoutMs;
      while (isAlive(record) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 25));
      if (isAlive(record)) signalGroup(record.pid, 'SIGKILL');
    }
    fs.rmSync(this.recordFile(ref.name), { force: true });
    fs.rmSync(this.logFile(ref.name), { force: true });
    this.exits.delete(ref.name);
  }

  logs(ref: SessionRef, tail: number): Promise<string> {
    let text: string;
    try {
      text = fs.readFileSync(this.logFile(ref.name), 'utf8');
    } catch {
      return Promise.reject(new AppError(`no process session ${ref.name}`, { code: 'not_found', status: 404 }));
    }
    const lines = text.split('\n');
    if (lines[lines.length - 1] === '') lines.pop();
    return Promise.resolve(lines.slice(-tail).map((l) => `${l}\n`).join(''));
  }

  entry(ref: SessionRef): SessionEntry {
    return { kind: 'process', cwd: this.read(ref.name)?.cwd ?? process.cwd() };
  }

  private read(name: string): ProcessRecord | undefined {
    try {
      return JSON.parse(fs.readFileSync(this.recordFile(name), 'utf8')) as ProcessRecord;
    } catch {
      return undefined;
    }
  }

  private recordFile(name: string): string {
    return path.join(this.dir, `${name}.json`);
  }

  private logFile(name: string): string {
    return path.join(this.dir, `${name}.log`);
  }
}

/** Field 22 of /proc/<pid>/stat (after the parenthesised name, which may hold spaces). */
function processStartTime(pid: number): string | undefined {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (fields[0] === 'Z') return undefined; // exited, not yet reaped
    return fields[19];
  } catch {
    return undefined;
  }
}

function isAlive(record: ProcessRecord): boolean {
  const now = processStartTime(record.pid);
  return now !== undefined && now === record.startTime;
}

function signalGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ESRCH') throw err;
  }
}

function signalNumber(signal: NodeJS.Signals): number {
  return ({ SIGKILL: 9, SIGTERM: 15, SIGINT: 2, SIGHUP: 1 } as Record<string, number>)[signal] ?? 0;
}
