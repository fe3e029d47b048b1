/**
 * What the launcher asks of whatever runs sessions: podman containers in production, plain
 * child processes on a machine without podman. Both answer the same calls so the launcher's
 * rules (caps, readiness, culling, reconcile after a restart) are written and tested once.
 */
import type { LocalAccount } from '@cloudlet/usermap';
import type { AppConfig } from './config';
import type { Mount } from './podman-client';

export const LABEL = {
  launcher: 'cloudlet.launcher',
  owner: 'cloudlet.owner',
  app: 'cloudlet.app',
  session: 'cloudlet.session',
} as const;

export interface LaunchPlan {
  sessionId: string;
  /** The container's (or process record's) name: unique per launcher instance and session. */
  name: string;
  app: AppConfig;
  account: LocalAccount;
  command: string[];
  /** Holds the session secret: passed in the environment, never in argv. */
  env: Record<string, string>;
  labels: Record<string, string>;
  mounts: Mount[];
  projectDir: string;
  /** The port on the host the session is reached at, when it has one. */
  hostPort: number | undefined;
}

/** Which backend instance holds a session: rootless podman has one per user. */
export interface SessionRef {
  name: string;
  uid: number;
}

export interface RunState {
  running: boolean;
  exitCode?: number | undefined;
  oomKilled?: boolean | undefined;
}

export interface FoundSession {
  name: string;
  uid: number;
  labels: Record<string, string>;
  running: boolean;
}

/**
 * How a terminal enters a running session. Podman: `podman --url <engine> exec -it <container>`
 * (the remote client reaches a user's rootless engine from root without becoming the user);
 * process: a shell as the launcher's user in the project folder.
 */
export type SessionEntry = { kind: 'podman'; engineUrl: string; container: string } | { kind: 'process'; cwd: string };

export interface SessionBackend {
  readonly kind: 'podman' | 'process';
  /** Refuses, before anything is created, what this backend cannot do for this user and app. */
  preflight(account: LocalAccount, app: AppConfig): Promise<void>;
  /** Creates and starts; on failure leaves nothing behind that `remove` would not clear. */
  launch(plan: LaunchPlan): Promise<void>;
  /** undefined: no such session in the backend. */
  state(ref: SessionRef): Promise<RunState | undefined>;
  /** Everything this launcher instance runs, found by its labels; `uids` names the per-user engines to ask (rootless). */
  list(uids: readonly number[]): Promise<FoundSession[]>;
  /** Stops and removes; a session that is already gone is not an error. */
  remove(ref: SessionRef): Promise<void>;
  logs(ref: SessionRef, tail: number): Promise<string>;
  entry(ref: SessionRef): SessionEntry;
}
