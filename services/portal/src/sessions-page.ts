/**
 * The Sessions page: the signed-in person's sessions from the launcher (app, state, started,
 * ends), a button per configured app to start one, a button to stop one, and a terminal into
 * each running one. Every launcher call names the person, so the launcher answers another
 * person's session id with 404, and so does this page. State changes are form POSTs carrying
 * the session's CSRF token, like sign-out.
 */
import express, { type Request, type Router } from 'express';
import { AppError } from '@cloudlet/core';
import type { UsermapStore } from '@cloudlet/usermap';
import { type LauncherClient, TERMINAL_ASSETS } from './launcher-client';
import type { SignedInIdentity } from './oidc';
import type { Views } from './views';

export const SESSIONS_PATH = '/sessions';
/** Where terminal pages load xterm.js and the terminal script from: the portal's own origin. */
const ASSETS_PATH = `${SESSIONS_PATH}/terminal-assets`;

export interface SessionsPageDeps {
  /** undefined when the launcher is not configured: the page says so. */
  launcher: LauncherClient | undefined;
  usermap: UsermapStore;
  signedIn(req: Request): SignedInIdentity | undefined;
  csrfToken(req: Request): string;
  checkCsrf(req: Request): boolean;
  views: Views;
}

export function createSessionsRoutes(deps: SessionsPageDeps): Router {
  const router = express.Router();
  const form = express.urlencoded({ extended: false, limit: '2kb' });
  // Static and the same for everyone; fetched from the launcher once per portal process.
  const assets = new Map<string, Promise<{ type: string; body: Buffer }>>();

  const person = (req: Request): { identity: SignedInIdentity; username: string } => {
    const identity = deps.signedIn(req);
    if (!identity) throw new AppError('not signed in', { code: 'unauthorized', status: 401, publicMessage: 'Please sign in first.' });
    const found = deps.usermap.map.lookupIdentity(identity.iss, identity.sub);
    if (found?.status !== 'active') throw new AppError('no active account', { code: 'forbidden', status: 403, publicMessage: 'Your account is not active here.' });
    return { identity, username: found.account.username };
  };

  const launcher = (): LauncherClient => {
    if (!deps.launcher) throw new AppError('portal.launcher is not configured', { code: 'not_found', status: 404, publicMessage: 'Sessions are not enabled on this server.' });
    return deps.launcher;
  };

  const requireCsrf = (req: Request): void => {
    if (!deps.checkCsrf(req)) throw new AppError('session change without a valid CSRF token', { code: 'csrf', status: 403, publicMessage: 'This form has expired. Reload the page and try again.' });
  };

  router.get('/', async (req, res) => {
    const { identity, username } = person(req);
    const common = { title: 'Sessions', user: identity, csrf: deps.csrfToken(req) };
    if (!deps.launcher) {
      res.type('html').send(deps.views.render('sessions', { ...common, enabled: false, apps: [], sessions: [] }));
      return;
    }
    const [apps, sessions] = await Promise.all([deps.launcher.apps(), deps.launcher.sessions(username)]);
    const active = sessions.filter((s) => s.state === 'starting' || s.state === 'running' || s.state === 'stopping');
    const titles = new Map(apps.map((a) => [a.id, a.title]));
    res.type('html').send(deps.views.render('sessions', { ...common, enabled: true, apps, sessions: active.map((s) => ({ ...s, title: titles.get(s.app) ?? s.app })) }));
  });

  router.post('/', form, async (req, res) => {
    requireCsrf(req);
    const { username } = person(req);
    const app = (req.body as Record<string, unknown>).app;
    if (typeof app !== 'string' || app === '') throw new AppError('no app chosen', { code: 'bad_request', status: 400, publicMessage: 'Choose an application to start.' });
    await launcher().start(username, app);
    res.redirect(303, SESSIONS_PATH);
  });

  router.post('/:id/stop', form, async (req, res) => {
    requireCsrf(req);
    const { username } = person(req);
    await launcher().stop(req.params.id, username);
    res.redirect(303, SESSIONS_PATH);
  });

  router.get('/terminal-assets/:file', async (req, res) => {
    const name = TERMINAL_ASSETS.find((f) => f === req.params.file);
    if (!name) throw new AppError('no such asset', { code: 'not_found', status: 404, publicMessage: 'There is no such page.' });
    const client = launcher();
    let pending = assets.get(name);
    if (!pending) {
      pending = client.asset(name);
      assets.set(name, pending);
      pending.catch(() => assets.delete(name));
    }
    const { type, body } = await pending;
    res.setHeader('cache-control', 'public, max-age=3600');
    res.type(type).send(body);
  });

  router.get('/:id/terminal', async (req, res) => {
    const { identity, username } = person(req);
    const id = req.params.id;
    const ticket = await launcher().terminal(id, username);
    const wsOrigin = new URL(ticket.ws_url).origin.replace(/^http/, 'ws');
    // This page alone may open a WebSocket to the launcher's terminal listener. xterm.js writes
    // its renderer's styles into <style> elements at run time, which needs inline styles;
    // scripts stay 'self' only.
    res.setHeader('Content-Security-Policy', `default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; script-src 'self'; connect-src 'self' ${wsOrigin}; frame-ancestors 'none'; form-action 'self'`);
    res.setHeader('cache-control', 'no-store');
    res.type('html').send(
      deps.views.render('session-terminal', { title: `Terminal: ${id}`, user: identity, csrf: deps.csrfToken(req), session: { id }, assets: ASSETS_PATH, wsUrl: ticket.ws_url, ticket: ticket.ticket }),
    );
  });

  return router;
}
