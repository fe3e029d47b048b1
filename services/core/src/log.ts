import pino, { type Logger, type LoggerOptions } from 'pino';
import { isExpectedNetworkError } from './errors';

export type { Logger } from 'pino';

/** Field paths that must never reach a log line, whatever a caller passes in. */
export const REDACTED_PATHS = [
  'password',
  '*.password',
  'secret',
  '*.secret',
  'token',
  '*.token',
  'access_token',
  '*.access_token',
  'id_token',
  '*.id_token',
  'refresh_token',
  '*.refresh_token',
  'client_secret',
  '*.client_secret',
  'cookie',
  '*.cookie',
  'authorization',
  '*.authorization',
  'headers.cookie',
  'headers.authorization',
  'req.headers.cookie',
  'req.headers.authorization',
  'res.headers["set-cookie"]',
];

export interface LogOptions {
  name: string;
  level?: string;
  /** Where lines go; stdout by default (systemd's journal or the supervisor collects them). */
  destination?: NodeJS.WritableStream;
}

export function createLogger(options: LogOptions): Logger {
  const config: LoggerOptions = {
    name: options.name,
    level: options.level ?? 'info',
    redact: { paths: REDACTED_PATHS, censor: '[redacted]' },
    base: { service: options.name },
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label) => ({ level: label }) },
  };
  return options.destination ? pino(config, options.destination) : pino(config);
}

/** Logs an error the way an operator wants it: one line for expected network trouble, a stack otherwise. */
export function logError(log: Logger, err: unknown, msg: string, fields: Record<string, unknown> = {}): void {
  if (isExpectedNetworkError(err)) {
    const e = err as { code?: string; message?: string };
    log.warn({ ...fields, code: e.code, error: e.message }, msg);
  } else {
    log.error({ ...fields, err }, msg);
  }
}

/** URLs are logged without their query string: codes, states and tokens travel there. */
export function urlWithoutQuery(url: string | undefined): string {
  if (!url) return '';
  const cut = url.search(/[?#]/);
  return cut === -1 ? url : url.slice(0, cut);
}
