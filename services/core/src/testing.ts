/**
 * Helpers for integration tests: real processes on loopback, ephemeral ports, temp dirs, and
 * waiting on real signals (a log event, a port) instead of sleeping.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import net from 'node:net';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export function tempDir(prefix = 'cloudlet-test-'): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

export interface RunningProcess {
  child: ChildProcess;
  /** Every stdout/stderr line so far. */
  lines: string[];
  /** Resolves with the first JSON log line (already seen or future) for which `match` holds. */
  waitForLog(match: (entry: Record<string, unknown>) => boolean, timeoutMs?: number): Promise<Record<string, unknown>>;
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

export interface StartOptions {
  env?: NodeJS.ProcessEnv;
  cwd?: string;
}

export function startProcess(command: string, args: string[], options: StartOptions = {}): RunningProcess {
  const child = spawn(command, args, {
    cwd: options.cwd,
    env: options.env ?? process.env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const lines: string[] = [];
  const waiters: { match: (e: Record<string, unknown>) => boolean; resolve: (e: Record<string, unknown>) => void }[] = [];
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));

  const onLine = (line: string): void => {
    lines.push(line);
    const entry = parseJson(line);
    if (!entry) return;
    for (const waiter of [...waiters]) {
      if (waiter.match(entry)) {
        waiters.splice(waiters.indexOf(waiter), 1);
        waiter.resolve(entry);
      }
    }
  };
  for (const stream of [child.stdout, child.stderr]) {
    let buffered = '';
    stream?.setEncoding('utf8');
    stream?.on('data', (chunk: string) => {
      buffered += chunk;
      let nl: number;
      while ((nl = buffered.indexOf('\n')) !== -1) {
        onLine(buffered.slice(0, nl));
        buffered = buffered.slice(nl + 1);
      }
    });
  }

  return {
    child,
    lines,
    waitForLog(match, timeoutMs = 20_000) {
      for (const line of lines) {
        const entry = parseJson(line);
        if (entry && match(entry)) return Promise.resolve(entry);
      }
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          reject(new Error(`timed out waiting for a log line; output so far:\n${lines.slice(-30).join('\n')}`));
        }, timeoutMs);
        const onExit = (code: number | null): void => {
          clearTimeout(timer);
          reject(new Error(`process exited (${code}) before the log line; output:\n${lines.slice(-30).join('\n')}`));
        };
        child.once('exit', onExit);
        waiters.push({
          match,
          resolve: (entry) => {
            clearTimeout(timer);
            child.off('exit', onExit);
            resolve(entry);
          },
        });
      });
    },
    async stop(signal: NodeJS.Signals = 'SIGTERM') {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      return exited;
    },
  };
}

function parseJson(line: string): Record<string, unknown> | undefined {
  if (!line.startsWith('{')) return undefined;
  try {
    const value: unknown = JSON.parse(line);
    return typeof value === 'object' && value !== null ? (value as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

/** Polls `check` until it returns a value other than undefined/false. For conditions with no event to wait on. */
export async function waitFor<T>(check: () => T | undefined | false | Promise<T | undefined | false>, timeoutMs = 10_000, what = 'condition'): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** A real VNC server for tests: Xvfb on a display it picks itself, x11vnc on it with a VNC password. */
export interface VncServer {
  port: number;
  /** The X display, e.g. ":99", for tools like xdotool. */
  display: string;
  stop(): Promise<void>;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const port = (server.address() as net.AddressInfo).port;
      server.close(() => resolve(port));
    });
  });
}

/** Xvfb on a display it picks itself (-displayfd), x11vnc on it with `password`. */
export async function startX11vnc(password: string, geometry = '800x600x24'): Promise<VncServer> {
  const dir = tempDir('cloudlet-x11vnc-');
  const xvfb = spawn('Xvfb', ['-displayfd', '3', '-screen', '0', geometry, '-nolisten', 'tcp'], { stdio: ['ignore', 'ignore', 'ignore', 'pipe'] });
  const display = await new Promise<string>((resolve, reject) => {
    let text = '';
    const fd = xvfb.stdio[3] as NodeJS.ReadableStream;
    fd.setEncoding('utf8');
    fd.on('data', (chunk: string) => {
      text += chunk;
      if (text.includes('\n')) resolve(`:${text.trim()}`);
    });
    xvfb.once('exit', (code) => reject(new Error(`Xvfb exited (${code})`)));
  });
  const passwd = path.join(dir, 'passwd');
  execFileSync('x11vnc', ['-storepasswd', password, passwd], { stdio: 'ignore' });
  const port = await freePort();
  const vnc = startProcess('x11vnc', ['-display', display, '-rfbport', String(port), '-rfbauth', passwd, '-forever', '-shared', '-localhost', '-noxdamage', '-nowf', '-norc', '-noipv6'], {});
  await waitForLine(vnc.lines, (l) => l.startsWith('PORT='), () => vnc.child.exitCode !== null);
  return {
    port,
    display,
    async stop() {
      await vnc.stop('SIGKILL');
      xvfb.kill('SIGKILL');
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

async function waitForLine(lines: string[], match: (l: string) => boolean, dead: () => boolean, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!lines.some(match)) {
    if (dead()) throw new Error(`process died:\n${lines.slice(-20).join('\n')}`);
    if (Date.now() > deadline) throw new Error(`timed out:\n${lines.slice(-20).join('\n')}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

export * from './testing-slurm';
export * from './testing-sshd';
export * from './testing-ood';
