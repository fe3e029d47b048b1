/**
 * Test fixtures for the portal: a real portal process (with its embedded oidc-provider) on an
 * ephemeral loopback port, in a temp dir with its own config, usermap and state; and a small
 * cookie-keeping HTTP client that walks the sign-in the way a browser does.
 */
import fs from 'node:fs';
import path from 'node:path';
import yaml from 'js-yaml';
import { freePort, type RunningProcess, startProcess, tempDir } from '@cloudlet/core/testing';

export { freePort };

export const REPO_ROOT = path.resolve(__dirname, '..', '..', '..', '..');
export const PORTAL_MAIN = path.join(REPO_ROOT, 'services', 'portal', 'dist', 'main.js');
export const DEV_IDP_MAIN = path.join(REPO_ROOT, 'services', 'portal', 'dist', 'dev-idp-server.js');

export const DEMO_IDENTITIES = [
  { username: 'ada', password: 'pw-ada', sub: 'demo-ada', name: 'Ada Lovelace', email: 'ada@demo.example', idp: 'Demo University' },
  { username: 'rosalind', password: 'pw-rosalind', sub: 'demo-rosalind', name: 'Rosalind Franklin', idp: 'Demo College' },
  { username: 'newcomer', password: 'pw-newcomer', sub: 'demo-newcomer', name: 'Nia Newcomer', email: 'nia@elsewhere.example', idp: 'Elsewhere Institute' },
  { username: 'mallory', password: 'pw-mallory', sub: 'demo-mallory', name: 'Mallory Suspended' },
  { username: 'grace', password: 'pw-grace', sub: 'demo-grace', name: 'Grace Hopper' },
];

/** The usermap for a portal whose demo issuer is `issuer`: ada operates, rosalind views, mallory is suspended. */
export function testUsermap(issuer: string): Record<string, unknown> {
  return {
    version: 1,
    uid_range: { min: 20000, max: 29999 },
    people: [
      { id: 'ada', name: 'Ada Lovelace', account: { username: 'ada', uid: 20001, gid: 20001, groups: ['cryoem'] }, identities: [{ iss: issuer, sub: 'demo-ada' }], instruments: { 'krios-sim': 'operator' }, clusters: [{ cluster: 'hpc-demo', username: 'alovelace', uid: 51001, gid: 5100 }] },
      { id: 'rosalind', name: 'Rosalind Franklin', account: { username: 'rosalind', uid: 20002, gid: 20002 }, identities: [{ iss: issuer, sub: 'demo-rosalind' }], instruments: { 'krios-sim': 'viewer' } },
      { id: 'grace', name: 'Grace Hopper', account: { username: 'grace', uid: 20004, gid: 20004 }, identities: [{ iss: issuer, sub: 'demo-grace' }], instruments: { 'krios-sim': 'operator' } },
      { id: 'mallory', name: 'Mallory Suspended', status: 'suspended', account: { username: 'mallory', uid: 20003, gid: 20003 }, identities: [{ iss: issuer, sub: 'demo-mallory' }] },
    ],
  };
}

export interface PortalFixture {
  url: string;
  issuer: string;
  dir: string;
  configFile: string;
  usermapFile: string;
  enrollmentsFile: string;
  indexFile: string;
  process: RunningProcess;
  stop(): Promise<void>;
}

export interface PortalFixtureOptions {
  /** Extra keys merged into the portal section. */
  portal?: Record<string, unknown>;
  /** The usermap to write; defaults to testUsermap(issuer). */
  usermap?: (issuer: string) => unknown;
  env?: NodeJS.ProcessEnv;
}

export async function startPortal(options: PortalFixtureOptions = {}): Promise<PortalFixture> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await startPortalOnce(options, await freePort());
    } catch (err) {
      // Another process may take the free port between our probe and the portal's bind.
      if (attempt < 3 && String(err).includes('EADDRINUSE')) continue;
      throw err;
    }
  }
}

async function startPortalOnce(options: PortalFixtureOptions, port: number): Promise<PortalFixture> {
  const dir = tempDir('cloudlet-portal-');
  const issuer = `http://127.0.0.1:${port}/dev-idp`;
  const usermapFile = path.join(dir, 'usermap.yml');
  const instrumentsFile = path.join(dir, 'instruments.yml');
  const configFile = path.join(dir, 'cloudlet.yml');
  const enrollmentsFile = path.join(dir, 'var', 'usermap', 'enrollments.json');
  const indexFile = path.join(dir, 'var', 'usermap', 'ood-index.tsv');
  fs.writeFileSync(usermapFile, yaml.dump((options.usermap ?? testUsermap)(issuer)));
  fs.writeFileSync(
    instrumentsFile,
    yaml.dump({ version: 1, instruments: [{ id: 'krios-sim', name: 'Simulated Titan Krios', description: 'test twin' }, { id: 'glacios', name: 'Glacios 2' }] }),
  );
  const config = {
    site: { name: 'Test facility', state_dir: path.join(dir, 'var'), log_level: 'debug' },
    usermap: { file: usermapFile, index_file: indexFile, enrollments_file: enrollmentsFile, ood_issuer: issuer },
    instruments: { file: instrumentsFile },
    portal: {
      listen_host: '127.0.0.1',
      listen_port: port,
      session_secret_file: path.join(dir, 'var', 'secrets', 'session.key'),
      oidc: { client_secret_file: path.join(dir, 'var', 'secrets', 'client.secret'), scopes: ['openid', 'profile', 'email', 'org.cilogon.userinfo'] },
      dev_idp: { enabled: true, identities: DEMO_IDENTITIES },
      ...options.portal,
    },
  };
  fs.writeFileSync(configFile, yaml.dump(config));
  const proc = startProcess(process.execPath, [PORTAL_MAIN, '--config', configFile], { env: { ...process.env, ...options.env } });
  const ready = await proc.waitForLog((e) => e.msg === 'portal ready').catch(async (err: unknown) => {
    await proc.stop();
    throw err;
  });
  return {
    url: String(ready.url),
    issuer: String(ready.issuer),
    dir,
    configFile,
    usermapFile,
    enrollmentsFile,
    indexFile,
    process: proc,
    async stop() {
      await proc.stop();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** A browser-like HTTP client: keeps cookies per name, follows nothing by itself. */
export class CookieClient {
  readonly cookies = new Map<string, string>();

  async request(url: string, init: RequestInit = {}): Promise<Response> {
    const headers = new Headers(init.headers);
    if (this.cookies.size > 0) headers.set('cookie', [...this.cookies].map(([k, v]) => `${k}=${v}`).join('; '));
    const res = await fetch(url, { ...init, headers, redirect: 'manual' });
    for (const line of res.headers.getSetCookie()) {
      const [pair = ''] = line.split(';');
      const eq = pair.indexOf('=');
      const name = pair.slice(0, eq).trim();
      const value = pair.slice(eq + 1).trim();
      if (/expires=Thu, 01 Jan 1970/i.test(line) || value === '') this.cookies.delete(name);
      else this.cookies.set(name, value);
    }
    return res;
  }

  /** Follows redirects the way a browser would (GET after 302/303), returning every hop. */
  async follow(url: string, init: RequestInit = {}, maxHops = 10): Promise<{ response: Response; urls: string[] }> {
    const urls = [url];
    let response = await this.request(url, init);
    while (response.status >= 300 && response.status < 400 && urls.length <= maxHops) {
      const next = new URL(response.headers.get('location') ?? '', urls[urls.length - 1]).href;
      urls.push(next);
      response = await this.request(next);
    }
    return { response, urls };
  }
}

/**
 * Walks the sign-in up to (not including) the portal's callback and returns the callback URL
 * carrying code and state. The caller decides whether to deliver it, tamper with it or replay it.
 */
export async function signInUntilCallback(client: CookieClient, portalUrl: string, username: string, password: string): Promise<string> {
  const start = await client.follow(`${portalUrl}/auth/login`);
  const loginPage = start.response;
  if (loginPage.status !== 200) throw new Error(`expected the demo login page, got ${loginPage.status}`);
  const pageUrl = start.urls[start.urls.length - 1] as string;
  const action = /action="([^"]+)"/.exec(await loginPage.text())?.[1];
  if (!action) throw new Error('no login form');
  let res = await client.request(new URL(action, pageUrl).href, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ username, password }).toString(),
  });
  let location = new URL(res.headers.get('location') ?? '', pageUrl).href;
  while (!location.startsWith(`${portalUrl}/auth/callback`)) {
    if (res.status < 300 || res.status >= 400) throw new Error(`sign-in stopped at ${res.status}: ${(await res.text()).slice(0, 300)}`);
    res = await client.request(location);
    location = new URL(res.headers.get('location') ?? '', location).href;
  }
  return location;
}

export async function signIn(client: CookieClient, portalUrl: string, username: string, password: string): Promise<Response> {
  const callback = await signInUntilCallback(client, portalUrl, username, password);
  return (await client.follow(callback)).response;
}
