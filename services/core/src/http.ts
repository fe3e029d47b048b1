/** HTTP plumbing shared by every service that serves pages or APIs. */
import type { IncomingMessage, Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { ErrorRequestHandler, RequestHandler } from 'express';
import { AppError } from './errors';
import { type Logger, logError, urlWithoutQuery } from './log';

/** Resolves once the server accepts connections; rejects on EADDRINUSE and friends. */
export function listen(server: Server, host: string, port: number): Promise<AddressInfo> {
  return new Promise((resolve, reject) => {
    const onError = (err: Error): void => reject(err);
    server.once('error', onError);
    server.listen(port, host, () => {
      server.off('error', onError);
      resolve(server.address() as AddressInfo);
    });
  });
}

export function closeServer(server: Server): Promise<void> {
  return new Promise((resolve) => {
    server.close(() => resolve());
    server.closeAllConnections();
  });
}

/** Conservative defaults for pages we render: no framing, no sniffing, scripts only from us. */
export function securityHeaders(): RequestHandler {
  return (_req, res, next) => {
    res.setHeader('X-Content-Type-Options', 'nosniff');
    res.setHeader('X-Frame-Options', 'DENY');
    res.setHeader('Referrer-Policy', 'same-origin');
    res.setHeader(
      'Content-Security-Policy',
      "default-src 'self'; img-src 'self' data: blob:; style-src 'self'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'; form-action 'self'",
    );
    next();
  };
}

/** One JSON line per request: method, path without query, status, duration, user when known. */
export function requestLog(log: Logger): RequestHandler {
  return (req, res, next) => {
    const started = process.hrtime.bigint();
    res.on('finish', () => {
      const ms = Number(process.hrtime.bigint() - started) / 1e6;
      const user = (req as { user?: { username?: string } }).user?.username;
      log.info(
        { method: req.method, path: urlWithoutQuery(req.originalUrl), status: res.statusCode, ms: Math.round(ms * 10) / 10, user },
        'request',
      );
    });
    next();
  };
}

/**
 * Turns errors into a status and a clean message for the client; the detail goes to the log.
 * `render` lets a service show its own error page for browsers.
 */
export function errorHandler(
  log: Logger,
  render?: (status: number, message: string, req: IncomingMessage) => string | undefined,
): ErrorRequestHandler {
  return (err: unknown, req, res, next) => {
    if (res.headersSent) {
      next(err);
      return;
    }
    const appErr = err instanceof AppError ? err : undefined;
    const status = appErr?.status ?? statusOf(err) ?? 500;
    const message = appErr?.publicMessage ?? (status < 500 ? httpMessage(err) : 'Internal error');
    if (status >= 500) logError(log, err, 'request failed', { path: urlWithoutQuery(req.originalUrl) });
    else log.info({ path: urlWithoutQuery(req.originalUrl), status, code: appErr?.code }, 'request refused');
    res.status(status);
    const page = req.accepts(['html', 'json']) === 'html' ? render?.(status, message, req) : undefined;
    if (page !== undefined) res.type('html').send(page);
    else res.json({ error: appErr?.code ?? 'error', message });
  };
}

function statusOf(err: unknown): number | undefined {
  const status = (err as { status?: unknown; statusCode?: unknown } | null)?.status ?? (err as { statusCode?: unknown } | null)?.statusCode;
  return typeof status === 'number' && status >= 400 && status < 600 ? status : undefined;
}

function httpMessage(err: unknown): string {
  const expose = (err as { expose?: unknown } | null)?.expose;
  return expose === true && err instanceof Error ? err.message : 'Request refused';
}

/**
 * Origin check for websocket upgrades and state-changing requests. Browsers always send
 * Origin on a websocket handshake; a missing one means a non-browser client, which must then
 * prove itself with the session secret alone, so callers decide whether to allow it.
 */
export function originAllowed(origin: string | undefined, allowed: readonly string[]): boolean {
  if (origin === undefined) return false;
  let normalized: string;
  try {
    normalized = new URL(origin).origin;
  } catch {
    return false;
  }
  return allowed.some((a) => {
    try {
      return new URL(a).origin === normalized;
    } catch {
      return false;
    }
  });
}
