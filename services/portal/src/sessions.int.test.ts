/**
 * The Sessions page over HTTP against a real launcher (process backend: podman is not the point
 * here) and a real portal: the page lists only the person's own sessions, starts and stops them
 * with the page's CSRF token and not without it, answers another person's session id with 404
 * (page, stop and terminal alike), and says so, without failing, when no launcher is configured.
 */
import { CookieClient, signIn } from './testing/harness';
import { type SessionStack, startSessionStack } from './testing/session-stack';

jest.setTimeout(60_000);

const csrfOf = (page: string): string => /name="_csrf" value="([^"]+)"/.exec(page)?.[1] ?? '';
const sessionIds = (page: string): string[] => [...page.matchAll(/data-session="([^"]+)"/g)].map((m) => m[1] as string);

describe('the Sessions page', () => {
  let stack: SessionStack;
  beforeAll(async () => {
    stack = await startSessionStack({ backend: 'process' });
  });
  afterAll(async () => {
    await stack?.stop();
  });

  const post = (client: CookieClient, path: string, fields: Record<string, string>): Promise<Response> =>
    client.request(`${stack.url}${path}`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams(fields).toString() });

  test('start and stop need the page CSRF token; each person sees and reaches only their own sessions', async () => {
    expect((await fetch(`${stack.url}/sessions`, { headers: { accept: 'application/json' } })).status).toBe(401);
    const ada = new CookieClient();
    await signIn(ada, stack.url, 'ada', 'pw-ada');
    const dashboard = await (await ada.request(`${stack.url}/`)).text();
    expect(dashboard).toContain('href="/sessions"');
    const empty = await (await ada.request(`${stack.url}/sessions`)).text();
    expect(empty).toContain('data-app="shell"');
    expect(sessionIds(empty)).toEqual([]);
    const csrf = csrfOf(empty);

    expect((await post(ada, '/sessions', { app: 'shell' })).status).toBe(403);
    const rosalind = new CookieClient();
    await signIn(rosalind, stack.url, 'rosalind', 'pw-rosalind');
    const rosalindCsrf = csrfOf(await (await rosalind.request(`${stack.url}/sessions`)).text());
    expect((await post(ada, '/sessions', { app: 'shell', _csrf: rosalindCsrf })).status).toBe(403);
    expect(sessionIds(await (await ada.request(`${stack.url}/sessions`)).text())).toEqual([]);

    const started = await post(ada, '/sessions', { app: 'shell', _csrf: csrf });
    expect(started.status).toBe(303);
    expect(started.headers.get('location')).toBe('/sessions');
    const listed = await (await ada.request(`${stack.url}/sessions`)).text();
    const [id] = sessionIds(listed);
    expect(id).toMatch(/^[a-f0-9]{16}$/);
    expect(listed).toContain(`href="/sessions/${id}/terminal"`);
    const sessionId = id as string;

    // Rosalind: not in her list; the page, a stop and a terminal ticket for it are all 404.
    expect(sessionIds(await (await rosalind.request(`${stack.url}/sessions`)).text())).toEqual([]);
    expect((await rosalind.request(`${stack.url}/sessions/${sessionId}/terminal`)).status).toBe(404);
    expect((await post(rosalind, `/sessions/${sessionId}/stop`, { _csrf: rosalindCsrf })).status).toBe(404);
    const launcherView = await fetch(`${stack.launcherApi}/api/sessions/${sessionId}`, { headers: { authorization: `Bearer ${stack.launcherToken}` } });
    expect(((await launcherView.json()) as { state: string }).state).toBe('running');

    // Ada's own terminal page: a ticket, the launcher's listener allowed in this page's CSP, assets from the portal.
    const terminal = await ada.request(`${stack.url}/sessions/${sessionId}/terminal`);
    expect(terminal.status).toBe(200);
    const page = await terminal.text();
    const wsUrl = /data-ws="([^"]+)"/.exec(page)?.[1] ?? '';
    expect(wsUrl).toMatch(new RegExp(`^ws://127\\.0\\.0\\.1:\\d+/terminal/${sessionId}$`));
    expect(terminal.headers.get('content-security-policy')).toContain(`connect-src 'self' ${new URL(wsUrl).origin}`);
    expect(/data-ticket="([A-Za-z0-9_-]{20,})"/.test(page)).toBe(true);
    const script = await ada.request(`${stack.url}/sessions/terminal-assets/terminal.js`);
    expect(script.status).toBe(200);
    expect(script.headers.get('content-type')).toMatch(/javascript/);
    expect(await script.text()).toContain('cloudlet-terminal');
    expect((await ada.request(`${stack.url}/sessions/terminal-assets/..%2Fapp.js`)).status).toBe(404);

    expect((await post(ada, `/sessions/${sessionId}/stop`, {})).status).toBe(403);
    expect((await post(ada, `/sessions/${sessionId}/stop`, { _csrf: csrf })).status).toBe(303);
    expect(sessionIds(await (await ada.request(`${stack.url}/sessions`)).text())).toEqual([]);
    expect((await ada.request(`${stack.url}/sessions/${sessionId}/terminal`)).status).toBe(410);
  });
});

test('without a launcher configured the page says sessions are not enabled', async () => {
  const stack = await startSessionStack({ backend: 'process', launcher: false });
  try {
    const ada = new CookieClient();
    await signIn(ada, stack.url, 'ada', 'pw-ada');
    const res = await ada.request(`${stack.url}/sessions`);
    expect(res.status).toBe(200);
    const page = await res.text();
    expect(page).toContain('id="sessions-disabled"');
    expect(page).toContain('Sessions are not enabled on this server');
    expect((await ada.request(`${stack.url}/sessions/abc/terminal`)).status).toBe(404);
  } finally {
    await stack.stop();
  }
});
