/**
 * Control commands on a cluster (id, mkdir, sbatch, squeue, scancel) over one ssh2 connection:
 * many short commands without an OpenSSH process and handshake each (DESIGN.md section 7: ssh2
 * for control, OpenSSH/rsync for bulk). The host key is pinned to the cluster's known_hosts file
 * exactly as the OpenSSH path pins it; an unknown or changed key refuses the login. Commands are
 * argument arrays, each word quoted for the remote shell; input (a batch script) goes on stdin,
 * never in the command line.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import { Client } from 'ssh2';
import { type ExecResult, remoteCommand, SshError, type SshTarget } from '@cloudlet/core';

/** The keys a known_hosts file accepts for `host:port`, and those it revokes. */
export function knownHostKeys(text: string, host: string, port: number): { accepted: Buffer[]; revoked: Buffer[] } {
  const name = port === 22 ? host : `[${host}]:${port}`;
  const accepted: Buffer[] = [];
  const revoked: Buffer[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const fields = line.split(/\s+/);
    const marker = fields[0]?.startsWith('@') ? fields.shift() : undefined;
    const [patterns, , key] = fields;
    if (!patterns || !key) continue;
    // A CA line would need certificate checks we do not do: it never admits a key here.
    if (marker === '@cert-authority') continue;
    const blob = Buffer.from(key, 'base64');
    if (marker === '@revoked') revoked.push(blob);
    else if (hostMatches(patterns, name)) accepted.push(blob);
  }
  return { accepted, revoked };
}

function hostMatches(patterns: string, name: string): boolean {
  if (patterns.startsWith('|1|')) {
    const [, , salt, hash] = patterns.split('|');
    if (!salt || !hash) return false;
    return crypto.createHmac('sha1', Buffer.from(salt, 'base64')).update(name).digest('base64') === hash;
  }
  let matched = false;
  for (const pattern of patterns.split(',')) {
    const negated = pattern.startsWith('!');
    const glob = negated ? pattern.slice(1) : pattern;
    const re = new RegExp(`^${glob.replace(/[.+^${}()|[\]\\]/g, '\\$&').replaceAll('*', '.*').replaceAll('?', '.')}$`, 'i');
    if (re.test(name)) {
      if (negated) return false;
      matched = true;
    }
  }
  return matched;
}

function fingerprint(blob: Buffer): string {
  return `SHA256:${crypto.createHash('sha256').update(blob).digest('base64').replace(/=+$/, '')}`;
}

/** Output beyond this per stream is dropped: Slurm's answers are small, a runaway one is not kept. */
const MAX_OUTPUT = 16 * 1024 * 1024;

export interface RunOptions {
  /** Written to the command's stdin, which is then closed. */
  stdin?: string;
  timeoutMs?: number;
}

export class SshControl {
  private constructor(
    private readonly client: Client,
    private readonly where: string,
    private readonly defaultTimeoutMs: number,
  ) {}

  /** Logs in; refuses a host whose key is not in `knownHostsFile` for this host and port. */
  static connect(target: SshTarget, opts: { timeoutMs: number }): Promise<SshControl> {
    const where = `${target.user}@${target.host}:${target.port}`;
    let known: ReturnType<typeof knownHostKeys>;
    let privateKey: Buffer;
    try {
      known = knownHostKeys(fs.readFileSync(target.knownHostsFile, 'utf8'), target.host, target.port);
      privateKey = fs.readFileSync(target.keyFile);
    } catch (err) {
      return Promise.reject(new SshError(`ssh to ${where}: cannot read ${(err as NodeJS.ErrnoException).path ?? 'the key files'}`, 'ssh_target_invalid', err));
    }
    return new Promise((resolve, reject) => {
      const client = new Client();
      let offered: Buffer | undefined;
      let ready = false;
      client.once('ready', () => {
        ready = true;
        resolve(new SshControl(client, where, opts.timeoutMs));
      });
      // Kept for the connection's life: an error after login (a dropped link) must not be an
      // unhandled 'error' event; the commands in flight then end without a status and say so.
      client.on('error', (err) => {
        client.end();
        if (ready) return;
        if (offered) {
          const why = known.revoked.some((k) => k.equals(offered as Buffer)) ? 'is revoked in' : 'does not match';
          reject(new SshError(`ssh to ${where} refused: the host key ${fingerprint(offered)} ${why} ${target.knownHostsFile}`, 'ssh_host_key', err));
        } else if ((err as { level?: string }).level === 'client-timeout') {
          reject(new SshError(`ssh to ${where} timed out after ${opts.timeoutMs} ms`, 'ssh_timeout', err));
        } else {
          reject(new SshError(`ssh to ${where} failed: ${err.message}`, 'ssh_failed', err));
        }
      });
      client.once('close', () => {
        if (!ready) reject(new SshError(`ssh to ${where}: the connection closed before login`, 'ssh_failed'));
      });
      client.connect({
        host: target.host,
        port: target.port,
        username: target.user,
        privateKey,
        readyTimeout: opts.timeoutMs,
        keepaliveInterval: 15_000,
        keepaliveCountMax: 3,
        tryKeyboard: false,
        hostVerifier: (key: Buffer) => {
          const ok = known.accepted.some((k) => k.equals(key)) && !known.revoked.some((k) => k.equals(key));
          if (!ok) offered = key;
          return ok;
        },
      });
    });
  }

  /** Runs `argv`; the remote exit status is returned, not thrown. */
  run(argv: readonly string[], opts: RunOptions = {}): Promise<ExecResult> {
    const timeoutMs = opts.timeoutMs ?? this.defaultTimeoutMs;
    return new Promise((resolve, reject) => {
      this.client.exec(remoteCommand(argv), (err, stream) => {
        if (err) return reject(new SshError(`ssh to ${this.where}: ${err.message}`, 'ssh_failed', err));
        const out = { stdout: '', stderr: '' };
        let code: number | null = null;
        let signal: string | undefined;
        const timer = setTimeout(() => {
          stream.close();
          reject(new SshError(`${argv[0] ?? 'command'} on ${this.where} did not answer within ${timeoutMs} ms`, 'ssh_timeout'));
        }, timeoutMs);
        stream.setEncoding('utf8');
        stream.stderr.setEncoding('utf8');
        stream.on('data', (chunk: string) => {
          if (out.stdout.length < MAX_OUTPUT) out.stdout += chunk;
        });
        stream.stderr.on('data', (chunk: string) => {
          if (out.stderr.length < MAX_OUTPUT) out.stderr += chunk;
        });
        stream.on('exit', (c: number | null, s?: string) => {
          code = c;
          signal = s;
        });
        stream.on('close', () => {
          clearTimeout(timer);
          if (code === null) reject(new SshError(`${argv[0] ?? 'command'} on ${this.where} ended without a status${signal ? ` (signal ${signal})` : ''}`, 'ssh_failed'));
          else resolve({ code, ...out });
        });
        stream.end(opts.stdin ?? '');
      });
    });
  }

  close(): void {
    this.client.end();
  }
}

/** Connects, runs `fn`, and always closes. */
export async function withControl<T>(target: SshTarget, timeoutMs: number, fn: (control: SshControl) => Promise<T>): Promise<T> {
  const control = await SshControl.connect(target, { timeoutMs });
  try {
    return await fn(control);
  } finally {
    control.close();
  }
}
