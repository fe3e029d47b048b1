/**
 * A real OpenSSH server for integration tests: `sshd -D -e` on a free loopback port with its own
 * host key, config, pid file and authorized_keys in a temp dir, logging in a remote test user
 * (created here, with a uid unlike the runner's) by a fresh ed25519 client key. Several can run
 * at once; nothing is shared with a system sshd. Needs root and `openssh-server` from
 * scripts/bootstrap.
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { promisify } from 'node:util';
import { freePort, type RunningProcess, startProcess, tempDir, waitFor } from './testing';

const run = promisify(execFile);

export interface SshdOptions {
  /** The remote test user; created with `uid` (or the next free one) unless it exists. */
  user?: string;
  uid?: number;
  /** A private host key to reuse (to restart "the same host"); a fresh one otherwise. */
  hostKeyFile?: string;
}

export interface SshServer {
  port: number;
  host: '127.0.0.1';
  /** `ssh-ed25519 AAAA...` */
  hostKeyPublic: string;
  /** The line a known_hosts file needs to trust this server, and only it. */
  knownHostsLine: string;
  /** The host key's private file, to start another sshd that is the same host. */
  hostKeyFile: string;
  user: string;
  uid: number;
  home: string;
  /** Private key file (mode 600) whose public half is the user's only authorized key. */
  clientKey: string;
  stop(): Promise<void>;
}

const SSHD = '/usr/sbin/sshd';
const DEFAULT_USER = 'cloudlet-remote';
const DEFAULT_UID = 3100;

export async function startSshd(options: SshdOptions = {}): Promise<SshServer> {
  checkPrerequisites();
  const dir = tempDir('cloudlet-sshd-');
  // sshd reads authorized_keys as the logging-in user, so it must reach into this directory.
  fs.chmodSync(dir, 0o755);
  try {
    const account = await ensureUser(options.user ?? DEFAULT_USER, options.uid ?? DEFAULT_UID);
    const hostKeyFile = path.join(dir, 'host_ed25519');
    if (options.hostKeyFile) fs.copyFileSync(options.hostKeyFile, hostKeyFile);
    else await keygen(hostKeyFile);
    fs.chmodSync(hostKeyFile, 0o600);
    const hostKeyPublic = (await run('ssh-keygen', ['-y', '-f', hostKeyFile])).stdout.trim();
    const clientKey = path.join(dir, 'client_ed25519');
    await keygen(clientKey);
    const authorizedKeys = path.join(dir, 'authorized_keys');
    fs.writeFileSync(authorizedKeys, fs.readFileSync(`${clientKey}.pub`), { mode: 0o644 });

    const port = await freePort();
    const config = path.join(dir, 'sshd_config');
    fs.writeFileSync(config, sshdConfig({ dir, port, hostKeyFile, authorizedKeys, user: account.user }));
    // Privilege separation needs this (empty, root-owned) directory; Debian makes it at boot.
    fs.mkdirSync('/run/sshd', { recursive: true, mode: 0o755 });
    const knownHostsLine = `[127.0.0.1]:${port} ${hostKeyPublic}`;
    const knownHosts = path.join(dir, 'known_hosts');
    fs.writeFileSync(knownHosts, `${knownHostsLine}\n`);

    const daemon = startProcess(SSHD, ['-D', '-e', '-f', config]);
    try {
      await waitUntilReady(daemon, port, ['-i', clientKey, '-o', `UserKnownHostsFile=${knownHosts}`, '-l', account.user]);
    } catch (err) {
      await stopDaemon(daemon);
      throw err;
    }
    return {
      port,
      host: '127.0.0.1',
      hostKeyPublic,
      knownHostsLine,
      hostKeyFile,
      ...account,
      clientKey,
      async stop() {
        await stopDaemon(daemon);
        fs.rmSync(dir, { recursive: true, force: true });
      },
    };
  } catch (err) {
    fs.rmSync(dir, { recursive: true, force: true });
    throw err;
  }
}

interface ConfParams {
  dir: string;
  port: number;
  hostKeyFile: string;
  authorizedKeys: string;
  user: string;
}

function sshdConfig(p: ConfParams): string {
  return `${[
    `Port ${p.port}`,
    'ListenAddress 127.0.0.1',
    `HostKey ${p.hostKeyFile}`,
    `PidFile ${path.join(p.dir, 'sshd.pid')}`,
    `AuthorizedKeysFile ${p.authorizedKeys}`,
    `AllowUsers ${p.user}`,
    'PubkeyAuthentication yes',
    'PasswordAuthentication no',
    'KbdInteractiveAuthentication no',
    'UsePAM no',
    // The keys live under /tmp (mode 1777), which StrictModes' walk up the path would refuse.
    'StrictModes no',
    'PermitRootLogin no',
    'X11Forwarding no',
    'AllowTcpForwarding no',
    'LogLevel VERBOSE',
  ].join('\n')}\n`;
}

function checkPrerequisites(): void {
  if (process.getuid?.() !== 0) {
    throw new Error('startSshd needs root: it creates the remote test user and runs sshd, which must start as root');
  }
  for (const file of [SSHD, '/usr/bin/ssh', '/usr/bin/ssh-keygen']) {
    if (!fs.existsSync(file)) throw new Error(`OpenSSH is not installed (missing ${file}): run scripts/bootstrap as root`);
  }
}

async function keygen(file: string): Promise<void> {
  await run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'cloudlet-test', '-f', file]);
}

interface Account {
  user: string;
  uid: number;
  home: string;
}

/** Reuses `user` if it exists; otherwise creates it with `uid`, or the next uid nobody holds. */
async function ensureUser(user: string, uid: number): Promise<Account> {
  let account = lookupUser(user);
  if (!account) {
    const taken = new Set(passwd().map((fields) => Number(fields[2])));
    let free = uid;
    while (taken.has(free) || free === process.getuid?.()) free += 1;
    await run('useradd', ['-m', '-u', String(free), '-U', '-s', '/bin/sh', user]).catch((err: unknown) => {
      // Another test file may have created it a moment ago.
      if (!lookupUser(user)) throw err;
    });
    account = lookupUser(user);
    if (!account) throw new Error(`useradd ${user} did not create the user`);
  }
  if (account.uid === process.getuid?.()) throw new Error(`user ${user} has the test runner's uid ${account.uid}; pick another user`);
  // useradd leaves the password "!" (locked), and without PAM sshd refuses locked accounts even
  // for keys; "*" means "no password" without the lock.
  const shadow = fs.readFileSync('/etc/shadow', 'utf8').split('\n').find((l) => l.startsWith(`${user}:`));
  if (shadow?.split(':')[1]?.startsWith('!') !== false) await run('usermod', ['-p', '*', user]);
  return account;
}

function lookupUser(user: string): Account | undefined {
  const fields = passwd().find((f) => f[0] === user);
  if (!fields || fields[2] === undefined || fields[5] === undefined) return undefined;
  return { user, uid: Number(fields[2]), home: fields[5] };
}

function passwd(): string[][] {
  return fs.readFileSync('/etc/passwd', 'utf8').split('\n').filter(Boolean).map((line) => line.split(':'));
}

async function waitUntilReady(daemon: RunningProcess, port: number, sshArgs: string[]): Promise<void> {
  const alive = (): void => {
    if (daemon.child.exitCode !== null) throw new Error(`sshd exited (${daemon.child.exitCode}):\n${daemon.lines.slice(-20).join('\n')}`);
  };
  await waitFor(async () => {
    alive();
    return portAccepts(port);
  }, 20_000, `sshd on port ${port}`);
  let lastError = '';
  const args = ['-F', '/dev/null', '-o', 'BatchMode=yes', '-o', 'StrictHostKeyChecking=yes', '-o', 'GlobalKnownHostsFile=/dev/null', '-o', 'IdentitiesOnly=yes', '-p', String(port), ...sshArgs, '--', '127.0.0.1', 'true'];
  await waitFor(async () => {
    alive();
    try {
      await run('ssh', args, { timeout: 10_000 });
      return true;
    } catch (err) {
      lastError = (err as { stderr?: string }).stderr ?? String(err);
      return false;
    }
  }, 20_000, `a login through sshd on port ${port}`).catch((err: unknown) => {
    throw new Error(`${(err as Error).message}; ssh said: ${lastError}\nsshd:\n${daemon.lines.slice(-20).join('\n')}`);
  });
}

async function portAccepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

async function stopDaemon(p: RunningProcess): Promise<void> {
  const timer = setTimeout(() => p.child.kill('SIGKILL'), 5_000);
  await p.stop('SIGTERM');
  clearTimeout(timer);
}
