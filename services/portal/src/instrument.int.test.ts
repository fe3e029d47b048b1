/**
 * The instrument routes' refusals, over HTTP against the real stack (simulator, relay, portal):
 * no role, not enrolled, not signed in, a control change without its CSRF token, and a viewer
 * asking for control.
 */
import { CookieClient, signIn } from './testing/harness';
import { type Stack, startStack } from './testing/stack';

jest.setTimeout(60_000);

describe('instrument routes refuse', () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack();
  });
  afterAll(async () => {
    await stack?.stop();
  });

  const csrfOf = (page: string): string => /data-csrf="([^"]+)"/.exec(page)?.[1] ?? '';
  const control = (client: CookieClient, body: unknown, csrf?: string): Promise<Response> =>
    client.request(`${stack.url}/instruments/krios-sim/control`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json', ...(csrf === undefined ? {} : { 'x-csrf-token': csrf }) },
      body: JSON.stringify(body),
    });

  test('someone not signed in, not enrolled, or without a role on the instrument', async () => {
    expect((await fetch(`${stack.url}/instruments/krios-sim`, { headers: { accept: 'application/json' } })).status).toBe(401);
    const newcomer = new CookieClient();
    await signIn(newcomer, stack.url, 'newcomer', 'pw-newcomer');
    expect((await newcomer.request(`${stack.url}/instruments/krios-sim`)).status).toBe(403);
    const grace = new CookieClient();
    await signIn(grace, stack.url, 'grace', 'pw-grace');
    expect((await grace.request(`${stack.url}/instruments/glacios`)).status).toBe(403);
    expect((await grace.request(`${stack.url}/instruments/krios-sim`)).status).toBe(200);
  });

  test('a control change without the page CSRF token, or with another session\'s', async () => {
    const ada = new CookieClient();
    await signIn(ada, stack.url, 'ada', 'pw-ada');
    const page = await (await ada.request(`${stack.url}/instruments/krios-sim`)).text();
    expect((await control(ada, { action: 'release' })).status).toBe(403);
    const other = new CookieClient();
    await signIn(other, stack.url, 'grace', 'pw-grace');
    const otherCsrf = csrfOf(await (await other.request(`${stack.url}/instruments/krios-sim`)).text());
    expect((await control(ada, { action: 'release' }, otherCsrf)).status).toBe(403);
    // With its own token the same request goes through to the relay.
    expect((await control(ada, { action: 'take' }, csrfOf(page))).status).toBe(200);
  });

  test('a viewer asking for control is refused by the relay', async () => {
    const rosalind = new CookieClient();
    await signIn(rosalind, stack.url, 'rosalind', 'pw-rosalind');
    const page = await (await rosalind.request(`${stack.url}/instruments/krios-sim`)).text();
    expect(page).toContain('data-mode="view"');
    const res = await control(rosalind, { action: 'take' }, csrfOf(page));
    expect(res.status).toBe(403);
    expect(((await res.json()) as { message: string }).message).toMatch(/view-only/);
  });
});
