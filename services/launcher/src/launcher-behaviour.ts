/**
 * The launcher's behaviour, written once and run against each backend (the process backend in
 * launcher.test.ts, real podman in podman.int.test.ts), so `npm start` without podman and
 * production with it keep the same rules.
 */
import fs from 'node:fs';
import path from 'node:path';
import { createLogger } from '@cloudlet/core';
import { tempDir, waitFor } from '@cloudlet/core/testing';
import { UserMap, validateUsermap } from '@cloudlet/usermap';
import { LABEL, type SessionBackend } from './backend';
import { type AppConfig, launcherSection } from './config';
import { Launcher } from './launcher';
import { portAccepts } from './readiness';

export interface BehaviourEnv {
  backend: () => SessionBackend;
  /** The account sessions run as (its project folder is created by the suite, owned by it). */
  user: { username: string; uid: number; gid: number };
  /** `{script}` runs in sh -c, then `{serve}` must exec something listening on CLOUDLET_SESSION_PORT. */
  serveCommand: (before: string) => string[];
  /** Extra app settings the backend needs (image, network). */
  appExtras: Partial<AppConfig>;
  instance: string;
}

export function makeUsermap(user: { username: string; uid: number; gid: number }, extra: { username: string; uid: number }[] = []): UserMap {
  const people = [user, ...extra].map((u) => ({ id: `p-${u.username}`, name: u.username, account: { username: u.username, uid: u.uid, gid: 'gid' in u ? u.gid : u.uid } }));
  const result = validateUsermap({ version: 1, uid_range: { min: 0, max: 4_000_000 }, people });
  if (!result.ok) throw new Error(result.problems.join('\n'));
  return new UserMap(result.doc);
}

/** Writes the session's argv and secret to its project folder, then serves. */
export const RECORD_SCRIPT = 'tr "\\0" " " < /proc/$$/cmdline > "argv-$CLOUDLET_SESSION_ID"; printf %s "$CLOUDLET_SESSION_SECRET" > "secret-$CLOUDLET_SESSION_ID"; id -u > "uid-$CLOUDLET_SESSION_ID";';

export function describeLauncherBehaviour(env: BehaviourEnv): void {
  let dir: string;
  let projects: string;
  const launchers: Launcher[] = [];
  const log = createLogger({ name: 'launcher-test', level: 'silent' });

  const make = (apps: Partial<AppConfig>[], overrides: Record<string, unknown> = {}): Launcher => {
    const config = launcherSection.parse({
      backend: env.backend().kind,
      instance: env.instance,
      projects_root: projects,
      database_file: path.join(dir, 'sessions.sqlite'),
      state_dir: path.join(dir, 'state'),
      token_file: path.join(dir, 'token'),
      cull_interval_ms: 100,
      podman: { relabel: 'none', stop_timeout_s: 1 },
      apps: apps.map((a) => ({ ...env.appExtras, ...a })),
      ...overrides,
    });
    const launcher = new Launcher({ config, backend: env.backend(), usermap: () => makeUsermap(env.user), instruments: () => [], log });
    launchers.push(launcher);
    return launcher;
  };
  const serve = (id = 'serve', extra: Partial<AppConfig> = {}): Partial<AppConfig> => ({ id, command: env.serveCommand(RECORD_SCRIPT), ready_timeout_ms: 20_000, ...extra });
  const ours = async (): Promise<string[]> => (await env.backend().list([env.user.uid])).filter((f) => f.labels[LABEL.launcher] === env.instance).map((f) => f.labels[LABEL.session] ?? '?');

  beforeEach(() => {
    dir = tempDir('cloudlet-launcher-');
    projects = path.join(dir, 'projects');
    fs.mkdirSync(path.join(projects, env.user.username), { recursive: true });
    fs.chownSync(path.join(projects, env.user.username), env.user.uid, env.user.gid);
    fs.chmodSync(dir, 0o755);
  });

  afterEach(async () => {
    for (const l of launchers.splice(0)) {
      if (l.closed) continue;
      for (const s of l.list()) if (s.state === 'running') await l.stop(s.id).catch(() => undefined);
      await l.close().catch(() => undefined);
    }
    for (const f of await env.backend().list([env.user.uid])) {
      if (f.labels[LABEL.launcher] === env.instance) await env.backend().remove({ name: f.name, uid: f.uid });
    }
    fs.rmSync(dir, { recursive: true, force: true });
  });

  test('starts a labelled session that is ready when it returns; the secret is in its env, not its argv', async () => {
    const launcher = make([serve()]);
    const { session, secret } = await launcher.start({ user: env.user.username, app: 'serve', session: 's1' });
    expect(session.state).toBe('running');
    expect(await portAccepts(session.host as string, session.port as number)).toBe(true);
    expect(await ours()).toEqual(['s1']);
    const found = (await env.backend().list([env.user.uid])).find((f) => f.labels[LABEL.session] === 's1');
    expect(found?.labels).toMatchObject({ [LABEL.owner]: `p-${env.user.username}`, [LABEL.app]: 'serve', [LABEL.session]: 's1' });
    const project = path.join(projects, env.user.username);
    expect(fs.readFileSync(path.join(project, 'secret-s1'), 'utf8')).toBe(secret);
    expect(secret.length).toBeGreaterThanOrEqual(40);
    expect(fs.readFileSync(path.join(project, 'argv-s1'), 'utf8')).not.toContain(secret);
    expect(launcher.entry('s1')).toMatchObject({ owner: `p-${env.user.username}`, entry: { kind: env.backend().kind } });
    expect(await launcher.stop('s1')).toBe(true);
    expect(launcher.entry('s1')).toBeUndefined();
    expect(await ours()).toEqual([]);
    expect(launcher.get('s1')?.state).toBe('stopped');
  });

  test('a user not in the usermap is refused before the backend is asked', async () => {
    const launcher = make([serve()]);
    await expect(launcher.start({ user: 'nobody-here', app: 'serve' })).rejects.toMatchObject({ code: 'unknown_user' });
    expect(launcher.list()).toEqual([]);
    expect(await ours()).toEqual([]);
  });

  test('a session that never becomes ready is stopped and removed, and the error says so', async () => {
    const launcher = make([{ id: 'mute', command: ['/bin/sh', '-c', 'exec sleep 300'], ready_timeout_ms: 1500 }]);
    const started = Date.now();
    const err = await launcher.start({ user: env.user.username, app: 'mute', session: 'mute1' }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'session_not_ready' });
    expect((err as Error).message).toMatch(/stopped and removed/);
    expect(Date.now() - started).toBeLessThan(15_000);
    expect(launcher.get('mute1')?.state).toBe('failed');
    expect(await ours()).toEqual([]);
  });

  test('a session stopped while it starts ends the start, and nothing is left behind', async () => {
    const launcher = make([{ id: 'mute', command: ['/bin/sh', '-c', 'exec sleep 300'], ready_timeout_ms: 30_000 }]);
    const starting = launcher.start({ user: env.user.username, app: 'mute', session: 'abort1' }).catch((e: unknown) => e);
    await waitFor(async () => (await ours()).includes('abort1'), 20_000, 'the session to be launched');
    expect(await launcher.stop('abort1')).toBe(true);
    expect(await starting).toMatchObject({ code: 'start_aborted' });
    expect(launcher.get('abort1')?.state).toBe('failed');
    expect(await ours()).toEqual([]);
  });

  test('a session that exits while starting fails at once with its exit code', async () => {
    const launcher = make([{ id: 'crash', command: ['/bin/sh', '-c', 'exit 3'], ready_timeout_ms: 20_000 }]);
    const err = await launcher.start({ user: env.user.username, app: 'crash', session: 'crash1' }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'session_exited' });
    expect((err as Error).message).toMatch(/code 3/);
    expect(await ours()).toEqual([]);
  });

  test('per-user and global caps, and a duplicate session id, are refused without creating anything', async () => {
    const launcher = make([serve()], { max_sessions_per_user: 1, max_sessions_total: 5 });
    await launcher.start({ user: env.user.username, app: 'serve', session: 'cap1' });
    await expect(launcher.start({ user: env.user.username, app: 'serve', session: 'cap2' })).rejects.toMatchObject({ code: 'user_cap', status: 429 });
    await expect(launcher.start({ user: env.user.username, app: 'serve', session: 'cap1' })).rejects.toMatchObject({ code: 'session_exists', status: 409 });
    expect(await ours()).toEqual(['cap1']);
    const full = make([serve()], { max_sessions_per_user: 5, max_sessions_total: 1, database_file: path.join(dir, 'other.sqlite'), instance: `${env.instance}-g` });
    await full.start({ user: env.user.username, app: 'serve', session: 'g1' });
    await expect(full.start({ user: env.user.username, app: 'serve', session: 'g2' })).rejects.toMatchObject({ code: 'global_cap' });
    await full.stop('g1');
  });

  test('an idle session is culled; activity reports keep it alive until they stop', async () => {
    const launcher = make([serve('idle', { idle_timeout_s: 1 })]);
    await launcher.open();
    await launcher.start({ user: env.user.username, app: 'idle', session: 'idle1' });
    const until = Date.now() + 2000;
    while (Date.now() < until) {
      expect(launcher.activity('idle1')).toBe(true);
      await new Promise((r) => setTimeout(r, 200));
    }
    expect(launcher.get('idle1')?.state).toBe('running');
    await waitFor(() => launcher.get('idle1')?.state === 'stopped', 10_000, 'the idle session to be culled');
    expect(launcher.get('idle1')?.reason).toMatch(/idle/);
    expect(await ours()).toEqual([]);
  });

  test('a session past its maximum lifetime is stopped whatever its activity', async () => {
    const launcher = make([serve('short', { max_lifetime_s: 1, idle_timeout_s: 0 })]);
    await launcher.open();
    await launcher.start({ user: env.user.username, app: 'short', session: 'life1' });
    await waitFor(() => (launcher.activity('life1'), launcher.get('life1')?.state === 'stopped'), 10_000, 'the lifetime stop');
    expect(launcher.get('life1')?.reason).toMatch(/maximum lifetime/);
  });

  test('a restarted launcher adopts running sessions, resolves an interrupted start and removes orphans', async () => {
    const first = make([serve()]);
    await first.start({ user: env.user.username, app: 'serve', session: 'keep' });
    // A start cut short: the intent row and a launched session, never marked running.
    const account = first.resolveUser(env.user.username);
    first.store.insertStarting(
      { id: 'cut', owner: account.personId, username: account.username, uid: account.uid, app: 'serve', backend: env.backend().kind, name: `cloudlet-${env.instance}-cut`, host: undefined, port: undefined, createdAt: Date.now(), lastActivity: Date.now() },
      { perUser: 10, total: 10 },
    );
    const app = first.app('serve');
    const plan = (id: string): Parameters<SessionBackend['launch']>[0] => ({
      sessionId: id,
      name: `cloudlet-${env.instance}-${id}`,
      app,
      account,
      command: ['/bin/sh', '-c', 'exec sleep 300'],
      env: {},
      labels: { [LABEL.launcher]: env.instance, [LABEL.owner]: account.personId, [LABEL.app]: 'serve', [LABEL.session]: id },
      mounts: [{ source: path.join(projects, env.user.username), destination: '/project', readOnly: false }],
      projectDir: path.join(projects, env.user.username),
      hostPort: undefined,
    });
    await env.backend().launch(plan('cut'));
    await env.backend().launch(plan('orphan'));
    expect((await ours()).sort()).toEqual(['cut', 'keep', 'orphan']);
    await first.close();

    const second = make([serve()]);
    await second.open();
    expect(second.get('keep')?.state).toBe('running');
    expect(second.get('cut')?.state).toBe('failed');
    expect(second.get('cut')?.reason).toMatch(/restarted/);
    expect(await ours()).toEqual(['keep']);
    await expect(second.start({ user: env.user.username, app: 'serve', session: 'keep' })).rejects.toMatchObject({ code: 'session_exists' });
    expect(await ours()).toEqual(['keep']);
  });
}
