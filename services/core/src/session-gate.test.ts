import http from 'node:http';
import express from 'express';
import { closeServer, errorHandler, listen } from './http';
import { createLogger } from './log';
import { requestHasSession, secretMatches, sessionGate } from './session-gate';

const SECRET = 'k3Vx-session-secret-0123456789abcdef';
let server: http.Server;
let base: string;

beforeAll(async () => {
  const app = express();
  const gate = { secret: SECRET, cookieName: 'cloudlet-live-4242' };
  app.use('/app', sessionGate(gate));
  app.get('/app/', (_req, res) => res.send('dashboard'));
  app.get('/app/plots', (req, res) => res.json({ view: req.query.view }));
  app.post('/app/thresholds', (_req, res) => res.json({ ok: true }));
  app.use(errorHandler(createLogger({ name: 'test', level: 'silent' })));
  server = http.createServer(app);
  server.on('upgrade', (req, socket) => {
    socket.end(requestHasSession(req, gate) ? 'HTTP/1.1 418 Teapot\r\n\r\n' : 'HTTP/1.1 401 Unauthorized\r\n\r\n');
  });
  const a = await listen(server, '127.0.0.1', 0);
  base = `http://127.0.0.1:${a.port}`;
});
afterAll(() => closeServer(server));

const get = (path: string, headers: Record<string, string> = {}) => fetch(`${base}${path}`, { headers, redirect: 'manual' });

test('the token is traded for an HttpOnly, SameSite=Strict cookie, and the address loses it', async () => {
  const res = await get(`/app/plots?view=defocus&token=${SECRET}`);
  expect(res.status).toBe(303);
  expect(res.headers.get('location')).toBe('plots?view=defocus');
  const cookie = res.headers.get('set-cookie') ?? '';
  expect(cookie).toMatch(/^cloudlet-live-4242=/);
  expect(cookie).toMatch(/HttpOnly/);
  expect(cookie).toMatch(/SameSite=Strict/);
  expect(cookie).not.toMatch(/Path=/);
  const jar = cookie.split(';')[0] as string;
  const page = await get('/app/plots?view=defocus', { cookie: jar });
  expect(page.status).toBe(200);
  expect(await page.json()).toEqual({ view: 'defocus' });
  const root = await get(`/app/?token=${SECRET}`);
  expect(root.headers.get('location')).toBe('./');
});

test.each([
  ['no token or cookie', {}, '/app/'],
  ['a wrong token', {}, '/app/?token=not-the-secret'],
  ['a cookie of another session', { cookie: 'cloudlet-live-4242=another-session-secret-000000' }, '/app/'],
  ['the right secret under another cookie name', { cookie: `cloudlet-live-9999=${SECRET}` }, '/app/'],
  ['a wrong bearer token', { authorization: 'Bearer nope' }, '/app/'],
])('refuses %s with 401 and a message that says where to open it', async (_what, headers, path) => {
  const res = await get(path, headers);
  expect(res.status).toBe(401);
  expect(((await res.json()) as { message: string }).message).toMatch(/Open OnDemand/);
});

test('API clients may use the secret as a bearer token', async () => {
  expect((await get('/app/', { authorization: `Bearer ${SECRET}` })).status).toBe(200);
});

test('a state change from another origin is refused even with the cookie', async () => {
  const cookie = `cloudlet-live-4242=${SECRET}`;
  const post = (origin?: string) => fetch(`${base}/app/thresholds`, { method: 'POST', headers: { cookie, ...(origin ? { origin } : {}) } });
  expect((await post('http://evil.example')).status).toBe(403);
  expect((await post(base)).status).toBe(200);
  expect((await post()).status).toBe(200);
});

test('event streams and websocket upgrades check the same cookie', async () => {
  const upgrade = (cookie?: string) =>
    new Promise<number>((resolve) => {
      const req = http.request(`${base}/app/ws`, { headers: { connection: 'upgrade', upgrade: 'websocket', ...(cookie ? { cookie } : {}) } });
      req.on('upgrade', () => resolve(101));
      req.on('response', (res) => resolve(res.statusCode ?? 0));
      req.on('error', () => resolve(-1));
      req.end();
    });
  // The raw socket answers with a status line the client reads as a response.
  expect(await upgrade(`cloudlet-live-4242=${SECRET}`)).toBe(418);
  expect(await upgrade()).toBe(401);
});

test('secretMatches is false for empty or different values, whatever their length', () => {
  expect(secretMatches(SECRET, SECRET)).toBe(true);
  expect(secretMatches('', SECRET)).toBe(false);
  expect(secretMatches(undefined, SECRET)).toBe(false);
  expect(secretMatches(`${SECRET}x`, SECRET)).toBe(false);
  expect(() => sessionGate({ secret: 'short', cookieName: 'a' })).toThrow(/at least 16/);
  expect(() => sessionGate({ secret: SECRET, cookieName: 'a;b' })).toThrow(/bad cookie name/);
});
