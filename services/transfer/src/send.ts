/**
 * Bulk sending and checking for the transfer runner. core's rsyncFiles and verifyRemote pay one
 * ssh login per file and hash each local file twice; a job of 20,000 small files would spend
 * minutes on logins alone. Here one rsync carries a whole batch (names on stdin, NUL-separated,
 * so any name is only a name) and one remote `sha256sum` hashes a whole batch, also fed on stdin
 * so no command line grows with the batch.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { AppError, errorMessage, progressParser, remoteCommand, shellQuote, SshError, sshArgs, type SshTarget } from '@cloudlet/core';
import type { FileRow } from './queue';

/** The remote side ran out of space (or quota): retrying will not help until someone frees some. */
export class RemoteDiskFull extends AppError {
  constructor(message: string) {
    super(message, { code: 'remote_disk_full', status: 507, publicMessage: message });
  }
}

/** `err` as RemoteDiskFull when the remote side said it is out of space, else `err` itself. */
export function diskFullOr(err: unknown, where: string): unknown {
  return DISK_FULL.test(errorMessage(err)) ? new RemoteDiskFull(`remote disk full under ${where}: ${errorMessage(err)}`) : err;
}

export interface BatchOptions {
  /** rsync's --bwlimit for this process, KiB/s; 0 means none. */
  bandwidthKiBps: number;
  /** Compare whole-file checksums, not size and mtime: a resend after a mismatch. */
  checksum: boolean;
  /** rsync's --timeout: give up when nothing moves for this long. */
  idleTimeoutSeconds: number;
  signal: AbortSignal;
  onProgress: (bytes: number) => void;
}

export interface BatchStats {
  /** Bytes sent as data, and bytes the remote side already had (a resumed partial). */
  literalBytes: number;
  matchedBytes: number;
}

const HOST_KEY_FAILURE = /Host key verification failed|REMOTE HOST IDENTIFICATION HAS CHANGED|No \S+ host key is known/;
const DISK_FULL = /No space left on device|Disk quota exceeded/;

/** Files of one rsync run: sent together, checked together. */
export interface Batch {
  files: FileRow[];
  bytes: number;
  /** Named by their path under the job's source, so one rsync can take them all by name. */
  direct: boolean;
  resend: boolean;
}

const MAX_BATCH_FILES = 2000;
const MIN_BATCH_BYTES = 1 << 20;

/**
 * Cuts pending files into rsync runs of at most 2,000 files and about a quarter of each
 * worker's share of the bytes (1 MiB at least): thousands of small files share one ssh login,
 * a big file has a run to itself, and every worker gets several runs so the tail evens out.
 * A file reached through a symlink goes alone, by its resolved path.
 */
export function planBatches(source: string, files: readonly FileRow[], parallel: number): Batch[] {
  const total = files.reduce((n, f) => n + f.size, 0);
  const cap = Math.max(MIN_BATCH_BYTES, Math.ceil(total / (4 * parallel)));
  const out: Batch[] = [];
  const open = new Map<boolean, Batch>();
  for (const f of files) {
    const resend = f.attempts > 0;
    if (f.local !== path.join(source, f.rel)) {
      out.push({ files: [f], bytes: f.size, direct: false, resend });
      continue;
    }
    let batch = open.get(resend);
    if (!batch || batch.files.length >= MAX_BATCH_FILES || (batch.files.length > 0 && batch.bytes + f.size > cap)) {
      batch = { files: [], bytes: 0, direct: true, resend };
      open.set(resend, batch);
      out.push(batch);
    }
    batch.files.push(f);
    batch.bytes += f.size;
  }
  return out;
}

/**
 * Sends `rels` (relative to the local folder `base`) to the same names under `dest`. An
 * interrupted file stays in `.rsync-partial` beside its destination and is the basis of the
 * next try, so a resend after a cut only moves what is missing.
 */
export async function rsyncBatch(target: SshTarget, base: string, dest: string, rels: readonly string[], opts: BatchOptions, mux?: SshMux): Promise<BatchStats> {
  const args = [
    '--secluded-args', // names travel inside the rsync protocol, never through a remote shell
    '--times',
    '--mkpath',
    '--partial-dir=.rsync-partial',
    '--files-from=-',
    '--from0',
    '--info=progress2',
    '--stats',
    '--no-motd',
    `--timeout=${opts.idleTimeoutSeconds}`,
    ...(opts.bandwidthKiBps ? [`--bwlimit=${opts.bandwidthKiBps}`] : []),
    ...(opts.checksum ? ['--checksum'] : []),
    '-e', ['ssh', ...sshArgs(target), ...(mux?.args() ?? [])].map(shellQuote).join(' '),
    '--', `${base}/`, `${target.host}:${dest}/`,
  ];
  // rsync skips --files-from lines that start with ';' or '#' (comments): './' keeps them names.
  const result = await run('rsync', args, { input: nulList(rels.map((r) => `./${r}`)), signal: opts.signal, onStdout: progressParser(opts.onProgress) });
  if (result.code !== 0) {
    const detail = tail(result.stderr);
    if (HOST_KEY_FAILURE.test(result.stderr)) throw new SshError(`rsync to ${where(target)} refused: the host key does not match ${target.knownHostsFile} (${detail})`, 'ssh_host_key');
    if (DISK_FULL.test(result.stderr)) throw new RemoteDiskFull(`remote disk full under ${target.host}:${dest}: ${detail}`);
    throw new SshError(`rsync of ${rels.length} file(s) to ${where(target)}:${dest} failed (status ${result.code}): ${detail}`, 'ssh_failed');
  }
  return { literalBytes: statsField(result.stdout, 'Literal data'), matchedBytes: statsField(result.stdout, 'Matched data') };
}

/**
 * sha256 of each remote file, by one `sha256sum` over ssh for the whole list. A file that is
 * missing or unreadable is absent from the result; an ssh failure throws.
 */
export async function remoteSha256(target: SshTarget, remotes: readonly string[], signal: AbortSignal, mux?: SshMux): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  if (remotes.length === 0) return out;
  const args = [...sshArgs(target), ...(mux?.args() ?? []), '--', target.host, remoteCommand(['sh', '-c', REMOTE_SHA256])];
  const result = await run('ssh', args, { input: nulList(remotes), signal });
  if (result.code === 255) {
    if (HOST_KEY_FAILURE.test(result.stderr)) throw new SshError(`ssh to ${where(target)} refused: the host key does not match ${target.knownHostsFile}`, 'ssh_host_key');
    throw new SshError(`ssh to ${where(target)} failed: ${tail(result.stderr)}`, 'ssh_failed');
  }
  // 123: some sha256sum run met an unreadable file (the Python path skips those); both leave it out.
  if (result.code !== 0 && result.code !== 123) throw new SshError(`sha256sum on ${target.host} failed (status ${result.code}): ${tail(result.stderr)}`, 'ssh_failed');
  for (const record of result.stdout.split('\0')) {
    const match = /^([0-9a-f]{64}) [ *]([\s\S]*)$/.exec(record);
    if (match?.[1] && match[2] !== undefined) out.set(match[2], match[1]);
  }
  return out;
}

/**
 * The remote half of the check: a constant script, names on stdin and records out, both
 * NUL-separated in `sha256sum -z` form. coreutils' sha256sum does not use the CPU's SHA
 * instructions (about 400 MB/s here); Python's hashlib goes through OpenSSL, which does (1.7 GB/s),
 * so Python is used where the cluster has it.
 */
const REMOTE_SHA256 = `if command -v python3 >/dev/null 2>&1; then exec python3 -c '
import hashlib, os, sys
out = sys.stdout.buffer
for name in sys.stdin.buffer.read().split(b"\\0"):
    if not name:
        continue
    h = hashlib.sha256()
    try:
        with open(name, "rb", buffering=0) as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
    except OSError:
        continue
    out.write(h.hexdigest().encode() + b"  " + name + b"\\0")
'; else exec xargs -0 -r sha256sum -z --; fi`;

/**
 * Local digests. Reads are synchronous through one buffer, yielding to the event loop every
 * 20 ms: for thousands of small files from the page cache that is twice as fast as async reads,
 * whose thread-pool round trip per call costs more than hashing 64 KiB.
 */
export async function localSha256(files: readonly string[]): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  const buffer = Buffer.allocUnsafe(1 << 20);
  let slice = Date.now();
  for (const file of files) {
    const hash = crypto.createHash('sha256');
    const fd = fs.openSync(file, 'r');
    try {
      for (let n; (n = fs.readSync(fd, buffer, 0, buffer.length, null)) > 0; ) {
        hash.update(buffer.subarray(0, n));
        if (Date.now() - slice > 20) {
          await new Promise((resolve) => setImmediate(resolve));
          slice = Date.now();
        }
      }
    } finally {
      fs.closeSync(fd);
    }
    out.set(file, hash.digest('hex'));
  }
  return out;
}

function nulList(names: readonly string[]): string {
  return names.map((n) => `${n}\0`).join('');
}

function where(t: SshTarget): string {
  return `${t.user}@${t.host}:${t.port}`;
}

function tail(stderr: string): string {
  return stderr.trim().split('\n').slice(-3).join(' | ');
}

function statsField(stdout: string, name: string): number {
  const match = new RegExp(`^${name}: ([\\d,]+) bytes`, 'm').exec(stdout);
  return match?.[1] ? Number(match[1].replaceAll(',', '')) : 0;
}

interface RunOptions {
  input: string;
  signal: AbortSignal;
  onStdout?: (chunk: string) => void;
}

/** Runs a child with `input` on stdin; output is kept (sha256sum's is ~70 bytes a file). */
function run(command: string, args: string[], opts: RunOptions): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: ['pipe', 'pipe', 'pipe'], signal: opts.signal });
    const out = { stdout: '', stderr: '' };
    child.stdout.setEncoding('utf8');
    child.stderr.setEncoding('utf8');
    child.stdout.on('data', (chunk: string) => {
      opts.onStdout?.(chunk);
      out.stdout += chunk;
    });
    child.stderr.on('data', (chunk: string) => {
      if (out.stderr.length < 1 << 20) out.stderr += chunk;
    });
    // A child that dies early closes its stdin; the close event below reports why.
    child.stdin.on('error', () => undefined);
    child.stdin.end(opts.input);
    let failed: Error | undefined;
    child.once('error', (err) => {
      failed = err.name === 'AbortError' ? new SshError(`${command} aborted`, 'ssh_aborted', err) : err;
    });
    child.once('close', (code, signal) => {
      if (failed) return reject(failed);
      if (code === null) return reject(new SshError(`${command} was killed by ${signal ?? 'a signal'}`, 'ssh_failed'));
      resolve({ code, ...out });
    });
  });
}

/**
 * One ssh login shared by many short sessions (OpenSSH ControlMaster): a login costs 0.1-0.3 s
 * of handshake here and a few round trips more over a WAN, which a job of thousands of small
 * files in hundreds of runs and checks would otherwise pay each time. The socket sits in a
 * private (0700) folder, since whoever can open it can use the session.
 */
export class SshMux {
  private constructor(
    private readonly dir: string,
    private readonly socket: string,
    private readonly master: ChildProcess,
  ) {}

  /** A running master, or undefined when none came up (the callers then log in each time). */
  static async open(target: SshTarget, signal: AbortSignal, idleTimeoutSeconds: number): Promise<SshMux | undefined> {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cloudlet-ssh-'));
    const socket = path.join(dir, 'mux');
    // Every session on a master waits for it, rsync included (it waits for its ssh), so a master
    // on a dead link must die about as soon as rsync's idle timeout fires, not after sshArgs'
    // 45 s keepalive. ssh keeps the first value of an option, hence these go first.
    const alive = Math.max(1, Math.ceil(idleTimeoutSeconds / 3));
    const keepalive = ['-o', `ServerAliveInterval=${alive}`, '-o', 'ServerAliveCountMax=3'];
    const master = spawn('ssh', [...keepalive, ...sshArgs(target), '-M', '-N', '-o', `ControlPath=${socket}`, '-o', 'ControlPersist=no', '--', target.host], { stdio: 'ignore' });
    const mux = new SshMux(dir, socket, master);
    const up = await new Promise<boolean>((resolve) => {
      const poll = setInterval(() => {
        if (fs.existsSync(socket)) done(true);
      }, 10);
      const done = (ok: boolean): void => {
        clearInterval(poll);
        master.off('exit', onExit);
        signal.removeEventListener('abort', onAbort);
        resolve(ok);
      };
      const onExit = (): void => done(false);
      const onAbort = (): void => done(false);
      master.once('exit', onExit);
      master.once('error', onExit);
      signal.addEventListener('abort', onAbort, { once: true });
    });
    if (!up) mux.close();
    return up ? mux : undefined;
  }

  /** ssh options that use the master; with the master gone, ssh logs in on its own. */
  args(): string[] {
    return ['-o', `ControlPath=${this.socket}`, '-o', 'ControlMaster=no'];
  }

  close(): void {
    if (this.master.exitCode === null && this.master.signalCode === null) this.master.kill('SIGTERM');
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}
