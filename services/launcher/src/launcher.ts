/**
 * The launcher's rules, independent of what runs sessions: who may start what (usermap,
 * caps), what a session sees (mount policy), when it counts as started (readiness with a
 * deadline), when it ends (stop, idle, maximum lifetime, exit), and how a restarted launcher
 * makes the backend and its own records agree again (no orphan, no duplicate).
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { AppError, ConfigError, errorMessage, INSTRUMENT_ID, type Instrument, type Logger, logError } from '@cloudlet/core';
import { accountOf, type LocalAccount, type UserMap } from '@cloudlet/usermap';
import { LABEL, type LaunchPlan, type RunState, type SessionBackend, type SessionEntry, type SessionRef } from './backend';
import type { AppConfig, LauncherConfig } from './config';
import { sessionMounts } from './mount-policy';
import { allocatePort, httpAnswers, portAccepts } from './readiness';
import { ACTIVE_STATES, type Session, SessionStore } from './store';

export interface LauncherDeps {
  config: LauncherConfig;
  backend: SessionBackend;
  usermap: () => UserMap;
  instruments: () => readonly Instrument[];
  log: Logger;
}

export interface StartRequest {
  /** A usermap person id or local username. */
  user: string;
  app: string;
  /** Chosen by the caller to make a retried start idempotent-safe (a second start is refused); random when absent. */
  session?: string | undefined;
}

export interface SessionView {
  id: string;
  owner: string;
  username: string;
  app: string;
  state: Session['state'];
  host: string | undefined;
  port: number | undefined;
  created_at: string;
  ready_at: string | undefined;
  last_activity: string;
  ended_at: string | undefined;
  reason: string | undefined;
  /** Active sessions: when the maximum lifetime ends it, whatever its activity. */
  expires_at: string | undefined;
  /** Active sessions: when it is culled unless some activity is reported first. */
  idle_deadline: string | undefined;
}

export class Launcher {
  readonly store: SessionStore;
  private readonly config: LauncherConfig;
  private readonly backend: SessionBackend;
  private readonly log: Logger;
  private readonly inFlight = new Map<string, AbortController>();
  private timer: NodeJS.Timeout | undefined;
  private sweeping: Promise<void> | undefined;
  private readonly endListeners = new Set<(sessionId: string) => void>();

  constructor(private readonly deps: LauncherDeps) {
    this.config = deps.config;
    this.backend = deps.backend;
    this.log = deps.log;
    checkApps(deps.config, deps.backend.kind);
    this.store = new SessionStore(deps.config.database_file);
  }

  /** Reconciles with the backend, then starts the culling timer. */
  async open(): Promise<void> {
    await this.reconcile();
    this.timer = setInterval(() => void this.sweep(), this.config.cull_interval_ms);
    this.timer.unref();
  }

  closed = false;

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.timer) clearInterval(this.timer);
    for (const controller of this.inFlight.values()) controller.abort('stopped by the launcher shutting down');
    while (this.inFlight.size > 0 || this.sweeping) {
      await (this.sweeping ?? new Promise((r) => setTimeout(r, 20)));
    }
    this.store.close();
  }

  /** Called when a session stops being usable (before it is removed): terminals close, shells hang up. */
  onSessionEnd(listener: (sessionId: string) => void): void {
    this.endListeners.add(listener);
  }

  private ended(sessionId: string): void {
    for (const listener of this.endListeners) {
      try {
        listener(sessionId);
      } catch (err) {
        logError(this.log, err, 'a session-end listener failed', { session: sessionId });
      }
    }
  }

  resolveUser(user: string): LocalAccount {
    const map = this.deps.usermap();
    const person = map.person(user) ?? map.personByUsername(user);
    if (!person) {
      throw new AppError(`${user} is not in the usermap: no local account (uid) to run a session as`, {
        code: 'unknown_user',
        status: 404,
        publicMessage: 'Your account is not mapped to a local user on this server',
      });
    }
    if (person.status !== 'active') {
      throw new AppError(`${person.id} is ${person.status}`, { code: 'user_inactive', status: 403, publicMessage: 'Your account is not active' });
    }
    return accountOf(person);
  }

  app(id: string): AppConfig {
    const app = this.config.apps.find((a) => a.id === id);
    if (!app) throw new AppError(`no app ${id}`, { code: 'unknown_app', status: 404 });
    return app;
  }

  async start(req: StartRequest): Promise<{ session: SessionView; secret: string }> {
    const app = this.app(req.app);
    const account = this.resolveUser(req.user);
    const sessionId = req.session ?? randomBytes(8).toString('hex');
    if (!INSTRUMENT_ID.test(sessionId)) throw new AppError(`session id ${sessionId}: lowercase letters, digits and dashes`, { code: 'bad_request', status: 400 });
    await this.backend.preflight(account, app);
    const { plan, secret } = await this.plan(app, account, sessionId);
    const now = Date.now();
    this.store.insertStarting(
      { id: sessionId, owner: account.personId, username: account.username, uid: account.uid, app: app.id, backend: this.backend.kind, name: plan.name, host: plan.hostPort === undefined ? undefined : this.config.session_host, port: plan.hostPort, createdAt: now, lastActivity: now },
      { perUser: this.config.max_sessions_per_user, total: this.config.max_sessions_total },
    );
    const log = this.log.child({ user: account.username, session: sessionId, app: app.id });
    const controller = new AbortController();
    this.inFlight.set(sessionId, controller);
    try {
      log.info({ backend: this.backend.kind, mounts: plan.mounts.map((m) => `${m.source}:${m.destination}:${m.readOnly ? 'ro' : 'rw'}`) }, 'session starting');
      await this.launchAndWait(plan, this.config.session_host, plan.hostPort, controller.signal);
      this.store.transition(sessionId, 'running', { readyAt: Date.now() });
      log.info({ ms: Date.now() - now }, 'session ready');
      return { session: view(this.store.get(sessionId) as Session, app), secret };
    } catch (err) {
      await this.cleanUpFailedStart({ name: plan.name, uid: account.uid }, sessionId, err, log);
      throw err;
    } finally {
      this.inFlight.delete(sessionId);
    }
  }

  /** Everything the backend needs, decided before anything is recorded: mounts (which may refuse), port, secret. */
  private async plan(app: AppConfig, account: LocalAccount, sessionId: string): Promise<{ plan: LaunchPlan; secret: string }> {
    if (this.backend.kind === 'process') ensureProcessProjectFolder(this.config.projects_root, account.username);
    const { projectDir, mounts } = sessionMounts({
      projectsRoot: this.config.projects_root,
      rawDataRoots: this.config.raw_data_roots,
      account,
      usermap: this.deps.usermap(),
      instruments: this.deps.instruments(),
      mountInstruments: app.mount_instruments,
      checkOwner: this.backend.kind === 'podman',
      relabel: this.config.podman.relabel === 'none' ? undefined : this.config.podman.relabel,
    });
    const hostPort = needsPort(app) ? await allocatePort(this.config.session_host) : undefined;
    // Bridge publishes the app's fixed port on the allocated one; elsewhere the app binds the allocated port itself.
    const innerPort = this.backend.kind === 'podman' && app.network === 'bridge' ? app.port : hostPort;
    const secret = randomBytes(32).toString('base64url');
    const vars: Record<string, string> = { port: innerPort === undefined ? '' : String(innerPort), session: sessionId, user: account.username, project: this.backend.kind === 'podman' ? '/project' : projectDir };
    const plan: LaunchPlan = {
      sessionId,
      name: `cloudlet-${this.config.instance}-${sessionId}`,
      app,
      account,
      command: app.command.map((arg) => arg.replace(/\{(port|session|user|project)\}/g, (_m, key: string) => vars[key] ?? '')),
      env: {
        CLOUDLET_SESSION_ID: sessionId,
        CLOUDLET_SESSION_SECRET: secret,
        CLOUDLET_USER: account.username,
        ...(innerPort === undefined ? {} : { CLOUDLET_SESSION_PORT: String(innerPort) }),
      },
      labels: { [LABEL.launcher]: this.config.instance, [LABEL.owner]: account.personId, [LABEL.app]: app.id, [LABEL.session]: sessionId },
      mounts,
      projectDir,
      hostPort,
    };
    return { plan, secret };
  }

  private async launchAndWait(plan: LaunchPlan, host: string, port: number | undefined, signal: AbortSignal): Promise<void> {
    await this.backend.launch(plan);
    const ref = { name: plan.name, uid: plan.account.uid };
    const { app } = plan;
    const deadline = Date.now() + app.ready_timeout_ms;
    for (;;) {
      if (signal.aborted) throw new AppError(`session ${plan.sessionId} was ${String(signal.reason)} while starting; it was removed`, { code: 'start_aborted', status: 503 });
      const state = await this.backend.state(ref);
      if (!state?.running) {
        const how = !state ? 'disappeared' : exitReason(state, app);
        throw new AppError(`session ${plan.sessionId} ${how} before it was ready; it was removed`, {
          code: 'session_exited',
          status: 502,
          publicMessage: 'The session stopped while starting',
        });
      }
      if (await isReady(app, host, port)) return;
      if (Date.now() > deadline) {
        throw new AppError(`session ${plan.sessionId} (${app.id}) was not ready within ${app.ready_timeout_ms} ms (${describeReadiness(app, host, port)}); it was stopped and removed`, {
          code: 'session_not_ready',
          status: 504,
          publicMessage: 'The session did not become ready in time; it was stopped',
        });
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  private async cleanUpFailedStart(ref: SessionRef, sessionId: string, err: unknown, log: Logger): Promise<void> {
    try {
      await this.backend.remove(ref);
      this.store.transition(sessionId, 'failed', { reason: errorMessage(err), endedAt: Date.now() });
    } catch (cleanupErr) {
      // Left as `starting`: the next sweep or restart resolves it, so nothing is orphaned.
      logError(log, cleanupErr, 'could not remove a failed session; it will be retried');
    }
    log.warn({ code: (err as AppError).code, error: errorMessage(err) }, 'session failed to start');
  }

  get(id: string): Session | undefined {
    return this.store.get(id);
  }

  /** The API's view of a session, with the deadlines of its app. */
  view(s: Session): SessionView {
    return view(s, this.config.apps.find((a) => a.id === s.app));
  }

  list(owner?: string): Session[] {
    return this.store.list({ owner });
  }

  /** Stops and removes; false when the session was not active. */
  async stop(id: string, reason = 'stopped on request'): Promise<boolean> {
    const session = this.store.get(id);
    if (!session) throw new AppError(`no session ${id}`, { code: 'not_found', status: 404 });
    if (session.state === 'starting') {
      this.inFlight.get(id)?.abort(reason);
      return true;
    }
    if (session.state === 'running' && !this.store.transition(id, 'stopping', { reason })) return false;
    if (session.state !== 'running' && session.state !== 'stopping') return false;
    this.ended(id);
    await this.backend.remove({ name: session.name, uid: session.uid });
    this.store.transition(id, 'stopped', { endedAt: Date.now() });
    this.log.info({ session: id, user: session.username, reason }, 'session stopped');
    return true;
  }

  /** How a terminal enters a running session, with its owner to check against; undefined once it has ended. */
  entry(id: string): { owner: string; username: string; entry: SessionEntry } | undefined {
    const session = this.store.get(id);
    if (!session || session.state !== 'running') return undefined;
    return { owner: session.owner, username: session.username, entry: this.backend.entry({ name: session.name, uid: session.uid }) };
  }

  /** A last-activity report from the relay, the stream service or the terminal. */
  activity(id: string, at = Date.now()): boolean {
    return this.store.touch(id, at);
  }

  async logs(id: string, tail = 200): Promise<string> {
    const session = this.store.get(id);
    if (!session) throw new AppError(`no session ${id}`, { code: 'not_found', status: 404 });
    return this.backend.logs({ name: session.name, uid: session.uid }, tail);
  }

  /** One pass of the culler: idle and over-age sessions stopped, exited ones noticed, failed stops retried. */
  sweep(): Promise<void> {
    this.sweeping ??= this.sweepOnce().finally(() => {
      this.sweeping = undefined;
    });
    return this.sweeping;
  }

  private async sweepOnce(): Promise<void> {
    const now = Date.now();
    for (const s of this.store.list({ states: ['running', 'stopping'] })) {
      try {
        if (s.state === 'stopping') {
          await this.stop(s.id, s.reason);
          continue;
        }
        const app = this.config.apps.find((a) => a.id === s.app);
        const state = await this.backend.state({ name: s.name, uid: s.uid });
        let reason: string | undefined;
        if (!state) reason = 'the session disappeared from the backend';
        else if (!state.running) reason = exitReason(state, app);
        else if (app && app.idle_timeout_s > 0 && now - s.lastActivity > app.idle_timeout_s * 1000) reason = `idle for more than ${app.idle_timeout_s} s`;
        else if (app && app.max_lifetime_s > 0 && now - s.createdAt > app.max_lifetime_s * 1000) reason = `reached its maximum lifetime of ${app.max_lifetime_s} s`;
        if (reason) await this.stop(s.id, reason);
      } catch (err) {
        logError(this.log, err, 'culling pass failed for a session', { session: s.id });
      }
    }
  }

  /**
   * After a restart: a `starting` row means a start was cut short; its caller never got the
   * secret, so whatever exists is removed and the row marked failed. Running rows are adopted
   * when their session still runs. Anything labelled as ours without an active row is an
   * orphan and removed.
   */
  async reconcile(): Promise<void> {
    for (const s of this.store.list({ states: ACTIVE_STATES })) {
      if (this.inFlight.has(s.id)) continue;
      const ref = { name: s.name, uid: s.uid };
      if (s.state === 'starting') {
        const existed = (await this.backend.state(ref)) !== undefined;
        await this.backend.remove(ref);
        this.store.transition(s.id, 'failed', { reason: 'the launcher restarted while the session was starting', endedAt: Date.now() });
        this.log.warn({ session: s.id, user: s.username, existed }, 'interrupted start resolved: removed and marked failed');
      } else if (s.state === 'running' && (await this.backend.state(ref))?.running) {
        this.log.info({ session: s.id, user: s.username }, 'session adopted');
      } else {
        await this.stop(s.id, s.state === 'running' ? 'ended while the launcher was down' : (s.reason ?? 'stopped'));
      }
    }
    const active = new Set(this.store.list({ states: ['running'] }).map((s) => s.name));
    const uids = new Set([...this.store.list().map((s) => s.uid), ...this.deps.usermap().doc.people.map((p) => p.account.uid)]);
    for (const found of await this.backend.list([...uids])) {
      if (active.has(found.name) || this.inFlight.has(found.labels[LABEL.session] ?? '')) continue;
      await this.backend.remove({ name: found.name, uid: found.uid });
      this.log.warn({ name: found.name, session: found.labels[LABEL.session] }, 'orphan session removed');
    }
    this.log.info({ running: active.size }, 'reconciled with the backend');
  }
}

/**
 * The process backend runs every session as the launcher's own user, so there is no owner to
 * get wrong: its working folder is created on first use, which lets `npm start` work on a
 * fresh machine. Podman sessions still need a folder an administrator made and chowned. A name
 * already taken by a symlink or a file is left for the mount policy to refuse.
 */
function ensureProcessProjectFolder(root: string, username: string): void {
  fs.mkdirSync(root, { recursive: true, mode: 0o700 });
  const folder = path.join(root, username);
  if (!fs.lstatSync(folder, { throwIfNoEntry: false })) fs.mkdirSync(folder, { mode: 0o700 });
}

/**
 * Podman on cgroup v1 does not always set OOMKilled; a SIGKILL (137) the launcher did not send,
 * in a session with a memory limit, is the kernel's OOM killer in practice, and is reported so.
 */
function exitReason(state: RunState, app: AppConfig | undefined): string {
  if (state.oomKilled) return 'killed for exceeding its memory limit';
  if (state.exitCode === 137 && app && app.limits.memory_mb > 0) return `killed (SIGKILL, exit 137), most likely for exceeding its memory limit of ${app.limits.memory_mb} MiB`;
  return `exited with code ${state.exitCode ?? '?'}`;
}

function needsPort(app: AppConfig): boolean {
  return app.port !== undefined || app.readiness.type !== 'running';
}

async function isReady(app: AppConfig, host: string, port: number | undefined): Promise<boolean> {
  if (app.readiness.type === 'running' || port === undefined) return true;
  if (app.readiness.type === 'port') return portAccepts(host, port);
  return httpAnswers(host, port, app.readiness.path);
}

function describeReadiness(app: AppConfig, host: string, port: number | undefined): string {
  if (app.readiness.type === 'http') return `GET http://${host}:${port ?? '?'}${app.readiness.path} never answered below 500`;
  if (app.readiness.type === 'port') return `${host}:${port ?? '?'} never accepted a connection`;
  return 'never running';
}

/** Combinations that could never become ready are configuration errors, reported all at once at startup. */
function checkApps(config: LauncherConfig, backend: 'podman' | 'process'): void {
  const problems: string[] = [];
  const seen = new Set<string>();
  config.apps.forEach((app, i) => {
    const at = `launcher.apps[${i}] (${app.id})`;
    if (seen.has(app.id)) problems.push(`${at}: duplicate app id`);
    seen.add(app.id);
    if (backend !== 'podman') return;
    if (!app.image) problems.push(`${at}.image: required by the podman backend`);
    if (app.network === 'none' && needsPort(app)) problems.push(`${at}: network none has no port to check; use readiness {type: running} and no port`);
    if (app.network === 'bridge' && app.port === undefined) problems.push(`${at}.port: bridge networking publishes the app's port, so name it`);
  });
  if (problems.length > 0) throw new ConfigError('launcher config', problems);
}

/** `app`, when given, adds the deadlines its limits set. */
export function view(s: Session, app?: AppConfig): SessionView {
  const iso = (t: number | undefined): string | undefined => (t === undefined ? undefined : new Date(t).toISOString());
  const active = ACTIVE_STATES.includes(s.state);
  return {
    id: s.id,
    owner: s.owner,
    username: s.username,
    app: s.app,
    state: s.state,
    host: s.host,
    port: s.port,
    created_at: new Date(s.createdAt).toISOString(),
    ready_at: iso(s.readyAt),
    last_activity: new Date(s.lastActivity).toISOString(),
    ended_at: iso(s.endedAt),
    reason: s.reason,
    expires_at: active && app && app.max_lifetime_s > 0 ? iso(s.createdAt + app.max_lifetime_s * 1000) : undefined,
    idle_deadline: active && app && app.idle_timeout_s > 0 ? iso(s.lastActivity + app.idle_timeout_s * 1000) : undefined,
  };
}
