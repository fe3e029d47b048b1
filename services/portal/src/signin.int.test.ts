/**
 * Sign-in through a real oidc-provider (the portal's embedded one, and an independent second
 * one) on loopback, over plain HTTP the way a browser does it, including every way it must fail.
 */
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { startProcess, tempDir, waitFor } from '@cloudlet/core/testing';
import { CookieClient, DEMO_IDENTITIES, DEV_IDP_MAIN, freePort, type PortalFixture, signIn, signInUntilCallback, startPortal } from './testing/harness';

jest.setTimeout(60_000);

describe('portal sign-in with the embedded provider', () => {
  let portal: PortalFixture;
  beforeAll(async () => {
    portal = await startPortal();
  });
  afterAll(async () => {
    await portal.stop();
  });

  test('a mapped operator lands on a dashboard listing their instruments and account', async () => {
    const client = new CookieClient();
    const res = await signIn(client, portal.url, 'ada', 'pw-ada');
    expect(res.status).toBe(200);
    const page = await res.text();
    expect(page).toContain('Welcome, Ada Lovelace');
    expect(page).toContain('Simulated Titan Krios');
    expect(page).toContain('operator: may control');
    expect(page).not.toContain('Glacios 2'); // no role there
    expect(page).toMatch(/id="username">ada</);
    expect(page).toContain('alovelace');
  });

  test('the session cookie is httpOnly and SameSite, and the session id changes at sign-in', async () => {
    const client = new CookieClient();
    const start = await client.request(`${portal.url}/auth/login`);
    const before = start.headers.getSetCookie().find((c) => c.startsWith('cloudlet.sid='));
    expect(before).toMatch(/HttpOnly/i);
    expect(before).toMatch(/SameSite=Lax/i);
    const sidBefore = client.cookies.get('cloudlet.sid');
    await signIn(new CookieClient(), portal.url, 'ada', 'pw-ada'); // unrelated browser
    client.cookies.clear();
    const res = await signIn(client, portal.url, 'ada', 'pw-ada');
    expect(res.status).toBe(200);
    expect(client.cookies.get('cloudlet.sid')).toBeDefined();
    expect(client.cookies.get('cloudlet.sid')).not.toBe(sidBefore);
  });

  test('the authorization request carries PKCE (S256), state and nonce', async () => {
    const res = await new CookieClient().request(`${portal.url}/auth/login`);
    const location = new URL(res.headers.get('location') ?? '');
    expect(location.href.startsWith(portal.issuer)).toBe(true);
    expect(location.searchParams.get('code_challenge_method')).toBe('S256');
    expect(location.searchParams.get('code_challenge')).toMatch(/^[\w-]{43}$/);
    expect(location.searchParams.get('state')).toMatch(/^[\w-]{20,}$/);
    expect(location.searchParams.get('nonce')).toMatch(/^[\w-]{20,}$/);
  });

  test('a viewer sees their role as watch-only', async () => {
    const page = await (await signIn(new CookieClient(), portal.url, 'rosalind', 'pw-rosalind')).text();
    expect(page).toContain('viewer: watch only');
  });

  test('an unmapped identity gets a clear page and exactly one enrollment request', async () => {
    const client = new CookieClient();
    const res = await signIn(client, portal.url, 'newcomer', 'pw-newcomer');
    expect(res.status).toBe(403);
    const page = await res.text();
    expect(page).toContain('not enrolled yet');
    expect(page).toContain('demo-newcomer');
    expect(page).toContain('Elsewhere Institute');
    await client.request(`${portal.url}/`);
    await signIn(new CookieClient(), portal.url, 'newcomer', 'pw-newcomer');
    const queue = JSON.parse(fs.readFileSync(portal.enrollmentsFile, 'utf8')) as { requests: { sub: string; status: string; attempts: number; email?: string }[] };
    const mine = queue.requests.filter((r) => r.sub === 'demo-newcomer');
    expect(mine).toHaveLength(1);
    expect(mine[0]).toMatchObject({ status: 'pending', attempts: 2, email: 'nia@elsewhere.example' });
  });

  test('a suspended person is told so and sees no dashboard', async () => {
    const res = await signIn(new CookieClient(), portal.url, 'mallory', 'pw-mallory');
    expect(res.status).toBe(403);
    const page = await res.text();
    expect(page).toContain('suspended');
    expect(page).not.toContain('Your instruments');
  });

  test('a wrong password stays on the provider with a message', async () => {
    await expect(signIn(new CookieClient(), portal.url, 'ada', 'wrong')).rejects.toThrow(/401/);
  });

  test('a tampered state is refused and no session is created', async () => {
    const client = new CookieClient();
    const callback = new URL(await signInUntilCallback(client, portal.url, 'ada', 'pw-ada'));
    callback.searchParams.set('state', `${callback.searchParams.get('state') ?? ''}x`);
    const res = await client.request(callback.href);
    expect(res.status).toBe(400);
    expect(await res.text()).toContain('could not be verified');
    const home = await client.request(`${portal.url}/`);
    expect(await home.text()).toContain('id="sign-in"');
  });

  test('a replayed authorization code is refused, in the same browser and in another', async () => {
    const client = new CookieClient();
    const callback = await signInUntilCallback(client, portal.url, 'ada', 'pw-ada');
    expect((await client.request(callback)).status).toBe(303);
    // Same browser again: the one-time state is gone.
    expect((await client.request(callback)).status).toBe(400);
    // Another browser that started its own sign-in: its state does not match, and the code is spent.
    const attacker = new CookieClient();
    const own = new URL((await attacker.request(`${portal.url}/auth/login`)).headers.get('location') ?? '');
    const forged = new URL(callback);
    forged.searchParams.set('state', own.searchParams.get('state') ?? '');
    const res = await attacker.request(forged.href);
    expect(res.status).toBe(400);
    expect(await (await attacker.request(`${portal.url}/`)).text()).toContain('id="sign-in"');
  });

  test('sign-out needs the CSRF token, then ends the session on the server', async () => {
    const client = new CookieClient();
    const page = await (await signIn(client, portal.url, 'ada', 'pw-ada')).text();
    const csrf = /name="_csrf" value="([^"]+)"/.exec(page)?.[1] ?? '';
    const stolenSid = client.cookies.get('cloudlet.sid') ?? '';
    const form = { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' } };
    expect((await client.request(`${portal.url}/auth/logout`, { ...form, body: '_csrf=forged' })).status).toBe(403);
    expect((await client.request(`${portal.url}/auth/logout`, { ...form, body: `_csrf=${csrf}` })).status).toBe(303);
    expect(await (await client.request(`${portal.url}/`)).text()).toContain('id="sign-in"');
    // The old cookie, replayed by whoever kept it, is dead too.
    const replay = await fetch(`${portal.url}/`, { headers: { cookie: `cloudlet.sid=${stolenSid}` } });
    expect(await replay.text()).toContain('id="sign-in"');
  });

  test('metrics are served in Prometheus text format, labelled by route', async () => {
    await fetch(`${portal.url}/healthz`);
    const text = await (await fetch(`${portal.url}/metrics`)).text();
    expect(text).toMatch(/http_request_duration_seconds_count\{[^}]*route="\/healthz"[^}]*\} [1-9]/);
    expect(text).toContain('process_cpu_seconds_total');
  });

  test('an unknown page is a 404 page, not a stack trace', async () => {
    const res = await fetch(`${portal.url}/no/such/page`, { headers: { accept: 'text/html' } });
    expect(res.status).toBe(404);
    expect(await res.text()).not.toMatch(/at .*\.js:\d+/);
  });
});

describe('portal sessions', () => {
  test('an expired session sends the person back to sign in', async () => {
    const portal = await startPortal({ portal: { session_max_age_s: 1 } });
    try {
      const client = new CookieClient();
      expect((await signIn(client, portal.url, 'ada', 'pw-ada')).status).toBe(200);
      await new Promise((resolve) => setTimeout(resolve, 1300)); // let the 1 s lifetime pass
      const res = await client.request(`${portal.url}/`);
      expect(await res.text()).toContain('id="sign-in"');
    } finally {
      await portal.stop();
    }
  });
});

describe('an ID token from the wrong issuer', () => {
  test('is refused even though it is validly signed by a real provider', async () => {
    // Provider B is a real, independent oidc-provider. The portal is told its issuer is X, a
    // discovery document that points at B's endpoints: every token B signs says iss=B, not X.
    const dir = tempDir('cloudlet-wrong-iss-');
    const secretFile = path.join(dir, 'client.secret');
    fs.writeFileSync(secretFile, 'shared-client-secret\n', { mode: 0o600 });
    let fakeIssuer = '';
    let providerB = '';
    const discovery = http.createServer((req, res) => {
      if (req.url === '/.well-known/openid-configuration') {
        fetch(`${providerB}/.well-known/openid-configuration`)
          .then((r) => r.json())
          .then((meta) => {
            res.setHeader('content-type', 'application/json');
            res.end(JSON.stringify({ ...(meta as object), issuer: fakeIssuer, authorization_response_iss_parameter_supported: false }));
          })
          .catch(() => res.writeHead(502).end());
      } else res.writeHead(404).end();
    });
    await new Promise<void>((resolve) => discovery.listen(0, '127.0.0.1', resolve));
    fakeIssuer = `http://127.0.0.1:${(discovery.address() as { port: number }).port}`;

    const portalPort = await freePort();
    const idp = startProcess(process.execPath, [DEV_IDP_MAIN], {
      env: { ...process.env, CLOUDLET_DEV_IDP: JSON.stringify({ clientId: 'cloudlet-portal', clientSecretFile: secretFile, redirectUri: `http://127.0.0.1:${portalPort}/auth/callback`, identities: DEMO_IDENTITIES, stateDir: dir }) },
    });
    providerB = String((await idp.waitForLog((e) => e.msg === 'dev idp ready')).issuer);
    const portal = await startPortal({
      portal: { listen_port: portalPort, oidc: { issuer: fakeIssuer, client_id: 'cloudlet-portal', client_secret_file: secretFile }, dev_idp: { enabled: false } },
      usermap: () => ({ version: 1, uid_range: { min: 1, max: 2 }, people: [{ id: 'ada', name: 'Ada', account: { username: 'ada', uid: 1, gid: 1 }, identities: [{ iss: providerB, sub: 'demo-ada' }, { iss: fakeIssuer, sub: 'demo-ada' }] }] }),
    });
    try {
      const refusals = (): Record<string, unknown>[] =>
        portal.process.lines.filter((l) => l.includes('"sign-in refused"')).map((l) => JSON.parse(l) as Record<string, unknown>);
      // As B sends it: the authorization response names B as issuer (RFC 9207) and is refused.
      const client = new CookieClient();
      const callback = await signInUntilCallback(client, portal.url, 'ada', 'pw-ada');
      expect((await client.request(callback)).status).toBe(400);
      expect(await (await client.request(`${portal.url}/`)).text()).toContain('id="sign-in"');
      // A provider without RFC 9207 sends no iss there: the code is redeemed and the ID token's iss must fail.
      const second = new CookieClient();
      const stripped = new URL(await signInUntilCallback(second, portal.url, 'ada', 'pw-ada'));
      stripped.searchParams.delete('iss');
      expect((await second.request(stripped.href)).status).toBe(400);
      expect(await (await second.request(`${portal.url}/`)).text()).toContain('id="sign-in"');
      await waitFor(() => refusals().length >= 2, 5000, 'two refusals');
      expect(refusals()[1]).toMatchObject({ detail: { claim: 'iss', expected: fakeIssuer } });
    } finally {
      await portal.stop();
      await idp.stop();
      discovery.close();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
