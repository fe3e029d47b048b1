/**
 * A terminal in the browser into a person's own session: xterm.js in the page, a WebSocket to
 * this server, and a pseudo-terminal (node-pty) running whatever the launcher says enters the
 * session (`podman exec -it <container> bash`, or a shell as the person for the process
 * backend).
 *
 * Who may attach is settled before handleUpgrade (DESIGN.md section 9): the path names the
 * session, the Origin must be one the site allows, and the page presents a ticket, a one-time
 * secret the launcher issued for exactly that (session, owner), in the Sec-WebSocket-Protocol
 * header (`cloudlet-terminal, ticket.<secret>`), so it never appears in a URL or a log line. The
 * owner is checked again against the live session, which may have ended or changed hands since
 * the ticket was issued. Keystrokes are never logged.
 *
 * Frames: from the browser, text JSON `{"type":"input","data":"..."}` or
 * `{"type":"resize","cols":80,"rows":24}`; to the browser, the terminal's output as text.
 */
import { spawn } from 'node:child_process';
import { randomBytes, timingSafeEqual } from 'node:crypto';
import http from 'node:http';
import type { Duplex } from 'node:stream';
import { type Logger, originAllowed, urlWithoutQuery } from '@cloudlet/core';
import type { IPty } from 'node-pty';
import { WebSocket, WebSocketServer } from 'ws';

export const TERMINAL_PROTOCOL = 'cloudlet-terminal';
const TICKET_PREFIX = 'ticket.';
const PATH = /^\/terminal\/([A-Za-z0-9_-]{1,64})$/;

/** What the launcher knows of a live session, asked at every attach. */
export interface TerminalTarget {
  owner: string;
  /** The command that enters the session, as an argument vector (no shell in between). */
  argv: string[];
  env?: Record<string, string>;
  /** Where the command starts (the process backend's shell: the session's folder). */
  cwd?: string;
  /**
   * Ends what argv started inside the session once the terminal detaches. Needed for podman:
   * killing `podman exec` does not end the shell it started in the container.
   */
  release?: () => Promise<void>;
}

/**
 * How to enter a podman container with a terminal that can be ended: the shell records its pid
 * in the container's /tmp under a name of our choosing (a positional parameter, never script
 * text), and release() hangs it up, which also hangs up the jobs it started.
 */
export function podmanTerminal(o: { container: string; owner: string; podman?: string; engineUrl?: string; env?: Record<string, string>; shell?: string[] }): TerminalTarget {
  const podman = o.podman ?? 'podman';
  // --url makes podman a client of the session's own engine (root's, or the person's rootless one).
  const remote = o.engineUrl ? ['--url', o.engineUrl] : [];
  const tag = randomBytes(8).toString('hex');
  const shell = o.shell ?? ['bash', '-l'];
  return {
    owner: o.owner,
    argv: [podman, ...remote, 'exec', '-it', o.container, 'sh', '-c', 'echo $$ > "/tmp/.cloudlet-terminal-$0"; exec "$@"', tag, ...shell],
    ...(o.env ? { env: o.env } : {}),
    release: () =>
      new Promise((resolve) => {
        const child = spawn(podman, [...remote, 'exec', o.container, 'sh', '-c', 'f="/tmp/.cloudlet-terminal-$0"; [ -f "$f" ] && kill -HUP "$(cat "$f")"; rm -f "$f"', tag], { stdio: 'ignore', env: { ...process.env, ...o.env } });
        child.on('error', () => resolve());
        child.on('exit', () => resolve());
      }),
  };
}

export interface TerminalOptions {
  allowedOrigins: readonly string[];
  /** The live session, or undefined when it has ended. */
  session(sessionId: string): TerminalTarget | undefined;
  log: Logger;
  /** How long a ticket may wait for its page; default 60 s. */
  ticketTtlMs?: number;
  /** Largest frame from a browser; default 64 KiB (a paste). */
  maxFrameBytes?: number;
  /** Terminals per session at once; default 4. */
  maxPerSession?: number;
  /**
   * Told that a session is in use: when a terminal attaches or detaches, and every
   * `activityIntervalMs` while one is attached, so idle culling does not end a session someone
   * is typing in (or watching a long job in).
   */
  activity?: (sessionId: string) => void;
  /** Default 30 s. */
  activityIntervalMs?: number;
}

interface Ticket {
  sessionId: string;
  owner: string;
  expires: number;
}

interface Attached {
  sessionId: string;
  ws: WebSocket;
  pty: IPty;
  target: TerminalTarget;
}

export class TerminalServer {
  private readonly tickets = new Map<string, Ticket>();
  private readonly attached = new Set<Attached>();
  private readonly wss: WebSocketServer;
  private heartbeat: NodeJS.Timeout | undefined;

  constructor(private readonly opts: TerminalOptions) {
    this.wss = new WebSocketServer({
      noServer: true,
      maxPayload: opts.maxFrameBytes ?? 64 * 1024,
      perMessageDeflate: false,
      handleProtocols: (protocols) => (protocols.has(TERMINAL_PROTOCOL) ? TERMINAL_PROTOCOL : false),
    });
  }

  /**
   * A one-time secret for `owner` to attach to `sessionId`; hand it only to a page rendered for
   * that owner (the portal asks for it after signing the person in).
   */
  issueTicket(sessionId: string, owner: string): { ticket: string; expiresAt: Date } {
    this.sweep();
    const ticket = randomBytes(24).toString('base64url');
    const expires = Date.now() + (this.opts.ticketTtlMs ?? 60_000);
    this.tickets.set(ticket, { sessionId, owner, expires });
    return { ticket, expiresAt: new Date(expires) };
  }

  /** Serve terminals on `server`'s upgrades under /terminal/<session>; other upgrades are left alone. */
  attach(server: http.Server): void {
    server.on('upgrade', (req: http.IncomingMessage, socket: Duplex, head: Buffer) => {
      if (!urlWithoutQuery(req.url).startsWith('/terminal/')) return;
      this.upgrade(req, socket, head);
    });
  }

  /** The session ended: its terminals close and their processes are killed. */
  endSession(sessionId: string, reason = 'the session ended'): void {
    for (const a of [...this.attached]) if (a.sessionId === sessionId) this.detach(a, 4000, reason);
    for (const [ticket, t] of this.tickets) if (t.sessionId === sessionId) this.tickets.delete(ticket);
  }

  get open(): number {
    return this.attached.size;
  }

  close(): void {
    for (const a of [...this.attached]) this.detach(a, 1001, 'the launcher is stopping');
    this.wss.close();
  }

  private reportActivity(sessionId: string): void {
    try {
      this.opts.activity?.(sessionId);
    } catch (err) {
      this.opts.log.warn({ session: sessionId, err }, 'could not report terminal activity');
    }
  }

  /** Runs only while some terminal is attached, so an idle launcher has no timer. */
  private updateHeartbeat(): void {
    if (!this.opts.activity) return;
    if (this.attached.size > 0 && !this.heartbeat) {
      this.heartbeat = setInterval(() => {
        for (const id of new Set([...this.attached].map((a) => a.sessionId))) this.reportActivity(id);
      }, this.opts.activityIntervalMs ?? 30_000);
      this.heartbeat.unref();
    } else if (this.attached.size === 0 && this.heartbeat) {
      clearInterval(this.heartbeat);
      this.heartbeat = undefined;
    }
  }

  private upgrade(req: http.IncomingMessage, socket: Duplex, head: Buffer): void {
    const path = urlWithoutQuery(req.url);
    const refuse = (status: number, message: string, why: string): void => {
      this.opts.log.warn({ path, remote: req.socket.remoteAddress, reason: why }, 'terminal refused');
      socket.end(`HTTP/1.1 ${status} ${http.STATUS_CODES[status] ?? ''}\r\ncontent-type: text/plain\r\nconnection: close\r\n\r\n${message}\n`);
    };
    const match = PATH.exec(path);
    if (!match) return refuse(404, 'Not found', 'bad_path');
    const sessionId = match[1] as string;
    if (!originAllowed(req.headers.origin, this.opts.allowedOrigins)) return refuse(403, 'Origin not allowed', 'bad_origin');
    const offered = (req.headers['sec-websocket-protocol'] ?? '').split(',').map((p) => p.trim());
    const presented = offered.find((p) => p.startsWith(TICKET_PREFIX))?.slice(TICKET_PREFIX.length);
    if (!offered.includes(TERMINAL_PROTOCOL) || !presented) return refuse(401, 'A terminal ticket is required', 'no_ticket');
    const ticket = this.take(presented);
    if (!ticket) return refuse(401, 'The terminal ticket is unknown or expired: reload the page', 'bad_ticket');
    if (ticket.sessionId !== sessionId) return refuse(403, 'This ticket is for another session', 'wrong_session');
    const target = this.opts.session(sessionId);
    if (!target) return refuse(410, 'The session has ended', 'ended');
    if (target.owner !== ticket.owner) return refuse(403, 'This session belongs to someone else', 'not_owner');
    const count = [...this.attached].filter((a) => a.sessionId === sessionId).length;
    if (count >= (this.opts.maxPerSession ?? 4)) return refuse(429, 'Too many terminals on this session', 'too_many');
    this.wss.handleUpgrade(req, socket, head, (ws) => {
      this.start(ws, sessionId, target).catch((err: unknown) => {
        this.opts.log.error({ session: sessionId, err }, 'terminal failed to start');
        ws.close(1011, 'the terminal could not start');
      });
    });
  }

  /** Single use, constant-time comparison against each live ticket. */
  private take(presented: string): Ticket | undefined {
    this.sweep();
    const given = Buffer.from(presented);
    for (const [secret, t] of this.tickets) {
      const known = Buffer.from(secret);
      if (known.length === given.length && timingSafeEqual(known, given)) {
        this.tickets.delete(secret);
        return t;
      }
    }
    return undefined;
  }

  private sweep(): void {
    const now = Date.now();
    for (const [secret, t] of this.tickets) if (t.expires < now) this.tickets.delete(secret);
  }

  private async start(ws: WebSocket, sessionId: string, target: TerminalTarget): Promise<void> {
    const pty = await import('node-pty');
    const [file, ...args] = target.argv;
    if (!file) throw new Error('the session has no command to enter it');
    const proc = pty.spawn(file, args, {
      name: 'xterm-256color',
      cols: 80,
      rows: 24,
      ...(target.cwd ? { cwd: target.cwd } : {}),
      env: { TERM: 'xterm-256color', LANG: 'C.UTF-8', PATH: process.env.PATH ?? '/usr/bin:/bin', ...target.env },
    });
    const entry: Attached = { sessionId, ws, pty: proc, target };
    this.attached.add(entry);
    this.reportActivity(sessionId);
    this.updateHeartbeat();
    this.opts.log.info({ session: sessionId, owner: target.owner, pid: proc.pid }, 'terminal attached');
    proc.onData((data) => {
      if (ws.readyState === WebSocket.OPEN) ws.send(data);
    });
    proc.onExit(({ exitCode }) => this.detach(entry, 1000, `the shell exited (${exitCode})`));
    ws.on('message', (raw, isBinary) => {
      if (isBinary) return;
      let msg: unknown;
      try {
        msg = JSON.parse((Array.isArray(raw) ? Buffer.concat(raw) : Buffer.from(raw as ArrayBuffer)).toString('utf8'));
      } catch {
        return;
      }
      if (typeof msg !== 'object' || msg === null) return;
      const m = msg as { type?: unknown; data?: unknown; cols?: unknown; rows?: unknown };
      if (m.type === 'input' && typeof m.data === 'string') proc.write(m.data);
      else if (m.type === 'resize' && isSize(m.cols, 500) && isSize(m.rows, 300)) proc.resize(m.cols, m.rows);
    });
    ws.on('close', () => this.detach(entry, 1000, 'closed by the browser'));
  }

  private detach(entry: Attached, code: number, reason: string): void {
    if (!this.attached.delete(entry)) return;
    // The idle clock starts when the last terminal goes, not at the last heartbeat.
    if (code !== 4000) this.reportActivity(entry.sessionId);
    this.updateHeartbeat();
    try {
      entry.pty.kill('SIGHUP');
    } catch {
      // already gone
    }
    entry.target.release?.().catch((err: unknown) => this.opts.log.warn({ session: entry.sessionId, err }, 'could not end the terminal inside the session'));
    if (entry.ws.readyState === WebSocket.OPEN || entry.ws.readyState === WebSocket.CONNECTING) entry.ws.close(code, reason);
    this.opts.log.info({ session: entry.sessionId, reason }, 'terminal detached');
  }
}

function isSize(n: unknown, max: number): n is number {
  return typeof n === 'number' && Number.isInteger(n) && n >= 1 && n <= max;
}
