/**
 * The session API on loopback. Trusted callers (the portal) use a bearer token and name the
 * user; `cloudlet-relay` (run by the user, e.g. from an OOD job) proves its Unix uid with a
 * challenge. Every answer about an instrument comes from the usermap's roles and bookings.
 */
import express, { type Request, type Router } from 'express';
import { AppError, type Instrument } from '@cloudlet/core';
import { type Caller, type ChallengeStore, resolveCaller, type UsermapStore } from '@cloudlet/usermap';
import { checkAccess, currentBooking, nextBooking } from './bookings';
import type { ControlArbiter } from './control';
import type { RelaySession, SessionRegistry } from './sessions';

export interface ApiDeps {
  registry: SessionRegistry;
  arbiter: ControlArbiter;
  usermap: UsermapStore;
  instruments(): readonly Instrument[];
  challenges: ChallengeStore;
  token: string;
  publicHost: string;
  sessionMaxMs: number;
}

function denied(message: string, status = 403, code = 'forbidden'): AppError {
  return new AppError(message, { code, status, publicMessage: message });
}

export function createApi(deps: ApiDeps): Router {
  const router = express.Router();
  router.use(express.json({ limit: '8kb' }));

  const caller = (req: Request): Caller =>
    resolveCaller(
      { authorization: req.get('authorization'), challenge: req.get('x-cloudlet-challenge'), username: (req.body as Record<string, unknown> | undefined)?.username ?? req.query.username },
      { token: deps.token, challenges: deps.challenges, map: deps.usermap.map },
    );

  const instrument = (id: unknown): Instrument => {
    const found = deps.instruments().find((i) => i.id === id);
    if (!found) throw denied(`No instrument ${String(id)}`, 404, 'not_found');
    return found;
  };

  const ownSession = (req: Request, who: Caller): RelaySession => {
    const session = deps.registry.get(String(req.params.id));
    if (!session || session.personId !== who.person.id) throw denied('No such session', 404, 'not_found');
    return session;
  };

  const describe = (s: RelaySession, withSecrets: boolean): Record<string, unknown> => {
    const control = deps.arbiter.state(s.instrument.id);
    const holder = control.holder ? deps.registry.get(control.holder) : undefined;
    return {
      id: s.id,
      instrument: s.instrument.id,
      instrument_name: s.instrument.name,
      role: s.role,
      mode: s.mode,
      host: deps.publicHost,
      port: s.port,
      websocket_path: 'websockify',
      expires_at: s.expiresAt.toISOString(),
      ...(withSecrets ? { password: s.controlPassword ?? '', view_password: s.viewPassword } : {}),
      control: {
        you_hold: control.holder === s.id,
        holder: holder?.username ?? null,
        you_requested: control.requests.includes(s.id),
        requests: control.requests.map((id) => deps.registry.get(id)?.username ?? '?'),
      },
    };
  };

  router.post('/challenges', (_req, res) => {
    res.status(201).json(deps.challenges.issue());
  });

  router.get('/instruments', (req, res) => {
    const who = caller(req);
    const now = new Date();
    const list = deps.instruments().flatMap((inst) => {
      const role = deps.usermap.map.role(who.person.id, inst.id);
      if (!role) return [];
      const current = currentBooking(inst, who.person.id, now);
      const next = nextBooking(inst, who.person.id, now);
      return [{ id: inst.id, name: inst.name, role, booking: { required: inst.booking_required, now: !inst.booking_required || current !== undefined, next_start: (current ?? next)?.start.toISOString() ?? null, next_end: (current ?? next)?.end.toISOString() ?? null } }];
    });
    res.json(list);
  });

  router.post('/sessions', async (req, res, next) => {
    try {
      const who = caller(req);
      const body = req.body as Record<string, unknown>;
      const inst = instrument(body.instrument);
      if (!inst.vnc) throw denied(`${inst.name} has no VNC access configured`, 409, 'no_vnc');
      const mode = body.mode === 'view' ? 'view' : body.mode === 'control' ? 'control' : undefined;
      if (!mode) throw denied('mode must be control or view', 400, 'bad_request');
      const access = checkAccess(deps.usermap.map, inst, who.person.id);
      if (!access.ok) throw denied(access.message, 403, access.reason);
      if (mode === 'control' && access.role !== 'operator') throw denied(`You are a viewer on ${inst.name}: open a view-only session`, 403, 'viewer_only');
      const cap = Date.now() + deps.sessionMaxMs;
      const expiresAt = new Date(access.until ? Math.min(cap, access.until.getTime()) : cap);
      const session = await deps.registry.open({ username: who.person.account.username, personId: who.person.id, instrument: inst, role: access.role, mode, expiresAt });
      res.status(201).json(describe(session, true));
    } catch (err) {
      next(err);
    }
  });

  router.get('/sessions/:id', (req, res) => {
    res.json(describe(ownSession(req, caller(req)), false));
  });

  router.delete('/sessions/:id', async (req, res, next) => {
    try {
      const session = ownSession(req, caller(req));
      await deps.registry.close(session.id, 'closed by its owner');
      res.status(204).end();
    } catch (err) {
      next(err);
    }
  });

  router.post('/sessions/:id/control', (req, res) => {
    const session = ownSession(req, caller(req));
    if (session.mode !== 'control') throw denied('This is a view-only session', 403, 'viewer_only');
    const { action, to } = req.body as { action?: unknown; to?: unknown };
    const id = session.instrument.id;
    switch (action) {
      case 'request':
        deps.arbiter.request(id, session.id);
        break;
      case 'release':
        if (!deps.arbiter.release(id, session.id)) throw denied('You do not hold control', 409, 'not_holder');
        break;
      case 'take':
        deps.arbiter.take(id, session.id);
        break;
      case 'grant': {
        const target = deps.registry.list().find((s) => s.instrument.id === id && s.username === to && deps.arbiter.state(id).requests.includes(s.id));
        if (!target || !deps.arbiter.grant(id, session.id, target.id)) throw denied('You can only grant control you hold, to someone who asked', 409, 'cannot_grant');
        break;
      }
      default:
        throw denied('action must be request, release, take or grant', 400, 'bad_request');
    }
    res.json(describe(session, false));
  });

  return router;
}
