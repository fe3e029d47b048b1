import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import yaml from 'js-yaml';
import { createLogger } from '@cloudlet/core';
import { tempDir } from '@cloudlet/core/testing';
import { createLauncherService, type LauncherService } from './app';
import { runCli } from './cli';
import { launcherSection } from './config';
import { makeUsermap } from './launcher-behaviour';

const me = os.userInfo();
let dir: string;
let service: LauncherService;
let url: string;
let token: string;
let configFile: string;
const server = "require('net').createServer((s) => s.end()).listen(Number(process.env.CLOUDLET_SESSION_PORT), '127.0.0.1'); console.log('hello from the session')";

beforeEach(async () => {
  dir = tempDir('cloudlet-launcher-app-');
  fs.mkdirSync(path.join(dir, 'projects', me.username), { recursive: true });
  const launcher = {
    backend: 'process',
    instance: 'apptest',
    projects_root: path.join(dir, 'projects'),
    database_file: path.join(dir, 'sessions.sqlite'),
    state_dir: path.join(dir, 'state'),
    token_file: path.join(dir, 'token'),
    listen_port: 0,
    apps: [
      { id: 'serve', command: [process.execPath, '-e', server] },
      { id: 'limited', command: ['/bin/true'], limits: { memory_mb: 64 } },
    ],
  };
  configFile = path.join(dir, 'cloudlet.yml');
  const config = launcherSection.parse(launcher);
  service = createLauncherService({ config, log: createLogger({ name: 't', level: 'silent' }), usermap: () => makeUsermap({ username: me.username, uid: me.uid, gid: me.gid }), instruments: () => [] });
  url = (await service.start()).url;
  token = fs.readFileSync(path.join(dir, 'token'), 'utf8').trim();
  launcher.listen_port = Number(new URL(url).port);
  fs.writeFileSync(configFile, yaml.dump({ launcher }));
});

afterEach(async () => {
  for (const s of service.launcher.list()) if (s.state === 'running') await service.launcher.stop(s.id);
  await service.stop();
  fs.rmSync(dir, { recursive: true, force: true });
});

test('the API refuses a missing or wrong bearer token, and serves the right one', async () => {
  const body = JSON.stringify({ user: me.username, app: 'serve', session: 'a1' });
  const headers = { 'content-type': 'application/json' };
  expect((await fetch(`${url}/api/sessions`, { method: 'POST', headers, body })).status).toBe(401);
  expect((await fetch(`${url}/api/sessions`, { method: 'POST', headers: { ...headers, authorization: `Bearer ${token}x` }, body })).status).toBe(401);
  expect((await fetch(`${url}/api/sessions`, { method: 'POST', headers: { ...headers, authorization: `Bearer ${token.slice(0, -1)}` }, body })).status).toBe(401);
  expect(service.launcher.list()).toEqual([]);
  const res = await fetch(`${url}/api/sessions`, { method: 'POST', headers: { ...headers, authorization: `Bearer ${token}` }, body });
  expect(res.status).toBe(201);
  const json = (await res.json()) as { session: { state: string }; secret: string };
  expect(json.session.state).toBe('running');
  expect(typeof json.secret).toBe('string');
  expect((await fetch(`${url}/api/sessions/a1/activity`, { method: 'POST', headers: { authorization: `Bearer ${token}` } })).status).toBe(204);
  expect((await fetch(`${url}/healthz`)).status).toBe(200);
});

test('the API reports bad input with a status: unknown user, unknown app, limits the process backend cannot enforce', async () => {
  const post = async (body: unknown): Promise<{ status: number; error: string }> => {
    const res = await fetch(`${url}/api/sessions`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` }, body: JSON.stringify(body) });
    return { status: res.status, error: ((await res.json()) as { error: string }).error };
  };
  expect(await post({ user: 'nobody', app: 'serve' })).toEqual({ status: 404, error: 'unknown_user' });
  expect(await post({ user: me.username, app: 'nope' })).toEqual({ status: 404, error: 'unknown_app' });
  expect(await post({ user: me.username, app: 'limited' })).toEqual({ status: 500, error: 'limits_unenforceable' });
  expect(await post({ user: me.username, app: 'serve', session: '../x' })).toEqual({ status: 400, error: 'bad_request' });
});

test('cloudlet session start|list|logs|stop drives the API; the secret is printed only when asked', async () => {
  const run = async (...args: string[]): Promise<{ code: number; out: string; err: string }> => {
    const out = new PassThrough();
    const err = new PassThrough();
    let o = '';
    let e = '';
    out.on('data', (c: Buffer) => (o += c.toString()));
    err.on('data', (c: Buffer) => (e += c.toString()));
    const code = await runCli(['--config', configFile, ...args], out, err);
    return { code, out: o, err: e };
  };
  const started = await run('session', 'start', '--user', me.username, 'serve', '--session', 'c1');
  expect(started.code).toBe(0);
  expect(JSON.parse(started.out)).toMatchObject({ id: 'c1', state: 'running' });
  expect(started.out).not.toContain('secret');
  const listed = await run('session', 'list');
  expect(listed.out).toMatch(/^c1\t/);
  const logs = await run('session', 'logs', 'c1');
  expect(logs.out).toContain('hello from the session');
  const stopped = await run('session', 'stop', 'c1');
  expect(JSON.parse(stopped.out)).toMatchObject({ stopped: true, session: { state: 'stopped' } });
  const again = await run('session', 'start', '--user', me.username, 'serve', '--session', 'c1');
  expect(again.code).toBe(1);
  expect(again.err).toMatch(/already exists \(HTTP 409\)/);
});
