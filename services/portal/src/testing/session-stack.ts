/**
 * The portal with the session launcher, as real processes on loopback: the launcher
 * (`services/launcher/dist/main.js serve`) with its API and terminal listener, and the portal
 * with its demo provider. Backend `process` for what podman is not the point of; backend
 * `podman` runs a rootful `podman system service` on a temp socket (its own containers.conf
 * through CONTAINERS_CONF, so /etc/containers is never touched), with ada mapped to a host
 * account the stack creates and removes.
 *
 * The podman and host-account helpers repeat a little of the launcher's testing-podman.ts on
 * purpose: services share only core, so the portal cannot import the launcher's test code.
 */
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { type RunningProcess, startProcess, waitFor } from '@cloudlet/core/testing';
import { REPO_ROOT, testUsermap } from './harness';
import { stackBase, startPortal } from './stack-base';

const LAUNCHER_MAIN = path.join(REPO_ROOT, 'services', 'launcher', 'dist', 'main.js');
export const SESSION_IMAGE = 'localhost/cloudlet-base:bookworm';

export interface HostAccount {
  username: string;
  uid: number;
  gid: number;
}

export interface SessionStack {
  url: string;
  dir: string;
  launcherApi: string;
  launcherToken: string;
  /** The launcher's instance label: every container it made carries `cloudlet.launcher=<instance>`. */
  instance: string;
  /** podman backend: ada's host account; the CLI environment for the stack's podman. */
  ada: HostAccount | undefined;
  podman: ((...args: string[]) => string) | undefined;
  processes: RunningProcess[];
  stop(): Promise<void>;
}

export interface SessionStackOptions {
  backend?: 'process' | 'podman';
  /** false: the portal runs without `portal.launcher`. */
  launcher?: boolean;
}

export async function startSessionStack(options: SessionStackOptions = {}): Promise<SessionStack> {
  const backend = options.backend ?? 'process';
  const base = await stackBase('cloudlet-sessions-');
  const { dir, state, secrets, url, issuer, site, write } = base;
  fs.chmodSync(dir, 0o755);
  const instance = `portal-${randomBytes(3).toString('hex')}`;
  const processes: RunningProcess[] = [];
  const cleanups: (() => Promise<void> | void)[] = [];
  let podmanCli: SessionStack['podman'];
  let ada: HostAccount | undefined;
  const stopAll = async (): Promise<void> => {
    for (const p of processes.reverse()) await p.stop();
    for (const c of cleanups.reverse()) await c();
    fs.rmSync(dir, { recursive: true, force: true });
  };

  try {
    const people = testUsermap(issuer) as { people: { id: string; account: Record<string, unknown> }[] };
    const instruments = write('instruments.yml', { version: 1, instruments: [{ id: 'krios-sim', name: 'Simulated Titan Krios' }] });
    const projects = path.join(dir, 'projects');
    fs.mkdirSync(projects, { mode: 0o755 });

    let podmanSettings: Record<string, unknown> = {};
    let launcherEnv: NodeJS.ProcessEnv = process.env;
    let apps: Record<string, unknown>[] = [{ id: 'shell', title: 'Shell', command: ['sleep', '600'], readiness: { type: 'running' } }];
    if (backend === 'podman') {
      const podman = await startRootfulPodman(dir);
      cleanups.push(() => podman.stop(instance));
      podmanCli = podman.cli;
      launcherEnv = podman.env;
      buildBaseImage(podman.env);
      ada = createHostAccount();
      const account = ada;
      cleanups.push(() => removeHostAccount(account));
      // Ada is the demo identity; her usermap account is the host account made just now.
      for (const p of people.people) if (p.id === 'ada') p.account = { username: account.username, uid: account.uid, gid: account.gid, groups: [] };
      const folder = path.join(projects, account.username);
      fs.mkdirSync(folder, { mode: 0o700 });
      fs.chownSync(folder, account.uid, account.gid);
      podmanSettings = { podman: { mode: 'rootful', socket: podman.socket, relabel: 'none', stop_timeout_s: 1 } };
      apps = [{ id: 'shell', title: 'Shell', image: SESSION_IMAGE, command: ['sleep', 'infinity'], readiness: { type: 'running' }, network: 'none' }];
    }
    const usermap = { file: write('usermap.yml', people), index_file: path.join(state, 'idx.tsv'), enrollments_file: path.join(state, 'enrollments.json'), ood_issuer: issuer };
    const tokenFile = path.join(secrets, 'launcher-api.token');

    const launcher = startProcess(
      process.execPath,
      [
        LAUNCHER_MAIN,
        '--config',
        write('launcher.yml', {
          site,
          usermap,
          instruments: { file: instruments },
          launcher: {
            backend,
            instance,
            ...podmanSettings,
            apps,
            projects_root: projects,
            database_file: path.join(state, 'launcher', 'sessions.sqlite'),
            state_dir: path.join(state, 'launcher'),
            token_file: tokenFile,
            listen_port: 0,
            cull_interval_ms: 500,
            terminal: { listen_port: 0, allowed_origins: [url], shell: ['bash', '--norc', '--noprofile'] },
          },
        }),
        'serve',
      ],
      { env: launcherEnv },
    );
    processes.push(launcher);
    const launcherReady = await launcher.waitForLog((e) => e.msg === 'launcher ready', 30_000);
    const launcherApi = String(launcherReady.url);

    const portal = await startPortal(base, { usermap, instruments, portal: options.launcher === false ? {} : { launcher: { api_url: launcherApi, api_token_file: tokenFile } } });
    processes.push(portal);
    return { url, dir, launcherApi, launcherToken: fs.readFileSync(tokenFile, 'utf8').trim(), instance, ada, podman: podmanCli, processes, stop: stopAll };
  } catch (err) {
    await stopAll();
    throw err;
  }
}

/** podman's API service as root on a socket of its own (DESIGN.md section 8's settings). */
async function startRootfulPodman(dir: string): Promise<{ socket: string; env: NodeJS.ProcessEnv; cli: (...args: string[]) => string; stop(instance: string): Promise<void> }> {
  const conf = path.join(dir, 'containers.conf');
  fs.writeFileSync(conf, '[containers]\ndefault_ulimits = []\n\n[engine]\ncgroup_manager = "cgroupfs"\nruntime = "runc"\n');
  const socket = path.join(dir, 'podman.sock');
  const env = { ...process.env, CONTAINERS_CONF: conf };
  const logFd = fs.openSync(path.join(dir, 'podman-service.log'), 'w');
  // Output to a file: conmon inherits it and may outlive the service; a pipe would hold jest open.
  const child = spawn('podman', ['system', 'service', '--time=0', `unix://${socket}`], { env, stdio: ['ignore', logFd, logFd], detached: true });
  fs.closeSync(logFd);
  child.unref();
  await waitFor(() => ping(socket), 30_000, `podman's API on ${socket}`);
  const cli = (...args: string[]): string => {
    const r = spawnSync('podman', args, { env, encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`podman ${args.join(' ')}: ${r.stderr}`);
    return r.stdout.trim();
  };
  return {
    socket,
    env,
    cli,
    async stop(instance) {
      // Whatever a failed test left running, by the launcher's label, then the service.
      const left = cli('ps', '-aq', '--filter', `label=cloudlet.launcher=${instance}`).split('\n').filter(Boolean);
      if (left.length > 0) cli('rm', '-f', '-t', '0', ...left);
      if (child.exitCode === null) {
        const exited = new Promise((r) => child.once('exit', r));
        process.kill(-(child.pid as number), 'SIGTERM');
        await Promise.race([exited, new Promise((r) => setTimeout(r, 10_000).unref())]);
      }
    },
  };
}

function ping(socketPath: string): Promise<boolean> {
  return new Promise((resolve) => {
    const req = http.get({ socketPath, path: '/v4.0.0/libpod/_ping', timeout: 1000, agent: false }, (res) => {
      res.resume();
      resolve(res.statusCode === 200);
    });
    req.on('error', () => resolve(false));
    req.on('timeout', () => req.destroy());
  });
}

function buildBaseImage(env: NodeJS.ProcessEnv): void {
  const built = spawnSync(path.join(REPO_ROOT, 'scripts', 'build-images'), ['--only', 'base'], { env, encoding: 'utf8' });
  if (built.status !== 0) throw new Error(`scripts/build-images --only base failed: ${built.stderr.slice(-2000)}`);
}

/** A throwaway host account with a uid inside the test usermap's range (20000-29999). */
function createHostAccount(): HostAccount {
  const username = `cl${randomBytes(4).toString('hex')}`;
  const taken = (db: string, key: number): boolean => spawnSync('getent', [db, String(key)]).status === 0;
  let uid = 0;
  for (let tries = 0; tries < 100 && (uid === 0 || taken('passwd', uid) || taken('group', uid)); tries++) uid = 21000 + Math.floor(Math.random() * 8000);
  execFileSync('useradd', ['--uid', String(uid), '--user-group', '--no-create-home', '--shell', '/usr/sbin/nologin', username], { stdio: 'ignore' });
  const [, , u, g] = execFileSync('getent', ['passwd', username], { encoding: 'utf8' }).trim().split(':');
  return { username, uid: Number(u), gid: Number(g) };
}

function removeHostAccount(account: HostAccount): void {
  spawnSync('userdel', [account.username], { stdio: 'ignore' });
}
