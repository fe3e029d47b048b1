/**
 * Remote commands and bulk copies over the system OpenSSH and rsync (DESIGN.md section 7: they
 * beat ssh2's SFTP by 2-3x). Every call pins the host key to one known_hosts file and refuses
 * anything else, runs as an argument array (no local shell), and quotes each remote argument
 * for the remote shell, so a file named `$(reboot).mrc` is only a name at both ends.
 */
import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { AppError } from './errors';

export interface SshTarget {
  host: string;
  port: number;
  user: string;
  /** Private key file (mode 600). */
  keyFile: string;
  /** A known_hosts file holding the host's key: the only key accepted. */
  knownHostsFile: string;
}

export class SshError extends AppError {
  constructor(message: string, code: 'ssh_host_key' | 'ssh_failed' | 'ssh_timeout' | 'ssh_aborted' | 'ssh_target_invalid', cause?: unknown) {
    super(message, { code, status: 502, publicMessage: 'The remote host could not be reached safely', cause });
    this.name = 'SshError';
  }
}

/** Quotes one argument for a POSIX shell: single quotes, an embedded ' as '\''. */
export function shellQuote(arg: string): string {
  return `'${arg.replaceAll("'", "'\\''")}'`;
}

/** The command line ssh hands to the remote login shell (assumed POSIX), one quoted word per element. */
export function remoteCommand(argv: readonly string[]): string {
  if (argv.length === 0) throw new SshError('no remote command given', 'ssh_target_invalid');
  return argv.map(shellQuote).join(' ');
}

// ssh expands `~` and `%` tokens in key and known_hosts paths and splits the latter on
// whitespace; rsync splits -e on whitespace. Paths with only these characters mean what they say.
const SAFE_PATH = /^\/[A-Za-z0-9._/@+-]*$/;
const SAFE_USER = /^[A-Za-z_][A-Za-z0-9_.-]*$/;
const SAFE_HOST = /^[A-Za-z0-9][A-Za-z0-9.-]*$/;

function checkTarget(t: SshTarget): void {
  const problems: string[] = [];
  if (!SAFE_HOST.test(t.host)) problems.push(`host ${JSON.stringify(t.host)} is not a host name or IPv4 address`);
  if (!SAFE_USER.test(t.user)) problems.push(`user ${JSON.stringify(t.user)} is not a plain user name`);
  if (!Number.isInteger(t.port) || t.port < 1 || t.port > 65535) problems.push(`port ${t.port} is out of range`);
  for (const [name, file] of [['keyFile', t.keyFile], ['knownHostsFile', t.knownHostsFile]] as const) {
    if (!SAFE_PATH.test(file)) problems.push(`${name} ${JSON.stringify(file)} must be an absolute path of letters, digits and ._/@+-`);
  }
  if (problems.length > 0) throw new SshError(`invalid ssh target: ${problems.join('; ')}`, 'ssh_target_invalid');
}

/** OpenSSH options (no host, no command) that pin the host key and never prompt. */
export function sshArgs(target: SshTarget): string[] {
  checkTarget(target);
  return [
    '-F', '/dev/null', // no user or system ssh_config can loosen what follows
    '-o', 'StrictHostKeyChecking=yes',
    '-o', `UserKnownHostsFile=${target.knownHostsFile}`,
    '-o', 'GlobalKnownHostsFile=/dev/null',
    '-o', 'CheckHostIP=no',
    '-o', 'UpdateHostKeys=no',
    '-o', 'BatchMode=yes',
    '-o', 'IdentitiesOnly=yes',
    '-o', 'IdentityAgent=none',
    '-o', 'ConnectTimeout=15',
    '-o', 'ServerAliveInterval=15',
    '-o', 'ServerAliveCountMax=3',
    '-i', target.keyFile,
    '-p', String(target.port),
    '-l', target.user,
  ];
}

export interface ExecOptions {
  timeoutMs?: number;
  signal?: AbortSignal;
  /** Output beyond this many bytes per stream is dropped (default 16 MiB). */
  maxOutputBytes?: number;
}

export interface ExecResult {
  code: number;
  stdout: string;
  stderr: string;
}

const HOST_KEY_FAILURE = /Host key verification failed|REMOTE HOST IDENTIFICATION HAS CHANGED|No \S+ host key is known/;

/**
 * Runs `argv` on the target. A remote exit status is returned, not thrown; ssh's own failures
 * (status 255: connection, authentication, host key) throw SshError.
 */
export async function sshExec(target: SshTarget, argv: readonly string[], opts: ExecOptions = {}): Promise<ExecResult> {
  const args = [...sshArgs(target), '--', target.host, remoteCommand(argv)];
  const result = await runChild('ssh', args, opts);
  if (result.code === 255) throw sshFailure('ssh', target, result.stderr);
  return result;
}

function sshFailure(tool: string, target: SshTarget, stderr: string): SshError {
  const where = `${target.user}@${target.host}:${target.port}`;
  const detail = stderr.trim().split('\n').slice(-3).join(' | ');
  if (HOST_KEY_FAILURE.test(stderr)) {
    return new SshError(`${tool} to ${where} refused: the host key does not match ${target.knownHostsFile} (${detail})`, 'ssh_host_key');
  }
  return new SshError(`${tool} to ${where} failed: ${detail}`, 'ssh_failed');
}

interface ChildOptions extends ExecOptions {
  onStdout?: (chunk: string) => void;
}

async function runChild(command: string, args: string[], opts: ChildOptions): Promise<ExecResult> {
  const limit = opts.maxOutputBytes ?? 16 * 1024 * 1024;
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'], signal: opts.signal });
    // Our own timer rather than spawn's: ssh catches SIGTERM and exits 255, which would read as
    // a connection failure.
    let timedOut = false;
    const timer = opts.timeoutMs === undefined ? undefined : setTimeout(() => {
      timedOut = true;
      child.kill('SIGTERM');
    }, opts.timeoutMs);
    const out = { stdout: '', stderr: '' };
    child.stdout.setEncoding('utf8');
    child.stderr.setEncoding('utf8');
    child.stdout.on('data', (chunk: string) => {
      opts.onStdout?.(chunk);
      if (out.stdout.length < limit) out.stdout += chunk;
    });
    child.stderr.on('data', (chunk: string) => {
      if (out.stderr.length < limit) out.stderr += chunk;
    });
    let failed: Error | undefined;
    child.once('error', (err) => {
      failed = err.name === 'AbortError' ? new SshError(`${command} aborted`, 'ssh_aborted', err) : err;
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      if (failed) return reject(failed);
      if (timedOut) return reject(new SshError(`${command} timed out after ${opts.timeoutMs} ms`, 'ssh_timeout'));
      if (code === null) return reject(new SshError(`${command} was killed by ${signal ?? 'a signal'}`, 'ssh_failed'));
      resolve({ code, ...out });
    });
  });
}

export interface RemoteId {
  uid: number;
  gid: number;
  user: string;
}

/** Who we are on the target (`id -u`, `id -g`, `id -un`): checked before writing files there. */
export async function remoteId(target: SshTarget, opts: ExecOptions = {}): Promise<RemoteId> {
  const { code, stdout, stderr } = await sshExec(target, ['sh', '-c', 'id -u && id -g && id -un'], { timeoutMs: 30_000, ...opts });
  const [uid, gid, user] = stdout.split('\n');
  if (code !== 0 || !/^\d+$/.test(uid ?? '') || !/^\d+$/.test(gid ?? '') || !user) {
    throw new SshError(`id on ${target.host} gave no identity (status ${code}): ${stderr.trim()}`, 'ssh_failed');
  }
  return { uid: Number(uid), gid: Number(gid), user };
}

export interface FileCopy {
  local: string;
  /** Destination on the target; relative paths are under the remote user's home. */
  remote: string;
}

export interface RsyncOptions {
  bandwidthKiBps?: number;
  /** Compare whole-file checksums instead of size and mtime to decide what to send. */
  checksum?: boolean;
  /** Cumulative bytes sent and files finished, across the whole call. */
  onProgress?: (bytes: number, files: number) => void;
  signal?: AbortSignal;
  /** rsync's I/O timeout: give up when nothing moves for this long (default 60 s). */
  idleTimeoutSeconds?: number;
}

/** rsync's -e: the ssh command line, which rsync splits itself on spaces and quotes. */
export function rsyncShell(target: SshTarget): string {
  return ['ssh', ...sshArgs(target)].map(shellQuote).join(' ');
}

/**
 * Copies each file to its destination (directories made as needed). An interrupted file is kept
 * in `.rsync-partial` beside its destination and used as the basis of the next run, so calling
 * again after a cut resumes instead of starting over. Files already there are skipped.
 */
export interface RsyncResult {
  /** Bytes covered, as rsync's progress counts them (resent and reused alike). */
  bytes: number;
  files: number;
  /** From --stats: bytes sent as data, and bytes the remote already had (a resumed partial, an old copy). */
  literalBytes: number;
  matchedBytes: number;
}

export async function rsyncFiles(target: SshTarget, files: readonly FileCopy[], opts: RsyncOptions = {}): Promise<RsyncResult> {
  const base = [
    '--secluded-args', // file names travel inside the rsync protocol, never through a remote shell
    '--times',
    '--mkpath',
    '--partial-dir=.rsync-partial',
    '--info=progress2',
    '--stats',
    '--no-motd',
    `--timeout=${opts.idleTimeoutSeconds ?? 60}`,
    ...(opts.bandwidthKiBps ? [`--bwlimit=${opts.bandwidthKiBps}`] : []),
    ...(opts.checksum ? ['--checksum'] : []),
    '-e', rsyncShell(target),
  ];
  let bytesBefore = 0;
  let done = 0;
  let literalBytes = 0;
  let matchedBytes = 0;
  for (const file of files) {
    let bytesNow = 0;
    const parser = progressParser((bytes) => {
      bytesNow = bytes;
      opts.onProgress?.(bytesBefore + bytesNow, done);
    });
    // Absolute, so a local name can start with neither '-' nor look like `host:path`.
    const args = [...base, '--', path.resolve(file.local), `${target.host}:${file.remote}`];
    const result = await runChild('rsync', args, { signal: opts.signal, onStdout: parser });
    if (result.code !== 0) {
      if (HOST_KEY_FAILURE.test(result.stderr) || result.code === 255) throw sshFailure('rsync', target, result.stderr);
      throw new SshError(`rsync of ${file.local} to ${target.host}:${file.remote} failed (status ${result.code}): ${result.stderr.trim()}`, 'ssh_failed');
    }
    bytesBefore += bytesNow;
    done += 1;
    literalBytes += statsField(result.stdout, 'Literal data');
    matchedBytes += statsField(result.stdout, 'Matched data');
    opts.onProgress?.(bytesBefore, done);
  }
  return { bytes: bytesBefore, files: done, literalBytes, matchedBytes };
}

function statsField(stdout: string, name: string): number {
  const match = new RegExp(`^${name}: ([\\d,]+) bytes`, 'm').exec(stdout);
  return match?.[1] ? Number(match[1].replaceAll(',', '')) : 0;
}

/** Feeds on rsync's `--info=progress2` output (lines ended by \r), chunk by chunk. */
export function progressParser(onBytes: (bytes: number) => void): (chunk: string) => void {
  let buffered = '';
  return (chunk) => {
    buffered += chunk;
    const lines = buffered.split(/[\r\n]/);
    buffered = lines.pop() ?? '';
    for (const line of lines) {
      const match = /^\s*([\d,]+)\s+\d+%/.exec(line);
      if (match?.[1]) onBytes(Number(match[1].replaceAll(',', '')));
    }
  };
}

export interface VerifyResult {
  ok: boolean;
  mismatches: { local: string; remote: string; localSha256: string; remoteSha256: string | undefined }[];
}

const VERIFY_BATCH = 200;

/** Compares the sha256 of each local file with `sha256sum` of its remote copy. */
export async function verifyRemote(target: SshTarget, files: readonly FileCopy[], opts: ExecOptions = {}): Promise<VerifyResult> {
  const mismatches: VerifyResult['mismatches'] = [];
  for (let i = 0; i < files.length; i += VERIFY_BATCH) {
    const batch = files.slice(i, i + VERIFY_BATCH);
    // -z: NUL-terminated records with names unescaped, so any name maps back exactly.
    const { code, stdout, stderr } = await sshExec(target, ['sha256sum', '-z', '--', ...batch.map((f) => f.remote)], { timeoutMs: 600_000, ...opts });
    // Status 1 is "some file could not be read": those are reported as mismatches below.
    if (code !== 0 && code !== 1) throw new SshError(`sha256sum on ${target.host} failed (status ${code}): ${stderr.trim()}`, 'ssh_failed');
    const remote = new Map<string, string>();
    for (const record of stdout.split('\0')) {
      const match = /^([0-9a-f]{64}) [ *]([\s\S]*)$/.exec(record);
      if (match?.[1] && match[2] !== undefined) remote.set(match[2], match[1]);
    }
    for (const file of batch) {
      const localSha256 = await sha256File(file.local);
      const remoteSha256 = remote.get(file.remote);
      if (remoteSha256 !== localSha256) mismatches.push({ local: file.local, remote: file.remote, localSha256, remoteSha256 });
    }
  }
  return { ok: mismatches.length === 0, mismatches };
}

export async function sha256File(file: string): Promise<string> {
  const hash = crypto.createHash('sha256');
  for await (const chunk of fs.createReadStream(file)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}
