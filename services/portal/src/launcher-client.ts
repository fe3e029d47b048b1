/**
 * The portal's side of the launcher's API: it lists, starts and stops sessions and asks for
 * terminal tickets on behalf of the signed-in person, always naming them (`user`), so the
 * launcher itself refuses another person's session. Bearer token from a file, read when first
 * needed so the launcher may start after the portal.
 */
import { AppError, readSecretFile } from '@cloudlet/core';

export interface LauncherApp {
  id: string;
  title: string;
  idle_timeout_s: number;
  max_lifetime_s: number;
}

export interface LauncherSession {
  id: string;
  app: string;
  state: 'starting' | 'running' | 'stopping' | 'stopped' | 'failed';
  created_at: string;
  ready_at?: string;
  ended_at?: string;
  reason?: string;
  expires_at?: string;
  idle_deadline?: string;
}

export interface TerminalTicket {
  ticket: string;
  ws_url: string;
  expires_at: string;
}

/** The files terminal pages load; anything else is not asked of the launcher. */
export const TERMINAL_ASSETS = ['xterm.mjs', 'xterm.css', 'addon-fit.mjs', 'terminal.js'] as const;

export class LauncherClient {
  private token: string | undefined;

  constructor(private readonly apiUrl: string, private readonly tokenFile: string) {}

  async apps(): Promise<LauncherApp[]> {
    return (await this.json('GET', '/api/apps')) as LauncherApp[];
  }

  async sessions(username: string): Promise<LauncherSession[]> {
    return (await this.json('GET', `/api/sessions?user=${encodeURIComponent(username)}`)) as LauncherSession[];
  }

  async start(username: string, app: string): Promise<LauncherSession> {
    // The session secret in the answer is for a caller that connects to the session itself; the portal drops it.
    const { session } = (await this.json('POST', '/api/sessions', { user: username, app })) as { session: LauncherSession };
    return session;
  }

  async stop(id: string, username: string): Promise<void> {
    await this.json('DELETE', `/api/sessions/${encodeURIComponent(id)}?user=${encodeURIComponent(username)}`);
  }

  async terminal(id: string, username: string): Promise<TerminalTicket> {
    return (await this.json('POST', `/api/sessions/${encodeURIComponent(id)}/terminal`, { user: username })) as TerminalTicket;
  }

  async asset(name: (typeof TERMINAL_ASSETS)[number]): Promise<{ type: string; body: Buffer }> {
    const res = await this.fetch('GET', `/api/terminal-assets/${name}`);
    if (!res.ok) throw await this.refusal(res, 'GET', name);
    return { type: res.headers.get('content-type') ?? 'application/octet-stream', body: Buffer.from(await res.arrayBuffer()) };
  }

  private async json(method: string, path: string, body?: unknown): Promise<unknown> {
    const res = await this.fetch(method, path, body);
    if (!res.ok) throw await this.refusal(res, method, path);
    return res.json();
  }

  private async fetch(method: string, path: string, body?: unknown): Promise<Response> {
    this.token ??= readSecretFile(this.tokenFile);
    try {
      return await fetch(`${this.apiUrl}${path}`, {
        method,
        headers: { authorization: `Bearer ${this.token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      });
    } catch (err) {
      throw new AppError(`launcher API unreachable: ${(err as Error).message}`, { code: 'launcher_unreachable', status: 503, publicMessage: 'The session launcher is not reachable right now. Try again in a minute.', cause: err });
    }
  }

  /** The launcher's status and public message pass through: a 404 stays a 404 for the person. */
  private async refusal(res: Response, method: string, path: string): Promise<AppError> {
    if (res.status === 401) {
      // The portal's own credentials, not the person's: an operator's problem.
      return new AppError(`launcher refused the portal's token (${this.tokenFile})`, { code: 'launcher_unauthorized', status: 502, publicMessage: 'The session launcher is misconfigured; tell the facility.' });
    }
    const data = (await res.json().catch(() => ({}))) as Record<string, unknown>;
    const message = typeof data.message === 'string' ? data.message : `launcher answered ${res.status}`;
    return new AppError(`launcher refused ${method} ${path.split('?')[0] ?? path}: ${message}`, { code: typeof data.error === 'string' ? data.error : 'launcher_error', status: res.status, publicMessage: message });
  }
}
