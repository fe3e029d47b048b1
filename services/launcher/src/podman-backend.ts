/**
 * Sessions as podman containers, over the REST API. Rootful: one root podman, the container's
 * process runs as the user's uid:gid (plus supplementary gids). Rootless: each user's own
 * podman (its socket under /run/user/<uid>), --userns=keep-id so the user's uid inside is the
 * user's uid outside; bridge networking is refused there (no slirp4netns on these hosts).
 */
import fs from 'node:fs';
import type { LocalAccount } from '@cloudlet/usermap';
import { AppError } from '@cloudlet/core';
import { type FoundSession, LABEL, type LaunchPlan, type RunState, type SessionBackend, type SessionEntry, type SessionRef } from './backend';
import type { AppConfig, PodmanConfig } from './config';
import { checkHostAccount, checkSubordinateIds, groupIds } from './host-ids';
import { type ContainerSpec, PodmanClient, type PodmanInfo } from './podman-client';

export interface PodmanBackendOptions {
  config: PodmanConfig;
  instance: string;
  /** For tests: where subordinate ids are read. */
  subIdFiles?: { subuid: string; subgid: string };
}

export class PodmanBackend implements SessionBackend {
  readonly kind = 'podman';
  private readonly clients = new Map<string, PodmanClient>();
  /** Promises, not results: twenty concurrent first starts would otherwise ask podman's slow /info twenty times. */
  private readonly infos = new Map<string, Promise<PodmanInfo>>();

  constructor(private readonly options: PodmanBackendOptions) {}

  client(uid: number): PodmanClient {
    const { config } = this.options;
    const socketPath = config.mode === 'rootful' ? config.socket : config.rootless_socket.replaceAll('{uid}', String(uid));
    let client = this.clients.get(socketPath);
    if (!client) {
      client = new PodmanClient({ socketPath });
      this.clients.set(socketPath, client);
    }
    return client;
  }

  async preflight(account: LocalAccount, app: AppConfig): Promise<void> {
    const rootless = this.options.config.mode === 'rootless';
    if (!app.image) throw new AppError(`app ${app.id} has no image; the podman backend needs one`, { code: 'config_invalid' });
    if (rootless) {
      checkHostAccount(account);
      checkSubordinateIds(account, this.options.subIdFiles);
      if (app.network === 'bridge') {
        throw new AppError(`app ${app.id} asks for bridge networking, which rootless podman cannot give here (no slirp4netns); use none or host`, {
          code: 'unsupported_network',
          status: 500,
          publicMessage: 'This application cannot run on this server',
        });
      }
    } else {
      groupIds(account);
    }
    const client = this.client(account.uid);
    const info = await this.info(client);
    checkLimitsEnforceable(app, info);
    if (!(await client.imageExists(app.image))) {
      throw new AppError(`podman at ${client.socketPath} has no image ${app.image}; build or import it first`, {
        code: 'image_missing',
        status: 500,
        publicMessage: 'The application image is not installed on this server',
      });
    }
  }

  private info(client: PodmanClient): Promise<PodmanInfo> {
    let info = this.infos.get(client.socketPath);
    if (!info) {
      info = client.info();
      this.infos.set(client.socketPath, info);
      // A failed ask (podman down) is not remembered: the next start asks again.
      info.catch(() => this.infos.delete(client.socketPath));
    }
    return info;
  }

  async launch(plan: LaunchPlan): Promise<void> {
    const { config } = this.options;
    const client = this.client(plan.account.uid);
    const limits = plan.app.limits;
    const spec: ContainerSpec = {
      name: plan.name,
      image: plan.app.image ?? '',
      command: plan.command,
      identity: config.mode === 'rootful' ? { kind: 'user', uid: plan.account.uid, gid: plan.account.gid, groups: groupIds(plan.account) } : { kind: 'keep-id' },
      mounts: plan.mounts,
      network: plan.app.network,
      ports:
        plan.app.network === 'bridge' && plan.hostPort !== undefined && plan.app.port !== undefined
          ? [{ hostIp: '127.0.0.1', hostPort: plan.hostPort, containerPort: plan.app.port }]
          : [],
      limits: { cpus: limits.cpus, memoryBytes: limits.memory_mb * 1024 * 1024, pids: limits.pids },
      labels: plan.labels,
      // The user has no passwd entry in the image; give shells and tools a writable home.
      env: { HOME: '/project', ...plan.env },
      workdir: '/project',
      stopTimeoutS: config.stop_timeout_s,
    };
    const created = await client.create(spec);
    // Podman applies what it can and reports the rest as warnings (cgroup v1 rootless drops
    // every limit this way); a session with a limit silently missing must not run.
    const ignored = created.warnings.filter((w) => /limit|cgroup|resource|swap|memory|cpu|pids/i.test(w));
    if (ignored.length > 0) {
      await client.remove(created.id);
      throw new AppError(`podman cannot enforce the limits of app ${plan.app.id} here: ${ignored.join('; ')}`, {
        code: 'limits_unenforceable',
        status: 500,
        publicMessage: 'This server cannot enforce the resource limits of this application',
      });
    }
    await client.start(created.id);
  }

  async state(ref: SessionRef): Promise<RunState | undefined> {
    const state = await this.client(ref.uid).inspect(ref.name);
    if (!state) return undefined;
    return { running: state.running, exitCode: state.running ? undefined : state.exitCode, oomKilled: state.oomKilled };
  }

  async list(uids: readonly number[]): Promise<FoundSession[]> {
    const targets = this.options.config.mode === 'rootful' ? [0] : [...new Set(uids)];
    const found: FoundSession[] = [];
    for (const uid of targets) {
      const client = this.client(uid);
      // A user whose podman is not running has no containers to find.
      if (this.options.config.mode === 'rootless' && !fs.existsSync(client.socketPath)) continue;
      const containers = await client.list({ [LABEL.launcher]: this.options.instance });
      for (const c of containers) found.push({ name: c.name, uid, labels: c.labels, running: c.state === 'running' });
    }
    return found;
  }

  async remove(ref: SessionRef): Promise<void> {
    const client = this.client(ref.uid);
    await client.stop(ref.name, this.options.config.stop_timeout_s);
    await client.remove(ref.name);
  }

  logs(ref: SessionRef, tail: number): Promise<string> {
    return this.client(ref.uid).logs(ref.name, tail);
  }

  entry(ref: SessionRef): SessionEntry {
    return { kind: 'podman', engineUrl: `unix://${this.client(ref.uid).socketPath}`, container: ref.name };
  }
}

/**
 * Limits the kernel cannot enforce are refused before the container exists: rootless podman on
 * cgroup v1 drops them all, and a controller missing from the hierarchy drops its own.
 */
export function checkLimitsEnforceable(app: AppConfig, info: PodmanInfo): void {
  const wanted: [string, string, boolean][] = [
    ['memory_mb', 'memory', app.limits.memory_mb > 0],
    ['cpus', 'cpu', app.limits.cpus > 0],
    ['pids', 'pids', app.limits.pids > 0],
  ];
  const asked = wanted.filter(([, , on]) => on);
  if (asked.length === 0) return;
  if (info.rootless && info.cgroupVersion === 'v1') {
    throw new AppError(`app ${app.id} sets ${asked.map(([k]) => k).join(', ')}, but rootless podman on cgroup v1 cannot enforce limits; use cgroup v2 with delegation, rootful mode, or drop the limits`, {
      code: 'limits_unenforceable',
      status: 500,
      publicMessage: 'This server cannot enforce the resource limits of this application',
    });
  }
  const missing = asked.filter(([, controller]) => !info.cgroupControllers.includes(controller));
  if (missing.length > 0) {
    throw new AppError(`app ${app.id} sets ${missing.map(([k]) => k).join(', ')}, but the cgroup controller(s) ${missing.map(([, c]) => c).join(', ')} are not available to podman here`, {
      code: 'limits_unenforceable',
      status: 500,
      publicMessage: 'This server cannot enforce the resource limits of this application',
    });
  }
}
