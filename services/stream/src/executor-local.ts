/**
 * The embedded executor: steps as child processes on this machine, argv arrays (no shell),
 * output appended to the step's log file, a time limit (TERM, then KILL after a grace period).
 * Concurrency is the pipeline runner's business (its worker count).
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import type { Executor, StepJob, StepOutcome } from './executor';

const KILL_GRACE_MS = 5000;

/**
 * The step runs under a tiny constant shell script that first records its pid next to the log:
 * values reach it only as positional parameters ("$@"), never as script text. If the service is
 * killed, the step keeps running as an orphan; the next run of the same step finds the pid alive
 * and waits for it instead of starting a second copy.
 */
const WRAPPER = 'echo $$ > "$0.pid"; exec "$@"';

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function waitForOrphan(pidFile: string, signal?: AbortSignal): Promise<boolean> {
  let pid: number;
  try {
    pid = Number(fs.readFileSync(pidFile, 'utf8').trim());
  } catch {
    return false;
  }
  if (!Number.isInteger(pid) || pid <= 1 || !alive(pid)) return false;
  while (alive(pid) && !signal?.aborted) await new Promise((resolve) => setTimeout(resolve, 100));
  return true;
}

export function createLocalExecutor(): Executor {
  return {
    name: 'local',
    async run(job: StepJob, signal?: AbortSignal): Promise<StepOutcome> {
      const pidFile = `${job.logFile}.pid`;
      if (await waitForOrphan(pidFile, signal)) {
        // Its exit status died with the old service; the runner judges by the step's outputs.
        fs.rmSync(pidFile, { force: true });
        return { status: 'failed', reason: 'an earlier run of this step was interrupted by a restart', exitCode: null, seconds: 0 };
      }
      return runChild(job, pidFile, signal);
    },
    async close() {
      // Children belong to their runs; the runner aborts them.
    },
  };
}

function runChild(job: StepJob, pidFile: string, signal?: AbortSignal): Promise<StepOutcome> {
      const started = process.hrtime.bigint();
      const seconds = (): number => Number(process.hrtime.bigint() - started) / 1e9;
      fs.mkdirSync(path.dirname(job.logFile), { recursive: true });
      const log = fs.openSync(job.logFile, 'a');
      return new Promise((resolve) => {
        const [command] = job.argv;
        if (!command) {
          fs.closeSync(log);
          resolve({ status: 'failed', reason: 'empty command', exitCode: null, seconds: 0 });
          return;
        }
        let timedOut = false;
        const child = spawn('/bin/sh', ['-c', WRAPPER, job.logFile, ...job.argv], { cwd: job.cwd, env: { PATH: process.env.PATH ?? '/usr/bin:/bin', ...job.env }, stdio: ['ignore', log, log], detached: true });
        const killGroup = (sig: NodeJS.Signals): void => {
          try {
            if (child.pid) process.kill(-child.pid, sig); // the whole process group: steps that fork
          } catch {
            // already gone
          }
        };
        const stop = (): void => {
          killGroup('SIGTERM');
          setTimeout(() => killGroup('SIGKILL'), KILL_GRACE_MS).unref();
        };
        const timer = setTimeout(() => {
          timedOut = true;
          stop();
        }, job.timeoutS * 1000);
        signal?.addEventListener('abort', stop, { once: true });
        child.once('error', (err) => {
          clearTimeout(timer);
          fs.closeSync(log);
          // ENOENT, EACCES: the program is missing or not runnable; say which.
          resolve({ status: 'failed', reason: `cannot run ${command}: ${(err as NodeJS.ErrnoException).code ?? err.message}`, exitCode: null, seconds: seconds() });
        });
        child.once('exit', (code, sig) => {
          clearTimeout(timer);
          fs.rmSync(pidFile, { force: true });
          signal?.removeEventListener('abort', stop);
          fs.closeSync(log);
          if (timedOut) resolve({ status: 'timeout', seconds: seconds() });
          else if (code === 0) resolve({ status: 'ok', seconds: seconds() });
          else if (code === 127) resolve({ status: 'failed', reason: `cannot run ${command}: not found or not executable`, exitCode: code, seconds: seconds() });
          else resolve({ status: 'failed', reason: sig ? `killed by ${sig}` : `exit code ${code}`, exitCode: code, seconds: seconds() });
        });
      });
}
