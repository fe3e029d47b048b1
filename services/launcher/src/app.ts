/**
 * The launcher service: the Launcher and its HTTP API. The API acts for whichever user a
 * request names, so it listens on loopback or a unix socket and every call (but /healthz)
 * must carry the bearer token from `token_file`, compared in constant time.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import express, { type RequestHandler } from 'express';
import { z } from 'zod';
import { AppError, closeServer, errorHandler, formatIssues, type Instrument, listen, type Logger, readOrCreateSecretFile, requestLog } from '@cloudlet/core';
import type { UserMap } from '@cloudlet/usermap';
import type { SessionBackend } from './backend';
import type { LauncherConfig } from './config';
import { Launcher } from './launcher';
import { PodmanBackend } from './podman-backend';
import { ProcessBackend } from './process-backend';
import type { Session } from './store';
import { terminalAssets } from './terminal-page';
import { createTerminalService, type TerminalService } from './terminal-service';

export interface LauncherServiceDeps {
  config: LauncherConfig;
  log: Logger;
  usermap: () => UserMap;
  instruments: () => readonly Instrument[];
  /** Defaults to the one `config.backend` names. */
  backend?: SessionBackend;
}

export interface LauncherService {
  launcher: Launcher;
  /** Present when `config.terminal` is set. */
  terminals: TerminalService | undefined;
  /** `url`: `http://host:port`, or `unix:/path` for a socket; `terminal_url`: the terminal listener's ws base. */
  start(): Promise<{ url: string; terminal_url?: string }>;
  stop(): Promise<void>;
}

const startBody = z.strictObject({
  user: z.string().min(1),
  app: z.string().min(1),
  session: z.string().min(1).optional(),
});

const terminalBody = z.strictObject({ user: z.string().min(1) });

const notFound = (id: string): AppError => new AppError(`no session ${id}`, { code: 'not_found', status: 404, publicMessage: 'There is no such session.' });

export function createBackend(config: LauncherConfig): SessionBackend {
  return config.backend === 'podman' ? new PodmanBackend({ config: config.podman, instance: config.instance }) : new ProcessBackend(config.state_dir);
}

/** Compares digests, so neither the token's length nor its prefix leaks through timing. */
export function bearerAuth(token: string): RequestHandler {
  const expected = createHash('sha256').update(token).digest();
  return (req, _res, next) => {
    const header = req.headers.authorization ?? '';
    const given = header.startsWith('Bearer ') ? header.slice('Bearer '.length) : '';
    if (given === '' || !timingSafeEqual(createHash('sha256').update(given).digest(), expected)) {
      next(new AppError('missing or wrong bearer token', { code: 'unauthorized', status: 401 }));
      return;
    }
    next();
  };
}

export function createLauncherService(deps: LauncherServiceDeps): LauncherService {
  const { config, log } = deps;
  const launcher = new Launcher({ config, log, usermap: deps.usermap, instruments: deps.instruments, backend: deps.backend ?? createBackend(config) });
  const token = readOrCreateSecretFile(config.token_file);
  const terminals = config.terminal ? createTerminalService({ config: config.terminal, launcher, log: log.child({ component: 'terminal' }) }) : undefined;

  const app = express();
  app.disable('x-powered-by');
  app.use(requestLog(log));
  app.get('/healthz', (_req, res) => {
    res.json({ ok: true, backend: config.backend });
  });
  app.use('/api', bearerAuth(token));
  app.use(express.json({ limit: '64kb' }));
  app.post('/api/sessions', async (req, res) => {
    const body = startBody.safeParse(req.body);
    if (!body.success) throw new AppError(`invalid request: ${formatIssues(body.error).join('; ')}`, { code: 'bad_request', status: 400 });
    const result = await launcher.start(body.data);
    res.setHeader('cache-control', 'no-store');
    res.status(201).json(result);
  });
  app.get('/api/apps', (_req, res) => {
    res.json(config.apps.map((a) => ({ id: a.id, title: a.title ?? a.id, idle_timeout_s: a.idle_timeout_s, max_lifetime_s: a.max_lifetime_s })));
  });
  app.get('/api/sessions', (req, res) => {
    const user = typeof req.query.user === 'string' ? req.query.user : undefined;
    const owner = user === undefined ? undefined : launcher.resolveUser(user).personId;
    res.json(launcher.list(owner).map((s) => launcher.view(s)));
  });
  /**
   * With `?user=` (the portal always sends it) a session of someone else is answered exactly
   * like one that does not exist, so ids cannot be probed for.
   */
  const sessionFor = (id: string, user: unknown): Session => {
    const session = launcher.get(id);
    if (!session) throw notFound(id);
    if (user !== undefined && (typeof user !== 'string' || launcher.resolveUser(user).personId !== session.owner)) throw notFound(id);
    return session;
  };
  app.get('/api/sessions/:id', (req, res) => {
    res.json(launcher.view(sessionFor(req.params.id, req.query.user)));
  });
  app.delete('/api/sessions/:id', async (req, res) => {
    sessionFor(req.params.id, req.query.user);
    const stopped = await launcher.stop(req.params.id);
    res.json({ stopped, session: launcher.view(launcher.get(req.params.id) as Session) });
  });
  app.post('/api/sessions/:id/terminal', (req, res) => {
    if (!terminals) throw new AppError('launcher.terminal is not configured', { code: 'not_found', status: 404, publicMessage: 'Terminals are not enabled on this server.' });
    const body = terminalBody.safeParse(req.body);
    if (!body.success) throw new AppError(`invalid request: ${formatIssues(body.error).join('; ')}`, { code: 'bad_request', status: 400 });
    const session = sessionFor(req.params.id, body.data.user);
    if (session.state !== 'running') throw new AppError(`session ${session.id} is ${session.state}`, { code: 'gone', status: 410, publicMessage: 'This session has ended.' });
    res.setHeader('cache-control', 'no-store');
    res.json(terminals.issue(session.id, session.owner));
  });
  // The terminal page's scripts, fetched by the portal (with the token) and served from its own origin.
  app.use('/api/terminal-assets', terminalAssets());
  app.post('/api/sessions/:id/activity', (req, res) => {
    if (!launcher.activity(req.params.id)) throw new AppError(`no running session ${req.params.id}`, { code: 'not_found', status: 404 });
    res.status(204).end();
  });
  app.get('/api/sessions/:id/logs', async (req, res) => {
    const tail = Number(typeof req.query.tail === 'string' ? req.query.tail : 200);
    if (!Number.isInteger(tail) || tail < 1 || tail > 10_000) throw new AppError('tail: an integer from 1 to 10000', { code: 'bad_request', status: 400 });
    res.type('text/plain').send(await launcher.logs(req.params.id, tail));
  });
  app.use(errorHandler(log));
  const server = http.createServer(app);

  return {
    launcher,
    terminals,
    async start() {
      await launcher.open();
      const terminal = await terminals?.start();
      let url: string;
      if (config.listen_socket) {
        fs.rmSync(config.listen_socket, { force: true });
        await new Promise<void>((resolve, reject) => {
          server.once('error', reject);
          server.listen(config.listen_socket, () => resolve());
        });
        fs.chmodSync(config.listen_socket, 0o660);
        url = `unix:${config.listen_socket}`;
      } else {
        const address = await listen(server, config.listen_host, config.listen_port);
        url = `http://${address.address}:${address.port}`;
      }
      log.info({ url, terminal_url: terminal?.url, backend: config.backend, apps: config.apps.map((a) => a.id) }, 'launcher ready');
      return terminal ? { url, terminal_url: terminal.url } : { url };
    },
    async stop() {
      await terminals?.stop();
      await closeServer(server);
      await launcher.close();
    },
  };
}
