/**
 * The launcher on real rootful podman (needs root): the shared behaviour suite, then what only
 * containers give: the user's uid inside, file ownership on the host, one folder visible,
 * memory limits enforced, and a launcher killed in the middle of a start.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import yaml from 'js-yaml';
import { createLogger } from '@cloudlet/core';
import { startProcess, tempDir, waitFor } from '@cloudlet/core/testing';
import { LABEL } from './backend';
import { launcherSection } from './config';
import { Launcher } from './launcher';
import { describeLauncherBehaviour, makeUsermap } from './launcher-behaviour';
import { PodmanBackend } from './podman-backend';
import { PodmanClient } from './podman-client';
import { createTestUser, ensureTestImage, type PodmanService, startPodmanService, TEST_IMAGE, type TestUser } from './testing-podman';

jest.setTimeout(120_000);

let service: PodmanService;
let user: TestUser;
let other: TestUser;
const instance = `t${randomBytes(3).toString('hex')}`;
const serveCommand = (before: string): string[] => ['/bin/sh', '-c', `${before} exec busybox httpd -f -p 127.0.0.1:$CLOUDLET_SESSION_PORT`, 'serve'];

beforeAll(async () => {
  const tag = randomBytes(3).toString('hex');
  user = createTestUser(`cl-a${tag}`);
  other = createTestUser(`cl-b${tag}`);
  service = await startPodmanService();
  await ensureTestImage(service);
});

afterAll(async () => {
  await service?.stop();
  user?.remove();
  other?.remove();
});

const backend = (): PodmanBackend => new PodmanBackend({ config: { mode: 'rootful', socket: service.socket, rootless_socket: '/nonexistent/{uid}', stop_timeout_s: 1, relabel: 'none' }, instance });

describe('launcher on rootful podman: shared behaviour', () => {
  describeLauncherBehaviour({
    backend,
    get user() {
      return { username: user.name, uid: user.uid, gid: user.gid };
    },
    serveCommand,
    appExtras: { image: TEST_IMAGE, network: 'host' },
    instance,
  });
});

describe('launcher on rootful podman: isolation and limits', () => {
  let dir: string;
  let launcher: Launcher;

  beforeEach(() => {
    dir = tempDir('cloudlet-podman-launcher-');
    fs.chmodSync(dir, 0o755);
    for (const u of [user, other]) {
      fs.mkdirSync(path.join(dir, 'projects', u.name), { recursive: true });
      fs.chownSync(path.join(dir, 'projects', u.name), u.uid, u.gid);
    }
    fs.writeFileSync(path.join(dir, 'projects', other.name, 'other-secret.txt'), 'not for you');
    const config = launcherSection.parse({
      backend: 'podman',
      instance,
      projects_root: path.join(dir, 'projects'),
      database_file: path.join(dir, 'sessions.sqlite'),
      cull_interval_ms: 200,
      apps: [
        {
          id: 'probe',
          image: TEST_IMAGE,
          network: 'none',
          readiness: { type: 'running' },
          command: ['/bin/sh', '-c', 'id -u > uid; id -g > gid; echo mine > mine.txt; find / \\( -path /proc -o -path /sys \\) -prune -o -name other-secret.txt -print > found 2>/dev/null; exec sleep 300'],
        },
        // Holds at most 200 MB (tail -c keeps the last N bytes): without the limit it would run on, not eat the host.
        { id: 'hog', image: TEST_IMAGE, network: 'none', readiness: { type: 'running' }, limits: { memory_mb: 64 }, command: ['/bin/sh', '-c', 'sleep 1; cat /dev/zero | tail -c 200000000'] },
        { id: 'ghost', image: 'localhost/cloudlet-no-such-image', network: 'none', readiness: { type: 'running' }, command: ['/bin/true'] },
      ],
    });
    const users = makeUsermap({ username: user.name, uid: user.uid, gid: user.gid }, [{ username: other.name, uid: other.uid }]);
    launcher = new Launcher({ config, backend: backend(), usermap: () => users, instruments: () => [], log: createLogger({ name: 't', level: 'silent' }) });
  });

  afterEach(async () => {
    for (const s of launcher.list()) if (s.state === 'running') await launcher.stop(s.id);
    await launcher.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  test("the user's uid inside; files in the project folder are the user's on the host; no other folder is visible", async () => {
    await launcher.start({ user: user.name, app: 'probe', session: 'probe1' });
    const project = path.join(dir, 'projects', user.name);
    await waitFor(() => fs.existsSync(path.join(project, 'found')) && fs.existsSync(path.join(project, 'mine.txt')), 20_000, 'the probe to write');
    expect(fs.readFileSync(path.join(project, 'uid'), 'utf8').trim()).toBe(String(user.uid));
    expect(fs.readFileSync(path.join(project, 'gid'), 'utf8').trim()).toBe(String(user.gid));
    const stat = fs.statSync(path.join(project, 'mine.txt'));
    expect([stat.uid, stat.gid]).toEqual([user.uid, user.gid]);
    await waitFor(() => fs.readFileSync(path.join(project, 'found'), 'utf8') !== '' || launcher.get('probe1')?.state === 'running', 5000);
    expect(fs.readFileSync(path.join(project, 'found'), 'utf8')).toBe('');
    const inspected = await service.client.inspect(`cloudlet-${instance}-probe1`);
    expect(inspected?.mounts.map((m) => [m.source, m.destination, m.readOnly])).toEqual([[project, '/project', false]]);
    expect(inspected?.user).toBe(`${user.uid}:${user.gid}`);
    // What a terminal would run: podman's remote client against the engine the launcher names.
    const entry = launcher.entry('probe1')?.entry;
    if (entry?.kind !== 'podman') throw new Error('expected a podman entry');
    const inside = execFileSync('podman', ['--url', entry.engineUrl, 'exec', entry.container, 'sh', '-c', 'id -u; pwd'], { encoding: 'utf8' });
    expect(inside.split('\n').slice(0, 2)).toEqual([String(user.uid), '/project']);
  });

  test('a process exceeding the memory limit is killed, and the session ends saying why', async () => {
    await launcher.open();
    await launcher.start({ user: user.name, app: 'hog', session: 'hog1' });
    await waitFor(() => launcher.get('hog1')?.state === 'stopped', 30_000, 'the hog to be killed');
    expect(launcher.get('hog1')?.reason).toMatch(/memory limit/);
    expect(await service.client.inspect(`cloudlet-${instance}-hog1`)).toBeUndefined();
  });

  test('an image that does not exist is refused before a container is created', async () => {
    await expect(launcher.start({ user: user.name, app: 'ghost', session: 'ghost1' })).rejects.toMatchObject({ code: 'image_missing' });
    expect(launcher.get('ghost1')).toBeUndefined();
  });

  test("podman's socket down: a clear error naming the socket and what to start", async () => {
    const down = new PodmanClient({ socketPath: path.join(dir, 'no-podman.sock') });
    const err = await down.ping().catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'podman_unavailable', status: 503 });
    expect((err as Error).message).toContain(`podman's API socket at ${path.join(dir, 'no-podman.sock')} is not answering`);
    expect((err as Error).message).toContain('podman.socket');
    const users = makeUsermap({ username: user.name, uid: user.uid, gid: user.gid });
    const config = launcherSection.parse({ backend: 'podman', instance, projects_root: path.join(dir, 'projects'), database_file: path.join(dir, 'down.sqlite'), apps: [{ id: 'probe', image: TEST_IMAGE, readiness: { type: 'running' }, command: ['/bin/true'] }] });
    const downBackend = new PodmanBackend({ config: { ...config.podman, socket: path.join(dir, 'no-podman.sock') }, instance });
    const downLauncher = new Launcher({ config, backend: downBackend, usermap: () => users, instruments: () => [], log: createLogger({ name: 't', level: 'silent' }) });
    await expect(downLauncher.start({ user: user.name, app: 'probe', session: 'down1' })).rejects.toMatchObject({ code: 'podman_unavailable' });
    expect(downLauncher.list()).toEqual([]);
    await downLauncher.close();
  });
});

describe('a launcher killed in the middle of a start', () => {
  test('restarts with no orphan and no duplicate', async () => {
    const dir = tempDir('cloudlet-launcher-kill-');
    fs.chmodSync(dir, 0o755);
    const projects = path.join(dir, 'projects');
    fs.mkdirSync(path.join(projects, user.name), { recursive: true });
    fs.chownSync(path.join(projects, user.name), user.uid, user.gid);
    fs.writeFileSync(path.join(dir, 'usermap.yml'), yaml.dump(makeUsermap({ username: user.name, uid: user.uid, gid: user.gid }).doc));
    fs.writeFileSync(path.join(dir, 'instruments.yml'), 'version: 1\ninstruments: []\n');
    const socket = path.join(dir, 'launcher.sock');
    const config = {
      site: { log_level: 'info' },
      usermap: { file: path.join(dir, 'usermap.yml'), index_file: path.join(dir, 'index.tsv'), enrollments_file: path.join(dir, 'enroll.json') },
      instruments: { file: path.join(dir, 'instruments.yml') },
      launcher: {
        backend: 'podman',
        instance: `${instance}-k`,
        podman: { socket: service.socket, stop_timeout_s: 1, relabel: 'none' },
        projects_root: projects,
        database_file: path.join(dir, 'sessions.sqlite'),
        token_file: path.join(dir, 'token'),
        listen_socket: socket,
        apps: [
          // Listens only after a long pause: the start is sure to be in flight when the launcher dies.
          { id: 'slow', image: TEST_IMAGE, network: 'host', ready_timeout_ms: 60_000, command: ['/bin/sh', '-c', 'sleep 120; exec busybox httpd -f -p 127.0.0.1:$CLOUDLET_SESSION_PORT'] },
        ],
      },
    };
    fs.writeFileSync(path.join(dir, 'cloudlet.yml'), yaml.dump(config));
    const main = path.join(__dirname, 'main.js');
    const run = (): ReturnType<typeof startProcess> => startProcess(process.execPath, [main, 'serve', '--config', path.join(dir, 'cloudlet.yml')]);
    const labels = { [LABEL.launcher]: `${instance}-k` };
    const first = run();
    let second: ReturnType<typeof startProcess> | undefined;
    try {
      await first.waitForLog((e) => e.msg === 'launcher ready');
      const token = fs.readFileSync(path.join(dir, 'token'), 'utf8').trim();
      const request = (method: string, urlPath: string, body?: unknown): Promise<{ status: number; body: string }> =>
        new Promise((resolve, reject) => {
          const req = http.request({ socketPath: socket, method, path: urlPath, headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' } }, (res) => {
            let text = '';
            res.on('data', (c: Buffer) => (text += c.toString()));
            res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
          });
          req.on('error', reject);
          req.end(body === undefined ? undefined : JSON.stringify(body));
        });
      void request('POST', '/api/sessions', { user: user.name, app: 'slow', session: 'k1' }).catch(() => undefined);
      await waitFor(async () => (await service.client.list(labels)).some((c) => c.state === 'running'), 30_000, 'the container to be running');
      await first.stop('SIGKILL');
      expect((await service.client.list(labels)).length).toBe(1);

      second = run();
      await second.waitForLog((e) => e.msg === 'launcher ready');
      expect(second.lines.some((l) => l.includes('interrupted start resolved'))).toBe(true);
      expect(await service.client.list(labels)).toEqual([]);
      const k1 = await request('GET', '/api/sessions/k1');
      expect(JSON.parse(k1.body)).toMatchObject({ state: 'failed', reason: expect.stringMatching(/restarted/) as unknown });
      const again = await request('POST', '/api/sessions', { user: user.name, app: 'slow', session: 'k1' });
      expect(again.status).toBe(409);
      expect(await service.client.list(labels)).toEqual([]);
      const unauthorized = await new Promise<number>((resolve, reject) => {
        http.get({ socketPath: socket, path: '/api/sessions' }, (res) => resolve(res.statusCode ?? 0)).on('error', reject);
      });
      expect(unauthorized).toBe(401);
    } finally {
      await first.stop('SIGKILL');
      await second?.stop();
      for (const c of await service.client.list(labels)) await service.client.remove(c.id);
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
