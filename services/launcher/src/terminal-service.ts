/**
 * The launcher's terminal listener: the TerminalServer on a port of its own (the only launcher
 * port a browser reaches; the API stays on loopback or a socket), entering sessions the way
 * `Launcher.entry` says, closing their terminals when they end, and counting an attached
 * terminal as activity for idle culling.
 */
import http from 'node:http';
import { closeServer, listen, type Logger } from '@cloudlet/core';
import type { SessionEntry } from './backend';
import type { TerminalConfig } from './config';
import type { Launcher } from './launcher';
import { podmanTerminal, TerminalServer, type TerminalTarget } from './terminal';

export interface TerminalService {
  server: TerminalServer;
  /** A ticket for `owner` (a person id) and the URL its page connects to. */
  issue(sessionId: string, owner: string): { ticket: string; ws_url: string; expires_at: string };
  start(): Promise<{ url: string }>;
  stop(): Promise<void>;
}

/** How a terminal enters a session, as the TerminalServer runs it. */
export function terminalTarget(owner: string, entry: SessionEntry, shell: readonly string[]): TerminalTarget {
  if (entry.kind === 'podman') {
    // The launcher's podman settings (CONTAINERS_CONF on hosts that need one) go to the client it runs.
    const conf = process.env.CONTAINERS_CONF;
    return podmanTerminal({ container: entry.container, owner, engineUrl: entry.engineUrl, shell: [...shell], ...(conf ? { env: { CONTAINERS_CONF: conf } } : {}) });
  }
  // The process backend gives no isolation: this is a shell as the launcher's own user (whoever
  // runs `npm start`), in the session's folder, not as the person. It exists for demos and
  // development on machines without podman; production uses the podman backend.
  return { owner, argv: [...shell], cwd: entry.cwd, env: { HOME: entry.cwd } };
}

export function createTerminalService(o: { config: TerminalConfig; launcher: Launcher; log: Logger }): TerminalService {
  const { config, launcher, log } = o;
  const server = new TerminalServer({
    allowedOrigins: config.allowed_origins,
    ticketTtlMs: config.ticket_ttl_s * 1000,
    log,
    session: (id) => {
      const found = launcher.entry(id);
      return found ? terminalTarget(found.owner, found.entry, config.shell) : undefined;
    },
    activity: (id) => {
      launcher.activity(id);
    },
    activityIntervalMs: config.activity_interval_ms,
  });
  launcher.onSessionEnd((id) => server.endSession(id));
  const listener = http.createServer((_req, res) => {
    res.writeHead(404, { 'content-type': 'text/plain' }).end('Not found\n');
  });
  server.attach(listener);
  let base = config.public_url?.replace(/\/$/, '');

  return {
    server,
    issue(sessionId, owner) {
      if (!base) throw new Error('the terminal listener has not started');
      const { ticket, expiresAt } = server.issueTicket(sessionId, owner);
      return { ticket, ws_url: `${base}/terminal/${encodeURIComponent(sessionId)}`, expires_at: expiresAt.toISOString() };
    },
    async start() {
      const address = await listen(listener, config.listen_host, config.listen_port);
      const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
      base ??= `ws://${host}:${address.port}`;
      log.info({ url: base, allowed_origins: config.allowed_origins }, 'terminal listener ready');
      return { url: base };
    },
    async stop() {
      server.close();
      await closeServer(listener);
    },
  };
}
