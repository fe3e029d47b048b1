/**
 * One error family for every service. The log gets `message` (and the cause chain); a client
 * gets only `publicMessage`, so internal detail never leaks into a page or a websocket frame.
 */
export interface AppErrorOptions {
  code: string;
  status?: number;
  publicMessage?: string;
  cause?: unknown;
  details?: Record<string, unknown>;
}

export class AppError extends Error {
  readonly code: string;
  readonly status: number;
  readonly publicMessage: string;
  readonly details: Record<string, unknown> | undefined;

  constructor(message: string, options: AppErrorOptions) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'AppError';
    this.code = options.code;
    this.status = options.status ?? 500;
    this.publicMessage = options.publicMessage ?? (this.status < 500 ? message : 'Internal error');
    this.details = options.details;
  }
}

/** A configuration problem: every issue found, so the admin can fix them in one go. */
export class ConfigError extends AppError {
  readonly problems: readonly string[];

  constructor(source: string, problems: readonly string[]) {
    super(`${source}: ${problems.length} problem(s):\n  ${problems.join('\n  ')}`, {
      code: 'config_invalid',
      status: 500,
    });
    this.name = 'ConfigError';
    this.problems = problems;
  }
}

const EXPECTED_NETWORK_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EPIPE',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENOTFOUND',
  'EAI_AGAIN',
]);

/** Network failures that are part of normal life: logged as one line, without a stack. */
export function isExpectedNetworkError(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' && EXPECTED_NETWORK_CODES.has(code);
}

export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
