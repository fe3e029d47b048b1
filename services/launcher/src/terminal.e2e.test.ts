/**
 * The session terminal end to end: real podman containers running as two different uids, the
 * terminal server entering them with `podman exec -it` under a real pseudo-terminal, and
 * headless Chromium typing `id` into xterm.js. Then every refusal, from a plain WebSocket
 * client that can set any Origin and subprotocol.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import express from 'express';
import { WebSocket } from 'ws';
import { closeServer, createLogger, listen } from '@cloudlet/core';
import { launchChromium } from '@cloudlet/core/browser';
import { tempDir, waitFor } from '@cloudlet/core/testing';
import { podmanTerminal, TERMINAL_PROTOCOL, TerminalServer, type TerminalTarget } from './terminal';
import { terminalAssets, terminalFragment } from './terminal-page';

jest.setTimeout(300_000);

const REPO_ROOT = path.resolve(__dirname, '..', '..', '..');
const ARTIFACTS = path.join(REPO_ROOT, 'test-artifacts');
const IMAGE = 'localhost/cloudlet-base:bookworm';

const conf = path.join(tempDir('terminal-podman-'), 'containers.conf');
fs.writeFileSync(conf, '[containers]\ndefault_ulimits = []\n[engine]\ncgroup_manager = "cgroupfs"\nruntime = "runc"\n');
const podmanEnv = { ...process.env, CONTAINERS_CONF: conf };

function podman(...args: string[]): string {
  const r = spawnSync('podman', args, { env: podmanEnv, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`podman ${args.join(' ')}: ${r.stderr}`);
  return r.stdout.trim();
}

const containers: string[] = [];
const sessions = new Map<string, () => TerminalTarget>();
let server: http.Server;
let origin: string;
let terminals: TerminalServer;

const enter = (container: string, owner: string) => (): TerminalTarget => podmanTerminal({ container, owner, env: { CONTAINERS_CONF: conf }, shell: ['bash', '--norc', '--noprofile'] });

beforeAll(async () => {
  const built = spawnSync(path.join(REPO_ROOT, 'scripts/build-images'), ['--only', 'base'], { env: podmanEnv, encoding: 'utf8' });
  if (built.status !== 0) throw new Error(`scripts/build-images --only base failed: ${built.stderr.slice(-2000)}`);
  for (const [session, owner, uid] of [['s-ada', 'ada', 20001], ['s-ros', 'rosalind', 20002]] as const) {
    const id = podman('run', '-d', '--rm', '--network=none', '--user', `${uid}:${uid}`, '--label', 'cloudlet.test=terminal', IMAGE, 'sleep', '600');
    containers.push(id);
    sessions.set(session, enter(id, owner));
  }

  const app = express();
  app.use('/assets', terminalAssets());
  server = http.createServer(app);
  const address = await listen(server, '127.0.0.1', 0);
  origin = `http://127.0.0.1:${address.port}`;
  terminals = new TerminalServer({ allowedOrigins: [origin], session: (id) => sessions.get(id)?.(), log: createLogger({ name: 'test', level: 'silent' }) });
  terminals.attach(server);
  // A page as the portal would render it for a person, with a ticket for their session.
  app.get('/page/:session/:owner', (req, res) => {
    const { ticket } = terminals.issueTicket(req.params.session, req.params.owner);
    const wsUrl = `ws://127.0.0.1:${address.port}/terminal/${req.params.session}`;
    res.type('html').send(`<!doctype html><html><head><title>terminal</title></head><body>${terminalFragment({ assets: '/assets', wsUrl, ticket })}</body></html>`);
  });
});

afterAll(async () => {
  terminals?.close();
  if (server) await closeServer(server);
  for (const id of containers) spawnSync('podman', ['rm', '-f', '-t', '0', id], { env: podmanEnv });
});

test("a person's browser terminal runs `id` in their own container and shows their uid", async () => {
  const browser = await launchChromium();
  try {
    const page = await browser.newPage({ viewport: { width: 1000, height: 700 } });
    await page.goto(`${origin}/page/s-ada/ada`);
    await page.waitForSelector('#terminal-status[data-state="open"]', { timeout: 30_000 });
    await page.locator('#terminal').click();
    await page.keyboard.type('id');
    await page.keyboard.press('Enter');
    await page.waitForFunction("document.querySelector('.xterm-rows')?.textContent?.includes('uid=20001')", undefined, { timeout: 30_000 });
    const text = await page.locator('.xterm-rows').textContent();
    expect(text).toMatch(/uid=20001\(\S*\) gid=20001/);
    expect(text).not.toMatch(/uid=0\b/);
    fs.mkdirSync(ARTIFACTS, { recursive: true });
    await page.screenshot({ path: path.join(ARTIFACTS, 'session-terminal.png') });

    // Another person's session, with a ticket issued to this person: refused at the upgrade.
    const other = await browser.newPage();
    await other.goto(`${origin}/page/s-ros/ada`);
    await other.waitForSelector('#terminal-status[data-state="closed"]', { timeout: 30_000 });
    expect(terminals.open).toBe(1);
  } finally {
    await browser.close();
  }
});

/** Opens a WebSocket as a client that can set any Origin and subprotocols; resolves with the outcome. */
function attempt(session: string, o: { origin?: string; protocols?: string[] }): Promise<{ status: number; ws?: WebSocket }> {
  return new Promise((resolve) => {
    const ws = new WebSocket(`${origin.replace('http', 'ws')}/terminal/${session}`, o.protocols ?? [], o.origin === undefined ? {} : { origin: o.origin });
    ws.on('unexpected-response', (_req, res) => resolve({ status: res.statusCode ?? 0 }));
    ws.on('open', () => resolve({ status: 101, ws }));
    ws.on('error', () => resolve({ status: -1 }));
  });
}

const withTicket = (ticket: string): string[] => [TERMINAL_PROTOCOL, `ticket.${ticket}`];

test.each([
  ['no ticket', () => ({ origin, protocols: [TERMINAL_PROTOCOL] }), 's-ada', 401],
  ['an unknown ticket', () => ({ origin, protocols: withTicket('x'.repeat(32)) }), 's-ada', 401],
  ['a foreign Origin', () => ({ origin: 'http://evil.example', protocols: withTicket(terminals.issueTicket('s-ada', 'ada').ticket) }), 's-ada', 403],
  ['no Origin at all', () => ({ protocols: withTicket(terminals.issueTicket('s-ada', 'ada').ticket) }), 's-ada', 403],
  ["a ticket for one session used on another person's", () => ({ origin, protocols: withTicket(terminals.issueTicket('s-ada', 'ada').ticket) }), 's-ros', 403],
  ['a ticket whose owner does not own the session', () => ({ origin, protocols: withTicket(terminals.issueTicket('s-ros', 'ada').ticket) }), 's-ros', 403],
  ['a session that has ended', () => ({ origin, protocols: withTicket(terminals.issueTicket('s-gone', 'ada').ticket) }), 's-gone', 410],
])('refuses %s before the upgrade', async (_what, options, session, status) => {
  const outcome = await attempt(session, options());
  outcome.ws?.close();
  expect(outcome.status).toBe(status);
});

test('a ticket works once; the terminal resizes; ending the session closes it and kills the shell', async () => {
  const { ticket } = terminals.issueTicket('s-ros', 'rosalind');
  const first = await attempt('s-ros', { origin, protocols: withTicket(ticket) });
  expect(first.status).toBe(101);
  const again = await attempt('s-ros', { origin, protocols: withTicket(ticket) });
  expect(again.status).toBe(401);

  const ws = first.ws as WebSocket;
  let output = '';
  ws.on('message', (data: Buffer) => {
    output += data.toString();
  });
  const closed = new Promise<{ code: number; reason: string }>((resolve) => ws.on('close', (code, reason) => resolve({ code, reason: reason.toString() })));
  ws.send(JSON.stringify({ type: 'resize', cols: 100, rows: 30 }));
  ws.send(JSON.stringify({ type: 'resize', cols: -1, rows: 1e9 })); // ignored
  ws.send('not json at all'); // ignored
  ws.send(JSON.stringify({ type: 'input', data: 'stty size; id -u\r' }));
  await waitFor(() => /30 100/.test(output) && /\b20002\b/.test(output), 30_000, 'stty size and id -u in the output');

  const shells = () => podman('exec', containers[1] as string, 'sh', '-c', 'ps -e -o comm= | grep -c "^bash$" || true');
  expect(Number(shells())).toBeGreaterThanOrEqual(1);
  terminals.endSession('s-ros');
  expect(await closed).toEqual({ code: 4000, reason: 'the session ended' });
  await waitFor(() => Number(shells()) === 0, 15_000, 'the shell in the container to end');
});
