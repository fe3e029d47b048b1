/**
 * The portal's side of the relay's session API: it opens sessions on behalf of the signed-in
 * person (bearer token, read when first needed so the relay may start after the portal).
 */
import { AppError, readSecretFile } from '@cloudlet/core';

export interface RelaySessionInfo {
  id: string;
  instrument: string;
  role: 'operator' | 'viewer';
  mode: 'control' | 'view';
  host: string;
  port: number;
  websocket_path: string;
  expires_at: string;
  password?: string;
  view_password?: string;
  control: { you_hold: boolean; holder: string | null; you_requested: boolean; requests: string[] };
}

export class RelayClient {
  private token: string | undefined;

  constructor(private readonly apiUrl: string, private readonly tokenFile: string) {}

  openSession(username: string, instrument: string, mode: 'control' | 'view'): Promise<RelaySessionInfo> {
    return this.call('POST', '/api/sessions', { username, instrument, mode }) as Promise<RelaySessionInfo>;
  }

  /** undefined when the relay no longer knows the session (expired, relay restarted). */
  async session(id: string, username: string): Promise<RelaySessionInfo | undefined> {
    try {
      return (await this.call('GET', `/api/sessions/${encodeURIComponent(id)}?username=${encodeURIComponent(username)}`)) as RelaySessionInfo;
    } catch (err) {
      if (err instanceof AppError && err.status === 404) return undefined;
      throw err;
    }
  }

  control(id: string, username: string, action: string, to?: string): Promise<RelaySessionInfo> {
    return this.call('POST', `/api/sessions/${encodeURIComponent(id)}/control`, { username, action, ...(to ? { to } : {}) }) as Promise<RelaySessionInfo>;
  }

  private async call(method: string, path: string, body?: unknown): Promise<unknown> {
    this.token ??= readSecretFile(this.tokenFile);
    let res: Response;
    try {
      res = await fetch(`${this.apiUrl}${path}`, {
        method,
        headers: { authorization: `Bearer ${this.token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      });
    } catch (err) {
      throw new AppError(`relay API unreachable: ${(err as Error).message}`, { code: 'relay_unreachable', status: 503, publicMessage: 'The instrument relay is not reachable right now. Try again in a minute.', cause: err });
    }
    const data = (await res.json().catch(() => ({}))) as Record<string, unknown>;
    if (!res.ok) {
      const message = typeof data.message === 'string' ? data.message : `relay answered ${res.status}`;
      throw new AppError(`relay refused ${method} ${path}: ${message}`, { code: typeof data.error === 'string' ? data.error : 'relay_error', status: res.status, publicMessage: message });
    }
    return data;
  }
}
