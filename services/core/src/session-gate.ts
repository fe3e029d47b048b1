/**
 * The gate in front of a per-user web app that an OOD job starts (the live dashboard, the
 * transfer view): the job writes a random session secret to a file only the user can read and
 * into OOD's connection.yml; the OOD view opens `<app>/?token=<secret>` once through OOD's
 * /rnode proxy. The gate trades the token for an HttpOnly, SameSite=Strict cookie and redirects
 * to the same URL without the query, so the secret leaves the address bar and the history at
 * once and never reaches a log (request logs drop query strings). Every later request, and every
 * event stream or websocket, must carry the cookie; state-changing requests must also come from
 * the app's own Origin. API clients may send `Authorization: Bearer <secret>` instead.
 *
 * The cookie has no Path attribute, so the browser scopes it to the directory of the URL it
 * saw: behind /rnode/<host>/<port>/ it is not sent to another user's app on another port. So
 * the token link must point at a page in the app's top folder (`<app>/` or `<app>/page`).
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { RequestHandler } from 'express';
import { AppError } from './errors';

export interface SessionGateOptions {
  /** The session secret (read from its file by the caller). */
  secret: string;
  /** Distinguishes the cookies of two apps on one host; letters, digits, dashes. */
  cookieName: string;
  /** Origins allowed to change state (POST, PUT, DELETE); `req`'s own Host is always allowed. */
  allowedOrigins?: readonly string[];
}

function digest(value: string): Buffer {
  return createHash('sha256').update(value).digest();
}

/** Constant-time comparison that does not leak the secret's length. */
export function secretMatches(given: string | undefined, secret: string): boolean {
  if (given === undefined || given.length === 0) return false;
  return timingSafeEqual(digest(given), digest(secret));
}

function cookieValue(header: string | undefined, name: string): string | undefined {
  if (!header) return undefined;
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq).trim() === name) {
      try {
        return decodeURIComponent(part.slice(eq + 1).trim());
      } catch {
        return undefined;
      }
    }
  }
  return undefined;
}

/** Whether a raw request (an upgrade, an event stream) carries the session's cookie or bearer token. */
export function requestHasSession(req: IncomingMessage, o: SessionGateOptions): boolean {
  const auth = req.headers.authorization;
  if (auth?.startsWith('Bearer ') && secretMatches(auth.slice(7), o.secret)) return true;
  return secretMatches(cookieValue(req.headers.cookie, o.cookieName), o.secret);
}

function sameOrigin(req: IncomingMessage, allowed: readonly string[]): boolean {
  const origin = req.headers.origin;
  if (origin === undefined) return true; // not a browser's cross-site request: browsers send Origin on POST
  let parsed: URL;
  try {
    parsed = new URL(origin);
  } catch {
    return false;
  }
  // Behind a proxy (OOD's /rnode) the Host header is the proxy's; X-Forwarded-Host says what the browser used.
  const hosts = [req.headers.host, ...(String(req.headers['x-forwarded-host'] ?? '').split(',').map((h) => h.trim()))].filter(Boolean);
  return hosts.includes(parsed.host) || allowed.some((a) => {
    try {
      return new URL(a).origin === parsed.origin;
    } catch {
      return false;
    }
  });
}

export function sessionGate(o: SessionGateOptions): RequestHandler {
  if (!/^[A-Za-z0-9-]{1,64}$/.test(o.cookieName)) throw new Error(`bad cookie name ${o.cookieName}`);
  if (o.secret.length < 16) throw new Error('the session secret must be at least 16 characters');
  return (req, res, next) => {
    const token = typeof req.query.token === 'string' ? req.query.token : undefined;
    if (token !== undefined) {
      if (!secretMatches(token, o.secret)) {
        next(new AppError('wrong session token', { code: 'unauthorized', status: 401, publicMessage: 'This link is not valid for this session. Open it again from your session card in Open OnDemand.' }));
        return;
      }
      // Written by hand: express's res.cookie always adds Path=/, which would send it to every app on the host.
      const secure = req.secure || req.headers['x-forwarded-proto'] === 'https' ? '; Secure' : '';
      res.append('Set-Cookie', `${o.cookieName}=${encodeURIComponent(o.secret)}; HttpOnly; SameSite=Strict${secure}`);
      // Back to the same address without the token; relative, so it works behind any proxy prefix.
      const params = new URLSearchParams(req.originalUrl.split('?')[1] ?? '');
      params.delete('token');
      const rest = params.toString();
      const last = req.path.split('/').pop() ?? '';
      res.setHeader('Cache-Control', 'no-store');
      res.redirect(303, `${last === '' ? './' : last}${rest ? `?${rest}` : ''}`);
      return;
    }
    if (!requestHasSession(req, o)) {
      next(new AppError('no session cookie', { code: 'unauthorized', status: 401, publicMessage: 'Open this page from your session card in Open OnDemand.' }));
      return;
    }
    if (!['GET', 'HEAD', 'OPTIONS'].includes(req.method) && !sameOrigin(req, o.allowedOrigins ?? [])) {
      next(new AppError('cross-origin request', { code: 'forbidden', status: 403, publicMessage: 'Request refused: it did not come from this page.' }));
      return;
    }
    next();
  };
}
