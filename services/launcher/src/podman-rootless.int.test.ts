/**
 * The launcher on rootless podman (needs root to set up): a throwaway user with subordinate
 * ids runs its own `podman system service`; the launcher reaches it through the per-user
 * socket template. --userns=keep-id must make the uid inside the user's uid outside.
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { createLogger } from '@cloudlet/core';
import { tempDir, waitFor } from '@cloudlet/core/testing';
import { launcherSection } from './config';
import { Launcher } from './launcher';
import { makeUsermap } from './launcher-behaviour';
import { PodmanBackend } from './podman-backend';
import { createTestUser, ensureTestImage, type PodmanService, startPodmanService, TEST_IMAGE, type TestUser } from './testing-podman';

jest.setTimeout(120_000);

let service: PodmanService | undefined;
let user: TestUser;
let noIds: TestUser;
let dir: string;
let launcher: Launcher;

beforeAll(async () => {
  const tag = randomBytes(3).toString('hex');
  // A range far above the machine's other entries (cloudlet-remote holds 100000-165535).
  user = createTestUser(`cl-r${tag}`, { subIds: { start: 600_000 + (parseInt(tag, 16) % 50) * 65_536, count: 65_536 } });
  noIds = createTestUser(`cl-n${tag}`);
  service = await startPodmanService(user);
  await ensureTestImage(service, user);
  dir = tempDir('cloudlet-rootless-');
  fs.chmodSync(dir, 0o755);
  for (const u of [user, noIds]) {
    fs.mkdirSync(path.join(dir, 'projects', u.name), { recursive: true });
    fs.chownSync(path.join(dir, 'projects', u.name), u.uid, u.gid);
  }
  const config = launcherSection.parse({
    backend: 'podman',
    instance: `r${tag}`,
    podman: { mode: 'rootless', rootless_socket: '/run/user/{uid}/podman/podman.sock', stop_timeout_s: 1, relabel: 'none' },
    projects_root: path.join(dir, 'projects'),
    database_file: path.join(dir, 'sessions.sqlite'),
    apps: [
      { id: 'probe', image: TEST_IMAGE, network: 'none', readiness: { type: 'running' }, command: ['/bin/sh', '-c', 'id -u > uid; echo mine > mine.txt; exec sleep 300'] },
      { id: 'limited', image: TEST_IMAGE, network: 'none', readiness: { type: 'running' }, limits: { memory_mb: 64 }, command: ['/bin/true'] },
      { id: 'bridged', image: TEST_IMAGE, network: 'bridge', port: 8080, command: ['/bin/true'] },
    ],
  });
  const users = makeUsermap({ username: user.name, uid: user.uid, gid: user.gid }, [{ username: noIds.name, uid: noIds.uid }]);
  launcher = new Launcher({ config, backend: new PodmanBackend({ config: config.podman, instance: config.instance }), usermap: () => users, instruments: () => [], log: createLogger({ name: 't', level: 'silent' }) });
});

afterAll(async () => {
  if (launcher) {
    for (const s of launcher.list()) if (s.state === 'running') await launcher.stop(s.id);
    await launcher.close();
  }
  await service?.stop();
  user?.remove();
  noIds?.remove();
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

test("keep-id: the user's uid inside, and files in the project folder are the user's on the host", async () => {
  await launcher.start({ user: user.name, app: 'probe', session: 'rl1' });
  const project = path.join(dir, 'projects', user.name);
  await waitFor(() => fs.existsSync(path.join(project, 'mine.txt')), 20_000, 'the probe to write');
  expect(fs.readFileSync(path.join(project, 'uid'), 'utf8').trim()).toBe(String(user.uid));
  expect(fs.statSync(path.join(project, 'mine.txt')).uid).toBe(user.uid);
  await launcher.stop('rl1');
});

test('a user without subordinate ids is refused before podman is asked', async () => {
  const err = await launcher.start({ user: noIds.name, app: 'probe', session: 'rl2' }).catch((e: unknown) => e);
  expect(err).toMatchObject({ code: 'no_subordinate_ids' });
  expect((err as Error).message).toMatch(/\/etc\/subuid/);
  expect(launcher.get('rl2')).toBeUndefined();
});

test('limits rootless podman cannot enforce here (cgroup v1) are refused, not silently dropped', async () => {
  const info = await service?.client.info();
  if (info?.cgroupVersion !== 'v1') {
    // On cgroup v2 with delegation the limit is enforceable; then the session must simply start.
    await launcher.start({ user: user.name, app: 'limited', session: 'rl3' });
    return;
  }
  await expect(launcher.start({ user: user.name, app: 'limited', session: 'rl3' })).rejects.toMatchObject({ code: 'limits_unenforceable' });
  expect(launcher.get('rl3')).toBeUndefined();
});

test('bridge networking, which rootless podman has no means for here, is refused', async () => {
  await expect(launcher.start({ user: user.name, app: 'bridged', session: 'rl4' })).rejects.toMatchObject({ code: 'unsupported_network' });
});
