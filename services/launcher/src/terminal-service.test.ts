/**
 * The launcher's terminal route and listener on the process backend: a ticket only for the
 * session's owner, the shell starting in the session's folder, activity reported while attached,
 * and the terminal closed when the session is stopped. (The podman target is exercised end to
 * end by the portal's Chromium test and terminal.e2e.test.ts.)
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { WebSocket } from 'ws';
import { createLogger } from '@cloudlet/core';
import { tempDir, waitFor } from '@cloudlet/core/testing';
import { createLauncherService, type LauncherService } from './app';
import { launcherSection } from './config';
import { makeUsermap } from './launcher-behaviour';
import { TERMINAL_PROTOCOL } from './terminal';

jest.setTimeout(30_000);

const me = os.userInfo();
const ORIGIN = 'http://portal.test:8080';
let dir: string;
let service: LauncherService;
let api: string;
let token: string;

beforeEach(async () => {
  dir = tempDir('cloudlet-launcher-terminal-');
  const config = launcherSection.parse({
    backend: 'process',
    instance: 'termtest',
    // Not created in advance: the process backend makes the folder on first use.
    projects_root: path.join(dir, 'projects'),
    database_file: path.join(dir, 'sessions.sqlite'),
    state_dir: path.join(dir, 'state'),
    token_file: path.join(dir, 'token'),
    listen_port: 0,
    apps: [{ id: 'shell', title: 'A shell', command: ['sleep', '600'], readiness: { type: 'running' }, idle_timeout_s: 60 }],
    terminal: { listen_port: 0, allowed_origins: [ORIGIN], shell: ['sh'], activity_interval_ms: 100 },
  });
  const usermap = makeUsermap({ username: me.username, uid: me.uid, gid: me.gid }, [{ username: 'someone-else', uid: me.uid + 1 }]);
  service = createLauncherService({ config, log: createLogger({ name: 't', level: 'silent' }), usermap: () => usermap, instruments: () => [] });
  api = (await service.start()).url;
  token = fs.readFileSync(path.join(dir, 'token'), 'utf8').trim();
});

afterEach(async () => {
  for (const s of service.launcher.list()) if (s.state === 'running') await service.launcher.stop(s.id);
  await service.stop();
  fs.rmSync(dir, { recursive: true, force: true });
});

const call = (method: string, p: string, body?: unknown): Promise<Response> =>
  fetch(`${api}${p}`, { method, headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, ...(body === undefined ? {} : { body: JSON.stringify(body) }) });

function connect(url: string, ticket: string, origin = ORIGIN): Promise<{ status: number; ws?: WebSocket }> {
  return new Promise((resolve) => {
    const ws = new WebSocket(url, [TERMINAL_PROTOCOL, `ticket.${ticket}`], { origin });
    ws.on('unexpected-response', (_req, res) => resolve({ status: res.statusCode ?? 0 }));
    ws.on('open', () => resolve({ status: 101, ws }));
    ws.on('error', () => resolve({ status: -1 }));
  });
}

test("a ticket only for the session's owner; the shell runs in the session's folder; stopping the session closes it", async () => {
  expect((await call('POST', '/api/sessions', { user: me.username, app: 'shell', session: 't1' })).status).toBe(201);
  const apps = (await (await call('GET', '/api/apps')).json()) as { id: string; title: string }[];
  expect(apps).toEqual([expect.objectContaining({ id: 'shell', title: 'A shell' })]);

  // Someone else, an unknown session and a missing user all look the same from outside.
  const other = await call('POST', '/api/sessions/t1/terminal', { user: 'someone-else' });
  expect(other.status).toBe(404);
  expect((await call('POST', '/api/sessions/nope/terminal', { user: me.username })).status).toBe(404);
  expect((await call('POST', '/api/sessions/t1/terminal', {})).status).toBe(400);
  expect((await call('GET', '/api/sessions/t1?user=someone-else')).status).toBe(404);
  expect((await call('DELETE', '/api/sessions/t1?user=someone-else')).status).toBe(404);
  expect(service.launcher.get('t1')?.state).toBe('running');
  expect((await fetch(`${api}/api/sessions/t1/terminal`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ user: me.username }) })).status).toBe(401);

  const res = await call('POST', '/api/sessions/t1/terminal', { user: me.username });
  expect(res.status).toBe(200);
  const { ticket, ws_url: wsUrl } = (await res.json()) as { ticket: string; ws_url: string };
  expect(wsUrl).toMatch(/^ws:\/\/127\.0\.0\.1:\d+\/terminal\/t1$/);
  // The listener checks the Origin before the ticket is spent.
  expect((await connect(wsUrl, ticket, 'http://evil.example')).status).toBe(403);
  const before = service.launcher.get('t1')?.lastActivity ?? 0;
  const { status, ws } = await connect(wsUrl, ticket);
  expect(status).toBe(101);
  let output = '';
  ws?.on('message', (d: Buffer) => (output += d.toString()));
  const closed = new Promise<number>((resolve) => ws?.on('close', (code) => resolve(code)));
  ws?.send(JSON.stringify({ type: 'input', data: 'pwd\r' }));
  const folder = fs.realpathSync(path.join(dir, 'projects', me.username));
  await waitFor(() => output.includes(folder), 10_000, `pwd to print ${folder}`);
  await waitFor(() => (service.launcher.get('t1')?.lastActivity ?? 0) > before + 150, 5_000, 'activity reported while attached');

  expect((await call('DELETE', '/api/sessions/t1?user=' + encodeURIComponent(me.username))).status).toBe(200);
  expect(await closed).toBe(4000);
  expect(service.terminals?.server.open).toBe(0);
  // An ended session gets no more tickets.
  expect((await call('POST', '/api/sessions/t1/terminal', { user: me.username })).status).toBe(410);
});
