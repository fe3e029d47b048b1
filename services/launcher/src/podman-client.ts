/**
 * A small client for podman's libpod REST API over its unix socket (node:http, no CLI and no
 * output parsing). It speaks only what the launcher needs and turns podman's failures into
 * AppErrors an operator can act on: the socket not answering, an image that is not there, a
 * name already taken.
 */
import http from 'node:http';
import { AppError } from '@cloudlet/core';

export const API_PREFIX = '/v4.0.0/libpod';

export interface Mount {
  source: string;
  destination: string;
  readOnly: boolean;
  /** SELinux relabel: z shares the label between containers, Z makes it private. */
  relabel?: 'z' | 'Z' | undefined;
}

export type Identity =
  /** Rootful: the process runs as the user's own uid/gid (and supplementary gids). */
  | { kind: 'user'; uid: number; gid: number; groups: readonly number[] }
  /** Rootless: the user's podman maps its own uid into the container (--userns=keep-id). */
  | { kind: 'keep-id' };

export interface PortMapping {
  hostIp: string;
  hostPort: number;
  containerPort: number;
}

export interface ContainerSpec {
  name: string;
  image: string;
  command: readonly string[];
  identity: Identity;
  mounts: readonly Mount[];
  network: 'none' | 'host' | 'bridge';
  ports?: readonly PortMapping[];
  /** 0 or absent: no limit. */
  limits?: { cpus?: number; memoryBytes?: number; pids?: number };
  labels: Record<string, string>;
  env: Record<string, string>;
  workdir?: string;
  stopTimeoutS?: number;
}

export interface ContainerSummary {
  id: string;
  name: string;
  state: string;
  labels: Record<string, string>;
}

export interface ContainerState {
  id: string;
  name: string;
  status: string;
  running: boolean;
  exitCode: number;
  oomKilled: boolean;
  pid: number;
  startedAt: string;
  labels: Record<string, string>;
  user: string;
  mounts: { source: string; destination: string; readOnly: boolean }[];
}

export interface PodmanInfo {
  rootless: boolean;
  cgroupVersion: string;
  cgroupControllers: string[];
  version: string;
}

interface Response {
  status: number;
  body: Buffer;
}

export interface PodmanClientOptions {
  socketPath: string;
  /** Per request; a wait or a stop may take longer and pass their own. */
  timeoutMs?: number;
}

export class PodmanClient {
  readonly socketPath: string;
  private readonly timeoutMs: number;

  constructor(options: PodmanClientOptions) {
    this.socketPath = options.socketPath;
    this.timeoutMs = options.timeoutMs ?? 30_000;
  }

  async ping(): Promise<void> {
    await this.expect('GET', '/_ping', undefined, [200]);
  }

  async info(): Promise<PodmanInfo> {
    const res = await this.expect('GET', '/info', undefined, [200]);
    const info = json(res) as {
      host?: { security?: { rootless?: boolean }; cgroupVersion?: string; cgroupControllers?: string[] };
      version?: { Version?: string };
    };
    return {
      rootless: info.host?.security?.rootless === true,
      cgroupVersion: info.host?.cgroupVersion ?? 'unknown',
      cgroupControllers: info.host?.cgroupControllers ?? [],
      version: info.version?.Version ?? 'unknown',
    };
  }

  async imageExists(image: string): Promise<boolean> {
    const res = await this.request('GET', `/images/${encodeURIComponent(image)}/exists`);
    if (res.status === 204) return true;
    if (res.status === 404) return false;
    throw this.failure(res, `checking image ${image}`);
  }

  /** Creates the container; returns its id and podman's warnings (limits it could not apply land there). */
  async create(spec: ContainerSpec): Promise<{ id: string; warnings: string[] }> {
    const res = await this.request('POST', '/containers/create', toSpecGenerator(spec));
    if (res.status === 201) {
      const body = json(res) as { Id: string; Warnings?: string[] | null };
      return { id: body.Id, warnings: body.Warnings ?? [] };
    }
    const message = errorText(res);
    if (res.status === 404 && /image/i.test(message)) {
      throw new AppError(`podman has no image ${spec.image} (${message}); build or import it first`, {
        code: 'image_missing',
        status: 500,
        publicMessage: 'The application image is not installed on this server',
      });
    }
    if (res.status === 409) {
      throw new AppError(`a container named ${spec.name} already exists`, { code: 'name_conflict', status: 409 });
    }
    throw this.failure(res, `creating ${spec.name}`);
  }

  async start(id: string): Promise<void> {
    // 304: already running, which is what we asked for.
    await this.expect('POST', `/containers/${enc(id)}/start`, undefined, [204, 304]);
  }

  /** undefined when the container does not exist. */
  async inspect(id: string): Promise<ContainerState | undefined> {
    const res = await this.request('GET', `/containers/${enc(id)}/json`);
    if (res.status === 404) return undefined;
    if (res.status !== 200) throw this.failure(res, `inspecting ${id}`);
    return toState(json(res) as RawInspect);
  }

  async list(labels: Record<string, string>): Promise<ContainerSummary[]> {
    const filters = JSON.stringify({ label: Object.entries(labels).map(([k, v]) => `${k}=${v}`) });
    const res = await this.expect('GET', `/containers/json?all=true&filters=${encodeURIComponent(filters)}`, undefined, [200]);
    return (json(res) as RawSummary[]).map((c) => ({ id: c.Id, name: c.Names?.[0] ?? '', state: c.State, labels: c.Labels ?? {} }));
  }

  /** Stops (SIGTERM, then SIGKILL after timeoutS); a missing or stopped container is not an error. */
  async stop(id: string, timeoutS = 10): Promise<void> {
    const res = await this.request('POST', `/containers/${enc(id)}/stop?timeout=${timeoutS}`, undefined, (timeoutS + 30) * 1000);
    if (![204, 304, 404].includes(res.status)) throw this.failure(res, `stopping ${id}`);
  }

  /** Removes (forcibly, with anonymous volumes); a missing container is not an error. */
  async remove(id: string): Promise<void> {
    const res = await this.request('DELETE', `/containers/${enc(id)}?force=true&v=true`, undefined, 60_000);
    if (![200, 204, 404].includes(res.status)) throw this.failure(res, `removing ${id}`);
  }

  async logs(id: string, tail = 200): Promise<string> {
    const res = await this.request('GET', `/containers/${enc(id)}/logs?stdout=true&stderr=true&tail=${tail}`);
    if (res.status === 404) throw new AppError(`no container ${id}`, { code: 'not_found', status: 404 });
    if (res.status !== 200) throw this.failure(res, `reading logs of ${id}`);
    return demultiplex(res.body);
  }

  /** Waits until the container has stopped; returns its exit code. */
  async wait(id: string, timeoutMs = 600_000): Promise<number> {
    const res = await this.request('POST', `/containers/${enc(id)}/wait?condition=stopped&condition=exited`, undefined, timeoutMs);
    if (res.status !== 200) throw this.failure(res, `waiting for ${id}`);
    return Number(res.body.toString('utf8').trim());
  }

  private async expect(method: string, path: string, body: unknown, ok: number[]): Promise<Response> {
    const res = await this.request(method, path, body);
    if (!ok.includes(res.status)) throw this.failure(res, `${method} ${path.split('?')[0] ?? path}`);
    return res;
  }

  private failure(res: Response, what: string): AppError {
    return new AppError(`podman failed ${what}: HTTP ${res.status}: ${errorText(res)}`, {
      code: 'podman_failed',
      status: 502,
      publicMessage: 'The container engine refused the request',
    });
  }

  request(method: string, path: string, body?: unknown, timeoutMs = this.timeoutMs): Promise<Response> {
    const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    return new Promise((resolve, reject) => {
      const req = http.request(
        {
          socketPath: this.socketPath,
          path: `${API_PREFIX}${path}`,
          method,
          headers: payload ? { 'content-type': 'application/json', 'content-length': payload.length } : {},
          timeout: timeoutMs,
          // No keep-alive pool: an idle pooled socket would keep a CLI or a test process alive.
          agent: false,
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks) }));
          res.on('error', reject);
        },
      );
      req.on('timeout', () => req.destroy(Object.assign(new Error('timed out'), { code: 'ETIMEDOUT' })));
      req.on('error', (err: NodeJS.ErrnoException) => reject(this.socketError(err, method, path)));
      req.end(payload);
    });
  }

  private socketError(err: NodeJS.ErrnoException, method: string, path: string): Error {
    if (err.code === 'ENOENT' || err.code === 'ECONNREFUSED' || err.code === 'EACCES' || err.code === 'ETIMEDOUT' || err.code === 'ECONNRESET') {
      const why = err.code === 'ENOENT' ? 'no such socket' : err.code === 'EACCES' ? 'permission denied' : err.code === 'ETIMEDOUT' ? `no answer to ${method} ${path.split('?')[0] ?? ''}` : err.code;
      return new AppError(`podman's API socket at ${this.socketPath} is not answering (${why}): start podman.socket or \`podman system service\``, {
        code: 'podman_unavailable',
        status: 503,
        publicMessage: 'The container engine is not available; try again later',
        cause: err,
      });
    }
    return err;
  }
}

function enc(id: string): string {
  return encodeURIComponent(id);
}

function json(res: Response): unknown {
  return JSON.parse(res.body.toString('utf8')) as unknown;
}

function errorText(res: Response): string {
  const text = res.body.toString('utf8');
  try {
    const body = JSON.parse(text) as { message?: string; cause?: string };
    return body.message ?? body.cause ?? text;
  } catch {
    return text.trim().slice(0, 500);
  }
}

/** Our spec in podman's SpecGenerator terms (pkg/specgen, the body of POST /libpod/containers/create). */
export function toSpecGenerator(spec: ContainerSpec): Record<string, unknown> {
  const gen: Record<string, unknown> = {
    name: spec.name,
    image: spec.image,
    command: spec.command,
    labels: spec.labels,
    env: spec.env,
    mounts: spec.mounts.map((m) => ({
      type: 'bind',
      source: m.source,
      destination: m.destination,
      options: ['rbind', m.readOnly ? 'ro' : 'rw', ...(m.relabel ? [m.relabel] : [])],
    })),
    netns: { nsmode: spec.network },
    no_new_privileges: true,
    // The session is the user's own process: it needs no capability, and dropping them all
    // keeps a setuid binary in the image from handing any back.
    cap_drop: ['ALL'],
    // Podman's default is to kill nothing when the launcher disappears; sessions are reaped by
    // the launcher's reconcile instead, so no restart policy either.
    restart_policy: 'no',
    stop_timeout: spec.stopTimeoutS ?? 10,
  };
  if (spec.workdir) gen.work_dir = spec.workdir;
  if (spec.identity.kind === 'user') {
    gen.user = `${spec.identity.uid}:${spec.identity.gid}`;
    if (spec.identity.groups.length > 0) gen.groups = spec.identity.groups.map(String);
  } else {
    gen.userns = { nsmode: 'keep-id' };
  }
  if (spec.ports && spec.ports.length > 0) {
    gen.portmappings = spec.ports.map((p) => ({ host_ip: p.hostIp, host_port: p.hostPort, container_port: p.containerPort, protocol: 'tcp' }));
  }
  const resources: Record<string, unknown> = {};
  const limits = spec.limits ?? {};
  if (limits.memoryBytes) {
    // Swap equal to memory: the limit is a limit, not a hint to page out.
    resources.memory = { limit: limits.memoryBytes, swap: limits.memoryBytes };
  }
  if (limits.cpus) resources.cpu = { period: 100_000, quota: Math.round(limits.cpus * 100_000) };
  if (limits.pids) resources.pids = { limit: limits.pids };
  if (Object.keys(resources).length > 0) gen.resource_limits = resources;
  return gen;
}

interface RawSummary {
  Id: string;
  Names?: string[];
  State: string;
  Labels?: Record<string, string> | null;
}

interface RawInspect {
  Id: string;
  Name: string;
  State: { Status: string; Running: boolean; ExitCode: number; OOMKilled: boolean; Pid: number; StartedAt: string };
  Config: { Labels?: Record<string, string> | null; User?: string };
  Mounts?: { Source: string; Destination: string; RW: boolean }[] | null;
}

function toState(raw: RawInspect): ContainerState {
  return {
    id: raw.Id,
    name: raw.Name,
    status: raw.State.Status,
    running: raw.State.Running,
    exitCode: raw.State.ExitCode,
    oomKilled: raw.State.OOMKilled,
    pid: raw.State.Pid,
    startedAt: raw.State.StartedAt,
    labels: raw.Config.Labels ?? {},
    user: raw.Config.User ?? '',
    mounts: (raw.Mounts ?? []).map((m) => ({ source: m.Source, destination: m.Destination, readOnly: !m.RW })),
  };
}

/**
 * Without a TTY, podman frames log output like docker: 1 byte stream, 3 zero bytes, a 4-byte
 * big-endian length, then the payload. Anything that does not look framed is returned as is.
 */
export function demultiplex(buf: Buffer): string {
  const parts: Buffer[] = [];
  let at = 0;
  while (at + 8 <= buf.length) {
    const stream = buf[at];
    if ((stream !== 0 && stream !== 1 && stream !== 2) || buf[at + 1] !== 0 || buf[at + 2] !== 0 || buf[at + 3] !== 0) {
      return buf.toString('utf8');
    }
    const size = buf.readUInt32BE(at + 4);
    parts.push(buf.subarray(at + 8, at + 8 + size));
    at += 8 + size;
  }
  if (at !== buf.length) return buf.toString('utf8');
  return Buffer.concat(parts).toString('utf8');
}
