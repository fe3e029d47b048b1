import fs from 'node:fs';
import path from 'node:path';
import { tempDir } from '@cloudlet/core/testing';
import { launcherSection } from './config';
import { checkLimitsEnforceable } from './podman-backend';
import { demultiplex, PodmanClient, toSpecGenerator } from './podman-client';

const base = { name: 'c1', image: 'img', command: ['/bin/sh'], mounts: [], network: 'none' as const, labels: { a: 'b' }, env: { X: '1' } };

test('rootful spec: the user uid:gid and numeric groups, mounts with ro/rw and relabel, limits, no capabilities', () => {
  const gen = toSpecGenerator({
    ...base,
    identity: { kind: 'user', uid: 1500, gid: 1600, groups: [20, 30] },
    mounts: [
      { source: '/p/ada', destination: '/project', readOnly: false, relabel: 'z' },
      { source: '/raw/krios', destination: '/data/krios', readOnly: true, relabel: 'Z' },
    ],
    limits: { cpus: 1.5, memoryBytes: 64 * 1024 * 1024, pids: 100 },
  });
  expect(gen).toMatchObject({
    user: '1500:1600',
    groups: ['20', '30'],
    netns: { nsmode: 'none' },
    cap_drop: ['ALL'],
    no_new_privileges: true,
    mounts: [
      { type: 'bind', source: '/p/ada', destination: '/project', options: ['rbind', 'rw', 'z'] },
      { type: 'bind', source: '/raw/krios', destination: '/data/krios', options: ['rbind', 'ro', 'Z'] },
    ],
    resource_limits: { memory: { limit: 67108864, swap: 67108864 }, cpu: { period: 100000, quota: 150000 }, pids: { limit: 100 } },
  });
  expect(gen.userns).toBeUndefined();
});

test('rootless spec: keep-id and no user override; no limits section when none are set', () => {
  const gen = toSpecGenerator({ ...base, identity: { kind: 'keep-id' }, limits: { cpus: 0, memoryBytes: 0, pids: 0 } });
  expect(gen.userns).toEqual({ nsmode: 'keep-id' });
  expect(gen.user).toBeUndefined();
  expect(gen.resource_limits).toBeUndefined();
});

test('log frames are demultiplexed; unframed output passes through', () => {
  const frame = (stream: number, text: string): Buffer => {
    const body = Buffer.from(text);
    const head = Buffer.alloc(8);
    head[0] = stream;
    head.writeUInt32BE(body.length, 4);
    return Buffer.concat([head, body]);
  };
  expect(demultiplex(Buffer.concat([frame(1, 'out\n'), frame(2, 'err\n'), frame(1, '')]))).toBe('out\nerr\n');
  expect(demultiplex(Buffer.from('plain tty output\n'))).toBe('plain tty output\n');
});

test("a socket that is not there gives the operator the socket and what to start", async () => {
  const dir = tempDir('cloudlet-nosock-');
  const socketPath = path.join(dir, 'podman.sock');
  const err = await new PodmanClient({ socketPath }).list({}).catch((e: unknown) => e);
  fs.rmSync(dir, { recursive: true });
  expect(err).toMatchObject({ code: 'podman_unavailable', status: 503 });
  expect((err as Error).message).toBe(`podman's API socket at ${socketPath} is not answering (no such socket): start podman.socket or \`podman system service\``);
});

test('limits the host cannot enforce are refused: rootless on cgroup v1, or a missing controller', () => {
  const [app] = launcherSection.parse({ apps: [{ id: 'a', image: 'i', command: ['x'], limits: { memory_mb: 64, pids: 10 } }] }).apps;
  if (!app) throw new Error('no app');
  expect(() => checkLimitsEnforceable(app, { rootless: true, cgroupVersion: 'v1', cgroupControllers: ['memory', 'pids'], version: '4.3.1' })).toThrow(/rootless podman on cgroup v1/);
  expect(() => checkLimitsEnforceable(app, { rootless: false, cgroupVersion: 'v1', cgroupControllers: ['memory'], version: '4.3.1' })).toThrow(expect.objectContaining({ code: 'limits_unenforceable', message: expect.stringContaining('pids') as string }) as Error);
  expect(() => checkLimitsEnforceable(app, { rootless: false, cgroupVersion: 'v1', cgroupControllers: ['memory', 'pids', 'cpu'], version: '4.3.1' })).not.toThrow();
  expect(() => checkLimitsEnforceable({ ...app, limits: { cpus: 0, memory_mb: 0, pids: 0 } }, { rootless: true, cgroupVersion: 'v1', cgroupControllers: [], version: '4.3.1' })).not.toThrow();
});
