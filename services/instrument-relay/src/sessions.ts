/**
 * Relay sessions: one per (person, instrument, open request), each with its own loopback port,
 * a control secret (operators only) and a view secret, and an expiry (the session length or
 * the end of the booking, whichever comes first). `/node` and `/rnode` in OOD let any signed-in
 * user reach any port, so the secrets, not the port, are what admit a browser.
 */
import { randomBytes } from 'node:crypto';
import http from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocketServer } from 'ws';
import { closeServer, type Instrument, type Logger, originAllowed, randomVncPassword, urlWithoutQuery, vncAuthMatches } from '@cloudlet/core';
import type { Role } from '@cloudlet/usermap';
import { BrowserConnection, CLOSE, type ConnectionDeps, type Privilege } from './connection';
import type { RelayConfig } from './config';
import type { UpstreamTarget } from './upstream';

/** After this many wrong secrets a session refuses everyone: 48-bit secrets are not for guessing. */
export const MAX_FAILED_AUTHS = 10;

export interface SessionParams {
  username: string;
  personId: string;
  instrument: Instrument;
  role: Role;
  mode: 'control' | 'view';
  expiresAt: Date;
}

export class RelaySession {
  readonly id = `rs-${randomBytes(9).toString('base64url')}`;
  readonly username: string;
  readonly personId: string;
  readonly instrument: Instrument;
  readonly role: Role;
  readonly mode: 'control' | 'view';
  readonly controlPassword: string | undefined;
  readonly viewPassword = randomVncPassword();
  readonly createdAt = new Date();
  readonly expiresAt: Date;
  readonly connections = new Set<BrowserConnection>();
  port = 0;
  failedAuths = 0;
  onConnectionClosed: (c: BrowserConnection) => void = () => undefined;

  constructor(params: SessionParams) {
    this.username = params.username;
    this.personId = params.personId;
    this.instrument = params.instrument;
    this.role = params.role;
    this.mode = params.mode;
    this.expiresAt = params.expiresAt;
    this.controlPassword = params.mode === 'control' && params.role === 'operator' ? randomVncPassword() : undefined;
  }

  /** Which secret answered the challenge decides what the browser may do. */
  authenticate(challenge: Buffer, response: Buffer): Privilege | undefined {
    if (this.failedAuths >= MAX_FAILED_AUTHS) return undefined;
    if (this.controlPassword !== undefined && vncAuthMatches(challenge, response, this.controlPassword)) return 'control';
    if (vncAuthMatches(challenge, response, this.viewPassword)) return 'view';
    this.failedAuths++;
    return undefined;
  }

  hasControlConnection(): boolean {
    return [...this.connections].some((c) => c.privilege === 'control');
  }
}

export interface RegistryDeps {
  config: RelayConfig;
  log: Logger;
  /** What each connection needs, with the instrument's VNC target resolved per instrument. */
  connection: Omit<ConnectionDeps, 'upstreamTarget'> & { upstreamTarget(instrument: Instrument): UpstreamTarget };
  /** Re-checked at every connection: a booking may have ended or a role been withdrawn. */
  stillAllowed(session: RelaySession): { ok: true } | { ok: false; message: string };
  onSessionEnd(session: RelaySession): void;
}

interface Listener {
  server: http.Server;
  wss: WebSocketServer;
  expiry: NodeJS.Timeout;
}

export class SessionRegistry {
  private readonly sessions = new Map<string, RelaySession>();
  private readonly listeners = new Map<string, Listener>();

  constructor(private readonly deps: RegistryDeps) {}

  get(id: string): RelaySession | undefined {
    return this.sessions.get(id);
  }

  list(): RelaySession[] {
    return [...this.sessions.values()];
  }

  connectionsTo(instrumentId: string): number {
    return this.list()
      .filter((s) => s.instrument.id === instrumentId)
      .reduce((n, s) => n + s.connections.size, 0);
  }

  async open(params: SessionParams): Promise<RelaySession> {
    const session = new RelaySession(params);
    const wss = new WebSocketServer({
      noServer: true,
      maxPayload: this.deps.config.max_message_bytes,
      perMessageDeflate: false,
      // websockify compatibility: "binary" when offered, otherwise no subprotocol at all.
      handleProtocols: (protocols) => (protocols.has('binary') ? 'binary' : false),
    });
    const server = http.createServer((_req, res) => {
      res.writeHead(426, { 'content-type': 'text/plain' }).end('This port speaks WebSocket (RFB) only.\n');
    });
    server.on('upgrade', (req, socket, head) => this.upgrade(session, wss, req, socket, head));
    session.port = await this.listen(server);
    const delay = Math.max(0, session.expiresAt.getTime() - Date.now());
    const expiry = setTimeout(() => void this.close(session.id, 'session expired'), Math.min(delay, 2 ** 31 - 1));
    expiry.unref();
    this.sessions.set(session.id, session);
    this.listeners.set(session.id, { server, wss, expiry });
    session.onConnectionClosed = () => {
      if (!session.hasControlConnection()) this.deps.onSessionEnd(session);
    };
    return session;
  }

  async close(id: string, reason: string): Promise<boolean> {
    const session = this.sessions.get(id);
    const listener = this.listeners.get(id);
    if (!session || !listener) return false;
    this.sessions.delete(id);
    this.listeners.delete(id);
    clearTimeout(listener.expiry);
    for (const c of [...session.connections]) c.close(reason === 'session expired' ? CLOSE.expired : CLOSE.shutdown, reason);
    listener.wss.close();
    await closeServer(listener.server);
    this.deps.onSessionEnd(session);
    this.deps.log.info({ session: id, user: session.username, instrument: session.instrument.id, reason }, 'session closed');
    return true;
  }

  async closeAll(reason: string): Promise<void> {
    await Promise.all(this.list().map((s) => this.close(s.id, reason)));
  }

  private async listen(server: http.Server): Promise<number> {
    const { min, max } = this.deps.config.port_range;
    const host = this.deps.config.listen_host;
    if (min === 0 && max === 0) return listenOn(server, host, 0);
    const span = max - min + 1;
    const start = Math.floor(Math.random() * span);
    for (let i = 0; i < span; i++) {
      const port = min + ((start + i) % span);
      try {
        return await listenOn(server, host, port);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EADDRINUSE') throw err;
      }
    }
    throw new Error(`no free port in relay.port_range ${min}-${max}`);
  }

  /** Every check happens before handleUpgrade, answered with an HTTP status. */
  private upgrade(session: RelaySession, wss: WebSocketServer, req: http.IncomingMessage, socket: Duplex, head: Buffer): void {
    const remote = req.socket.remoteAddress ?? '?';
    const refuse = (status: number, message: string, code: string): void => {
      this.deps.connection.audit('refused', { user: session.username, session: session.id, instrument: session.instrument.id, remote, reason: code, path: urlWithoutQuery(req.url) });
      socket.end(`HTTP/1.1 ${status} ${http.STATUS_CODES[status] ?? ''}\r\ncontent-type: text/plain\r\nconnection: close\r\n\r\n${message}\n`);
    };
    const path = urlWithoutQuery(req.url);
    if (path !== '/websockify' && path !== '/') return refuse(404, 'Not found', 'bad_path');
    const origin = req.headers.origin;
    if (origin === undefined ? !this.deps.config.allow_missing_origin : !originAllowed(origin, this.deps.config.allowed_origins)) {
      return refuse(403, 'Origin not allowed', 'bad_origin');
    }
    if (!this.sessions.has(session.id) || session.expiresAt.getTime() <= Date.now()) return refuse(410, 'Session expired', 'expired');
    const allowed = this.deps.stillAllowed(session);
    if (!allowed.ok) return refuse(403, allowed.message, 'not_allowed');
    if (this.connectionsTo(session.instrument.id) >= this.deps.config.max_connections_per_instrument) {
      return refuse(429, 'Too many people are connected to this instrument', 'too_many');
    }
    wss.handleUpgrade(req, socket, head, (ws) => {
      const deps: ConnectionDeps = { ...this.deps.connection, upstreamTarget: () => this.deps.connection.upstreamTarget(session.instrument) };
      const connection = new BrowserConnection(ws, session, remote, deps);
      session.connections.add(connection);
      connection.run().catch((err: unknown) => this.deps.log.warn({ session: session.id, error: String(err) }, 'connection ended with an error'));
    });
  }
}

function listenOn(server: http.Server, host: string, port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const onError = (err: Error): void => reject(err);
    server.once('error', onError);
    server.listen(port, host, () => {
      server.off('error', onError);
      resolve((server.address() as { port: number }).port);
    });
  });
}
