/**
 * Real podman for integration tests (DESIGN.md section 8): its API service on a socket in a
 * temp dir, rootful or as a throwaway user, and a tiny image built from Debian packages.
 *
 * podman 4.3 here needs `default_ulimits = []`, cgroupfs and runc. Rather than edit an
 * operator's /etc/containers/containers.conf, the helper writes its own file in the temp dir
 * and points podman at it with CONTAINERS_CONF, so /etc is never touched.
 *
 * The image: `debootstrap --variant=minbase --include=busybox bookworm` once per machine, kept
 * as a tarball under /var/cache/cloudlet, then `podman import`ed into each store that lacks it.
 */
import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { tempDir, waitFor } from '@cloudlet/core/testing';
import { PodmanClient } from './podman-client';

export const TEST_IMAGE = 'localhost/cloudlet-test-base';
export const IMAGE_CACHE = '/var/cache/cloudlet';
const TARBALL = path.join(IMAGE_CACHE, 'test-base-bookworm.tar');

const CONTAINERS_CONF = `# Written by @cloudlet/launcher's test helper; used through CONTAINERS_CONF only.
[containers]
default_ulimits = []

[engine]
cgroup_manager = "cgroupfs"
runtime = "runc"
`;

export interface TestUser {
  name: string;
  uid: number;
  gid: number;
  home: string;
  remove(): void;
}

export interface PodmanService {
  socket: string;
  client: PodmanClient;
  /** The environment podman CLI calls for this store need (CONTAINERS_CONF, XDG_RUNTIME_DIR). */
  env: NodeJS.ProcessEnv;
  stop(): Promise<void>;
}

/** The Debian mirror apt already uses, so the test reaches what the machine reaches. */
export function debianMirror(): string {
  for (const file of ['/etc/apt/sources.list.d/debian.sources', '/etc/apt/sources.list']) {
    const text = fs.existsSync(file) ? fs.readFileSync(file, 'utf8') : '';
    const match = /^URIs:\s*(\S+\/debian)\s*$/m.exec(text) ?? /^deb\s+(?:\[[^\]]*\]\s+)?(\S+\/debian)\s+bookworm/m.exec(text);
    if (match?.[1]) return match[1];
  }
  return 'http://deb.debian.org/debian';
}

/** The root filesystem tarball; built once per machine (about 25 s with a nearby mirror). */
export function ensureBaseTarball(): string {
  if (fs.existsSync(TARBALL)) return TARBALL;
  fs.mkdirSync(IMAGE_CACHE, { recursive: true });
  const root = fs.mkdtempSync(path.join(IMAGE_CACHE, 'rootfs-'));
  try {
    execFileSync('debootstrap', ['--variant=minbase', '--include=busybox', 'bookworm', root, debianMirror()], { stdio: 'ignore', timeout: 600_000 });
    const tmp = `${TARBALL}.${process.pid}.tmp`;
    execFileSync('tar', ['-C', root, '-cf', tmp, '.'], { stdio: 'ignore' });
    fs.renameSync(tmp, TARBALL);
  } finally {
    fs.rmSync(root, { recursive: true, force: true });
  }
  return TARBALL;
}

function runAs(user: TestUser | undefined, command: string[], env: NodeJS.ProcessEnv): string[] {
  if (!user) return command;
  // setpriv keeps our environment (XDG_RUNTIME_DIR, CONTAINERS_CONF) and sets the user's groups.
  return ['setpriv', `--reuid=${user.uid}`, `--regid=${user.gid}`, '--init-groups', 'env', `HOME=${user.home}`, `USER=${user.name}`, ...Object.entries(env).filter(([k]) => k === 'XDG_RUNTIME_DIR' || k === 'CONTAINERS_CONF').map(([k, v]) => `${k}=${v ?? ''}`), ...command];
}

/** Imports the test image into the store `service` uses, unless it is there already. */
export async function ensureTestImage(service: PodmanService, user?: TestUser): Promise<void> {
  if (await service.client.imageExists(TEST_IMAGE)) return;
  const tarball = ensureBaseTarball();
  const [cmd, ...args] = runAs(user, ['podman', 'import', tarball, TEST_IMAGE], service.env);
  execFileSync(cmd as string, args, { env: service.env, stdio: 'ignore', timeout: 300_000 });
}

/** `podman system service` on a socket of its own; as `user` (rootless) when given. */
export async function startPodmanService(user?: TestUser): Promise<PodmanService> {
  const dir = tempDir('cloudlet-podman-');
  fs.chmodSync(dir, 0o755);
  const conf = path.join(dir, 'containers.conf');
  fs.writeFileSync(conf, CONTAINERS_CONF, { mode: 0o644 });
  let runtimeDir: string | undefined;
  if (user) {
    runtimeDir = `/run/user/${user.uid}`;
    fs.mkdirSync(runtimeDir, { recursive: true, mode: 0o700 });
    fs.chownSync(runtimeDir, user.uid, user.gid);
  }
  const socketDir = runtimeDir ? path.join(runtimeDir, 'podman') : dir;
  fs.mkdirSync(socketDir, { recursive: true });
  if (user) fs.chownSync(socketDir, user.uid, user.gid);
  const socket = path.join(socketDir, 'podman.sock');
  const env: NodeJS.ProcessEnv = { ...process.env, CONTAINERS_CONF: conf, ...(runtimeDir ? { XDG_RUNTIME_DIR: runtimeDir } : {}) };
  const [cmd, ...args] = runAs(user, ['podman', 'system', 'service', '--time=0', `unix://${socket}`], env);
  // Output to a file, not a pipe: conmon and the rootless pause process inherit it and outlive
  // the service, and an open pipe would keep the test process from exiting.
  const logFile = path.join(dir, 'service.log');
  const logFd = fs.openSync(logFile, 'w');
  const child = spawn(cmd as string, args, { env, stdio: ['ignore', logFd, logFd], detached: true });
  fs.closeSync(logFd);
  child.unref();
  const stderr = (): string => fs.readFileSync(logFile, 'utf8');
  const client = new PodmanClient({ socketPath: socket, timeoutMs: 5000 });
  await waitFor(
    async () => {
      if (child.exitCode !== null) throw new Error(`podman system service exited (${child.exitCode}): ${stderr()}`);
      return client.ping().then(
        () => true,
        () => false,
      );
    },
    30_000,
    `podman's API on ${socket}`,
  );
  return {
    socket,
    client,
    env,
    async stop() {
      if (child.exitCode === null) {
        const exited = new Promise((r) => child.once('exit', r));
        process.kill(-(child.pid as number), 'SIGTERM');
        let timer: NodeJS.Timeout | undefined;
        await Promise.race([exited, new Promise((r) => (timer = setTimeout(r, 10_000)))]);
        clearTimeout(timer);
        if (child.exitCode === null) process.kill(-(child.pid as number), 'SIGKILL');
      }
      fs.rmSync(dir, { recursive: true, force: true });
      if (runtimeDir) fs.rmSync(runtimeDir, { recursive: true, force: true });
    },
  };
}

/**
 * A throwaway local account (useradd), optionally with subordinate id ranges for rootless
 * podman. `remove()` deletes it, its home and (with userdel) its subuid/subgid entries.
 */
export function createTestUser(name: string, options: { subIds?: { start: number; count: number } } = {}): TestUser {
  execFileSync('useradd', ['--create-home', '--shell', '/bin/sh', '--user-group', name], { stdio: 'ignore' });
  const [, , uid, gid, , home] = execFileSync('getent', ['passwd', name], { encoding: 'utf8' }).trim().split(':');
  // useradd hands out subordinate ranges on its own when /etc/subuid exists; the test decides.
  dropSubIds(name);
  if (options.subIds) {
    const range = `${options.subIds.start}-${options.subIds.start + options.subIds.count - 1}`;
    execFileSync('usermod', ['--add-subuids', range, '--add-subgids', range, name], { stdio: 'ignore' });
  }
  return {
    name,
    uid: Number(uid),
    gid: Number(gid),
    home: home as string,
    remove() {
      // Rootless podman leaves its pause process behind (it holds the user namespace), and
      // userdel refuses a user with processes: end them, by pid, all of them ours to end.
      killProcessesOf(Number(uid));
      execFileSync('userdel', ['--remove', name], { stdio: 'ignore' });
      fs.rmSync(home as string, { recursive: true, force: true });
      dropSubIds(name);
    },
  };
}

function dropSubIds(name: string): void {
  for (const file of ['/etc/subuid', '/etc/subgid']) {
    if (!fs.existsSync(file)) continue;
    const text = fs.readFileSync(file, 'utf8');
    const kept = text.split('\n').filter((l) => !l.startsWith(`${name}:`)).join('\n');
    if (kept !== text) fs.writeFileSync(file, kept);
  }
}

function killProcessesOf(uid: number): void {
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const status = fs.readFileSync(`/proc/${entry}/status`, 'utf8');
      const real = /^Uid:\s+(\d+)/m.exec(status)?.[1];
      if (Number(real) === uid) process.kill(Number(entry), 'SIGKILL');
    } catch {
      // gone already
    }
  }
}
