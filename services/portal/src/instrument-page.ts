/**
 * The instrument page: noVNC in the browser, connected straight to the relay session opened
 * for this person (control for operators, watch-only for viewers), and the buttons to request,
 * release or take back control. The page gets only the per-session secret, never the
 * instrument's own VNC password, which stays inside the relay.
 */
import { randomBytes, timingSafeEqual } from 'node:crypto';
import path from 'node:path';
import express, { type Request, type Router } from 'express';
import { AppError, type Instrument } from '@cloudlet/core';
import type { UsermapStore } from '@cloudlet/usermap';
import type { SignedInIdentity } from './oidc';
import type { RelayClient, RelaySessionInfo } from './relay-client';
import type { Views } from './views';

declare module 'express-session' {
  interface SessionData {
    /** Relay session id per instrument, so a reload reuses the session instead of piling them up. */
    relaySessions?: Record<string, string>;
  }
}

export const NOVNC_DIR = path.dirname(path.dirname(require.resolve('@novnc/novnc')));

export interface InstrumentPageDeps {
  relay: RelayClient;
  usermap: UsermapStore;
  instruments(): readonly Instrument[];
  signedIn(req: Request): SignedInIdentity | undefined;
  csrfToken(req: Request): string;
  views: Views;
}

export function createInstrumentRoutes(deps: InstrumentPageDeps): Router {
  const router = express.Router();

  const whoAndWhat = (req: Request): { username: string; instrument: Instrument; role: 'operator' | 'viewer' } => {
    const identity = deps.signedIn(req);
    if (!identity) throw new AppError('not signed in', { code: 'unauthorized', status: 401, publicMessage: 'Please sign in first.' });
    const found = deps.usermap.map.lookupIdentity(identity.iss, identity.sub);
    if (found?.status !== 'active') throw new AppError('no active account', { code: 'forbidden', status: 403, publicMessage: 'Your account is not active here.' });
    const instrument = deps.instruments().find((i) => i.id === req.params.id);
    const role = instrument ? deps.usermap.map.role(found.person.id, instrument.id) : undefined;
    if (!instrument || !role) throw new AppError('no role on instrument', { code: 'forbidden', status: 403, publicMessage: 'You hold no role on this instrument.' });
    return { username: found.account.username, instrument, role };
  };

  const currentSession = async (req: Request, username: string, instrument: Instrument, role: 'operator' | 'viewer'): Promise<RelaySessionInfo & { password?: string }> => {
    const known = req.session.relaySessions?.[instrument.id];
    const secrets = known ? req.session.relaySecrets?.[known] : undefined;
    if (known && secrets) {
      const live = await deps.relay.session(known, username);
      if (live) return { ...live, ...secrets };
    }
    const opened = await deps.relay.openSession(username, instrument.id, role === 'operator' ? 'control' : 'view');
    req.session.relaySessions = { ...req.session.relaySessions, [instrument.id]: opened.id };
    req.session.relaySecrets = { ...req.session.relaySecrets, [opened.id]: { password: opened.password ?? '', view_password: opened.view_password ?? '' } };
    return opened;
  };

  router.get('/:id', async (req, res) => {
    const { username, instrument, role } = whoAndWhat(req);
    const session = await currentSession(req, username, instrument, role);
    const wsOrigin = `ws://${session.host.includes(':') ? `[${session.host}]` : session.host}:${session.port}`;
    // This page alone may open a WebSocket to its relay session's port.
    res.setHeader('Content-Security-Policy', `default-src 'self'; img-src 'self' data: blob:; style-src 'self'; script-src 'self'; connect-src 'self' ${wsOrigin}; frame-ancestors 'none'; form-action 'self'`);
    res.type('html').send(
      deps.views.render('instrument', {
        title: instrument.name,
        user: deps.signedIn(req),
        csrf: deps.csrfToken(req),
        instrument,
        role,
        session: { id: session.id, mode: session.mode, expires_at: session.expires_at, ws_url: `${wsOrigin}/${session.websocket_path}`, password: session.mode === 'control' ? session.password : session.view_password },
      }),
    );
  });

  router.get('/:id/status', async (req, res) => {
    const { username, instrument } = whoAndWhat(req);
    const id = req.session.relaySessions?.[instrument.id];
    const live = id ? await deps.relay.session(id, username) : undefined;
    if (!live) throw new AppError('no relay session', { code: 'gone', status: 410, publicMessage: 'Your session on this instrument has ended. Reload the page to start a new one.' });
    res.json({ mode: live.mode, expires_at: live.expires_at, control: live.control });
  });

  router.post('/:id/control', express.json({ limit: '1kb' }), async (req, res) => {
    const sent = req.get('x-csrf-token') ?? '';
    const expected = req.session.csrf ?? randomBytes(16).toString('hex');
    if (sent.length !== expected.length || !timingSafeEqual(Buffer.from(sent), Buffer.from(expected))) {
      throw new AppError('control change without CSRF token', { code: 'csrf', status: 403, publicMessage: 'This page has expired. Reload it and try again.' });
    }
    const { username, instrument } = whoAndWhat(req);
    const id = req.session.relaySessions?.[instrument.id];
    if (!id) throw new AppError('no relay session', { code: 'gone', status: 410, publicMessage: 'Reload the page to start a session.' });
    const body = req.body as { action?: unknown; to?: unknown };
    const action = typeof body.action === 'string' ? body.action : '';
    const updated = await deps.relay.control(id, username, action, typeof body.to === 'string' ? body.to : undefined);
    res.json({ mode: updated.mode, control: updated.control });
  });

  return router;
}

declare module 'express-session' {
  interface SessionData {
    /** The secrets of this browser's own relay sessions, kept server-side only. */
    relaySecrets?: Record<string, { password: string; view_password: string }>;
  }
}
