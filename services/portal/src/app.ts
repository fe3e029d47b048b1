/**
 * The standalone front door: OIDC sign-in, usermap lookup, a server-side session, sign-out,
 * and the dashboard. In production OOD's Apache plays this role; the portal serves
 * development, CI, demos and small labs without OOD.
 */
import { randomBytes, timingSafeEqual } from 'node:crypto';
import http from 'node:http';
import path from 'node:path';
import express, { type Request, type RequestHandler } from 'express';
import session from 'express-session';
import passport from 'passport';
import {
  AppError,
  closeServer,
  createMetrics,
  errorHandler,
  httpMetrics,
  type Instrument,
  listen,
  loadInstruments,
  type Logger,
  logError,
  metricsHandler,
  readOrCreateSecretFile,
  readSecretFile,
  requestLog,
  securityHeaders,
  type SiteConfig,
} from '@cloudlet/core';
import { EnrollmentQueue, type UsermapConfig, UsermapStore } from '@cloudlet/usermap';
import type { PortalConfig } from './config';
import { createDevIdp, DEV_IDP_PATH, isLoopback } from './dev-idp';
import { standingOf } from './identity';
import { createInstrumentRoutes, NOVNC_DIR } from './instrument-page';
import { createRelyingParty, type RelyingParty, type SignedInIdentity } from './oidc';
import { LauncherClient } from './launcher-client';
import { RelayClient } from './relay-client';
import { createSessionsRoutes, SESSIONS_PATH } from './sessions-page';
import { SqliteSessionStore } from './session-store';
import { createViews } from './views';

declare module 'express-session' {
  interface SessionData {
    identity?: SignedInIdentity;
    signedInAt?: number;
    csrf?: string;
    enrollmentId?: string;
  }
}

export interface PortalDeps {
  portal: PortalConfig;
  site: SiteConfig;
  usermap: UsermapConfig;
  instrumentsFile: string;
  log: Logger;
}

export interface Portal {
  start(): Promise<{ url: string; issuer: string }>;
  stop(): Promise<void>;
}

const STATIC_DIR = path.join(__dirname, '..', 'static');

export function createPortal(deps: PortalDeps): Portal {
  const { portal: config, log } = deps;
  const views = createViews(deps.site.name);
  const usermap = UsermapStore.open({ file: deps.usermap.file, indexFile: deps.usermap.index_file, oodIssuer: deps.usermap.ood_issuer, log });
  const enrollments = new EnrollmentQueue(deps.usermap.enrollments_file);
  const instruments: Instrument[] = loadInstruments(deps.instrumentsFile).instruments;
  const sessionStore = new SqliteSessionStore(path.join(deps.site.state_dir, 'portal', 'sessions.sqlite'), config.session_max_age_s * 1000);
  const metrics = createMetrics('portal');
  const devIdpEnabled = config.dev_idp.enabled && config.oidc.issuer === '';
  if (config.oidc.issuer === '' && !config.dev_idp.enabled) {
    throw new AppError('portal.oidc.issuer is empty and portal.dev_idp is disabled: nobody could sign in', { code: 'config_invalid' });
  }
  if (devIdpEnabled && !isLoopback(config.listen_host)) {
    throw new AppError(`the demo sign-in provider only runs on loopback, not on ${config.listen_host}; set portal.oidc.issuer to a real provider`, { code: 'config_invalid' });
  }

  let publicUrl = '';
  let issuer = '';
  let clientSecret = '';
  let rp: RelyingParty | undefined;
  let devIdp: express.Router | undefined;

  const app = express();
  app.disable('x-powered-by');
  app.set('trust proxy', config.trust_proxy);
  app.use(requestLog(log), httpMetrics(metrics), securityHeaders());
  app.use('/static', express.static(STATIC_DIR, { maxAge: '1h' }));
  app.use('/static/novnc', express.static(NOVNC_DIR, { maxAge: '1h', index: false }));
  app.get('/healthz', (_req, res) => {
    res.json({ ok: true, usermap_problems: usermap.problems.length });
  });
  app.get('/metrics', metricsHandler(metrics));
  app.use(DEV_IDP_PATH, (req, res, next) => (devIdp ? devIdp(req, res, next) : next()));

  app.use(
    session({
      name: 'cloudlet.sid',
      secret: readOrCreateSecretFile(config.session_secret_file),
      store: sessionStore,
      resave: false,
      saveUninitialized: false,
      rolling: false,
      cookie: { httpOnly: true, sameSite: 'lax', secure: 'auto', maxAge: config.session_max_age_s * 1000, path: '/' },
    }),
  );
  app.use(passport.initialize());

  /** The relying party, discovered at start; retried here when the provider was down then. */
  const relyingParty = async (): Promise<RelyingParty> => {
    if (rp) return rp;
    rp = await createRelyingParty({ issuer, clientId: config.oidc.client_id, clientSecret, redirectUri: `${publicUrl}/auth/callback`, scopes: config.oidc.scopes, allowHttp: isLoopback(new URL(issuer).hostname), log });
    passport.use(rp.name, rp.strategy);
    return rp;
  };

  const signedIn = (req: Request): SignedInIdentity | undefined => {
    const s = req.session;
    if (!s.identity || !s.signedInAt) return undefined;
    if (Date.now() - s.signedInAt > config.session_max_age_s * 1000) return undefined;
    return s.identity;
  };

  app.get('/', async (req, res, next) => {
    try {
      const identity = signedIn(req);
      if (!identity) {
        res.type('html').send(views.render('landing', { title: 'Sign in', user: undefined, issuer, devIdp: devIdpEnabled, signedOut: req.query.signed_out === '1' }));
        return;
      }
      const standing = standingOf(usermap.map, instruments, identity);
      const common = { identity, csrf: csrfToken(req), user: identity };
      if (standing.kind === 'mapped') {
        res.type('html').send(views.render('dashboard', { ...common, title: 'Dashboard', standing, apps: config.apps, relay: config.relay !== undefined }));
        return;
      }
      if (standing.kind === 'unmapped' && !req.session.enrollmentId) {
        const request = await enrollments.submit({ iss: identity.iss, sub: identity.sub, name: identity.name, email: identity.email, idp: identity.idp, eppn: identity.eppn });
        req.session.enrollmentId = request.id;
        log.info({ iss: identity.iss, sub: identity.sub, request: request.id }, 'unmapped sign-in; enrollment request filed');
      }
      res.status(403).type('html').send(views.render('unmapped', { ...common, title: 'Not enrolled yet', standing, requestId: req.session.enrollmentId }));
    } catch (err) {
      next(err);
    }
  });

  app.get('/auth/login', async (req, res, next) => {
    try {
      const party = await relyingParty();
      // The demo provider keeps its own session; asking again lets people switch demo identities.
      (passport.authenticate(party.name, { session: false, ...(devIdpEnabled ? { prompt: 'login' } : {}) }) as RequestHandler)(req, res, next);
    } catch (err) {
      next(err);
    }
  });

  app.get('/auth/callback', async (req, res, next) => {
    let party: RelyingParty;
    try {
      party = await relyingParty();
    } catch (err) {
      next(err);
      return;
    }
    (passport.authenticate(party.name, { session: false }, (err: unknown, user: { identity: SignedInIdentity } | false, info: { message?: string } | undefined) => {
      if (err || !user) {
        const why = err instanceof Error ? err.message : (info?.message ?? 'no user');
        log.warn({ reason: why, code: (err as { code?: string } | null)?.code, detail: describeCause(err) }, 'sign-in refused');
        next(new AppError(`sign-in callback refused: ${why}`, { code: 'signin_failed', status: 400, publicMessage: 'Sign-in could not be verified (it may have expired, been used already, or come from the wrong provider). Please sign in again.' }));
        return;
      }
      // A fresh session id at sign-in: a session fixed by an attacker before it is worth nothing.
      req.session.regenerate((regenErr) => {
        if (regenErr) {
          next(regenErr);
          return;
        }
        req.session.identity = user.identity;
        req.session.signedInAt = Date.now();
        req.session.csrf = randomBytes(24).toString('base64url');
        log.info({ iss: user.identity.iss, sub: user.identity.sub }, 'signed in');
        req.session.save((saveErr) => (saveErr ? next(saveErr) : res.redirect(303, '/')));
      });
    }) as RequestHandler)(req, res, next);
  });

  app.post('/auth/logout', express.urlencoded({ extended: false, limit: '2kb' }), (req, res, next) => {
    if (!checkCsrf(req)) {
      next(new AppError('logout without a valid CSRF token', { code: 'csrf', status: 403, publicMessage: 'This form has expired. Reload the page and try again.' }));
      return;
    }
    // Only the cloudlet session ends: the person may still be signed in at their institution,
    // which the landing page says.
    req.session.destroy((err) => {
      if (err) {
        next(err);
        return;
      }
      res.clearCookie('cloudlet.sid', { path: '/' });
      res.redirect(303, '/?signed_out=1');
    });
  });

  if (config.relay) {
    app.use(
      '/instruments',
      createInstrumentRoutes({ relay: new RelayClient(config.relay.api_url, config.relay.api_token_file), usermap, instruments: () => instruments, signedIn, csrfToken, views }),
    );
  }

  app.use(
    SESSIONS_PATH,
    createSessionsRoutes({
      launcher: config.launcher ? new LauncherClient(config.launcher.api_url, config.launcher.api_token_file) : undefined,
      usermap,
      signedIn,
      csrfToken,
      checkCsrf,
      views,
    }),
  );

  app.use((_req, _res, next) => next(new AppError('no such page', { code: 'not_found', status: 404, publicMessage: 'There is no such page.' })));
  app.use(errorHandler(log, (status, message, req) => views.render('error', { title: 'Error', status, message, user: signedIn(req as Request) })));

  const server = http.createServer(app);

  return {
    async start() {
      const address = await listen(server, config.listen_host, config.listen_port);
      const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
      publicUrl = (config.public_url ?? `http://${host}:${address.port}`).replace(/\/$/, '');
      if (devIdpEnabled) {
        issuer = `${publicUrl}${DEV_IDP_PATH}`;
        clientSecret = readOrCreateSecretFile(config.oidc.client_secret_file);
        devIdp = await createDevIdp({ issuer, clientId: config.oidc.client_id, clientSecret, redirectUri: `${publicUrl}/auth/callback`, identities: config.dev_idp.identities, stateDir: deps.site.state_dir, views, log });
      } else {
        issuer = config.oidc.issuer;
        clientSecret = readSecretFile(config.oidc.client_secret_file);
      }
      usermap.watch();
      try {
        await relyingParty();
      } catch (err) {
        logError(log, err, 'OpenID provider not reachable yet; will retry at the next sign-in');
      }
      log.info({ url: publicUrl, issuer, dev_idp: devIdpEnabled }, 'portal ready');
      return { url: publicUrl, issuer };
    },
    async stop() {
      usermap.close();
      await closeServer(server);
      sessionStore.close();
    },
  };
}

/**
 * openid-client wraps the failed check; the innermost cause says which (claim, expected value,
 * the provider's error). Only those fields are logged, never token bytes or personal claims.
 */
function describeCause(cause: unknown): Record<string, unknown> | undefined {
  const pick: Record<string, unknown> = {};
  for (let c = cause, depth = 0; c && typeof c === 'object' && depth < 4; c = (c as { cause?: unknown }).cause, depth++) {
    const fields = c as Record<string, unknown>;
    if (c instanceof Error && depth > 0) pick.check ??= c.message;
    for (const key of ['claim', 'expected', 'error', 'error_description', 'status']) {
      if (typeof fields[key] === 'string' || typeof fields[key] === 'number') pick[key] ??= fields[key];
    }
  }
  return Object.keys(pick).length > 0 ? pick : undefined;
}

function csrfToken(req: Request): string {
  if (!req.session.csrf) req.session.csrf = randomBytes(24).toString('base64url');
  return req.session.csrf;
}

function checkCsrf(req: Request): boolean {
  const sent = (req.body as Record<string, unknown> | undefined)?._csrf;
  const expected = req.session.csrf;
  if (typeof sent !== 'string' || !expected) return false;
  const a = Buffer.from(sent);
  const b = Buffer.from(expected);
  return a.length === b.length && timingSafeEqual(a, b);
}

