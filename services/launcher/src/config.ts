import { z } from 'zod';
import { INSTRUMENT_ID } from '@cloudlet/core';

const absolute = z.string().startsWith('/', 'an absolute path');

const readiness = z.discriminatedUnion('type', [
  /** The session's port accepts a TCP connection. */
  z.strictObject({ type: z.literal('port') }),
  /** GET on the session's port answers with a status below 500. */
  z.strictObject({ type: z.literal('http'), path: z.string().startsWith('/').default('/') }),
  /** The process (container) is running: for apps with no network, reached through exec only. */
  z.strictObject({ type: z.literal('running') }),
]);

const limits = z
  .strictObject({
    /** CPUs as a fraction (0.5 = half a core); 0 = no limit. */
    cpus: z.number().min(0).max(1024).default(0),
    /** Memory in MiB; 0 = no limit. */
    memory_mb: z.number().int().min(0).default(0),
    /** Processes and threads; 0 = no limit. */
    pids: z.number().int().min(0).default(0),
  })
  .prefault({});

const app = z.strictObject({
  id: z.string().regex(INSTRUMENT_ID, 'lowercase letters, digits and dashes'),
  /** What people see in the portal's session list; the id when absent. */
  title: z.string().min(1).optional(),
  /** Podman backend: the image (built by scripts/build-images, or imported in tests). */
  image: z.string().min(1).optional(),
  /**
   * The command as an argument array; `{port}`, `{session}`, `{user}` and `{project}` are
   * substituted per argument, never through a shell.
   */
  command: z.array(z.string().min(1)).min(1),
  /** The port the app listens on inside the session; omit for apps reached by exec only. */
  port: z.number().int().min(1).max(65535).optional(),
  readiness: readiness.default({ type: 'port' }),
  ready_timeout_ms: z.number().int().min(100).default(60_000),
  /** none: no network (terminal only); host: shares the host's (the port is allocated per session); bridge: published on loopback. */
  network: z.enum(['none', 'host', 'bridge']).default('none'),
  limits,
  /** Mount the raw-data roots of the instruments the user holds a role on, read-only, under /data/<instrument>. */
  mount_instruments: z.boolean().default(false),
  /** Seconds without an activity report before the session is stopped; 0 = never. */
  idle_timeout_s: z.number().int().min(0).default(3600),
  /** Seconds after start when the session is stopped whatever its activity; 0 = never. */
  max_lifetime_s: z.number().int().min(0).default(12 * 3600),
});

const podman = z
  .strictObject({
    /** rootful: one root podman, containers run as the user's uid:gid; rootless: each user's own podman, --userns=keep-id. */
    mode: z.enum(['rootful', 'rootless']).default('rootful'),
    /** The root podman's API socket (rootful). */
    socket: absolute.default('/run/podman/podman.sock'),
    /** Each user's API socket (rootless); `{uid}` is replaced. */
    rootless_socket: absolute.default('/run/user/{uid}/podman/podman.sock'),
    /** Seconds podman waits after SIGTERM before SIGKILL on stop. */
    stop_timeout_s: z.number().int().min(0).default(10),
    /** SELinux relabel for bind mounts: z (shared), Z (private) or none (hosts without SELinux). */
    relabel: z.enum(['z', 'Z', 'none']).default('z'),
  })
  .prefault({});

/**
 * The browser terminal's own listener: browsers connect to it directly (the portal hands them a
 * one-time ticket), so it is the one launcher port a browser reaches, and the API stays on
 * loopback or a socket.
 */
const terminal = z.strictObject({
  listen_host: z.string().min(1).default('127.0.0.1'),
  listen_port: z.number().int().min(0).max(65535).default(8096),
  /** The base URL browsers reach the listener at (behind a TLS proxy: wss://host/path); default ws://<listen_host>:<port>. */
  public_url: z.string().regex(/^wss?:\/\//, 'a ws:// or wss:// URL').optional(),
  /** Origins whose pages may open a terminal: the portal's public origin (or OOD's). */
  allowed_origins: z.array(z.url()).min(1),
  /** How long a ticket waits for its page to connect. */
  ticket_ttl_s: z.number().int().min(1).max(600).default(60),
  /** The shell a terminal runs in the session, as an argument vector. */
  shell: z.array(z.string().min(1)).min(1).default(['bash', '-l']),
  /** While a terminal is attached its session counts as active; reported this often. */
  activity_interval_ms: z.number().int().min(50).default(30_000),
});

/** The `launcher` section of cloudlet.yml. */
export const launcherSection = z
  .strictObject({
    backend: z.enum(['process', 'podman']).default('process'),
    /** Names this launcher's containers (label cloudlet.launcher), so two launchers on one podman never adopt each other's. */
    instance: z.string().regex(INSTRUMENT_ID).default('default'),
    podman,
    apps: z.array(app).default([]),
    /** Each user's project folder is `<projects_root>/<username>`, mounted read-write at /project. */
    projects_root: z.string().min(1).default('./var/projects'),
    /** Instrument data roots must resolve (symlinks followed) under one of these to be mounted. */
    raw_data_roots: z.array(z.string().min(1)).default([]),
    max_sessions_per_user: z.number().int().min(1).default(2),
    max_sessions_total: z.number().int().min(1).default(50),
    /** How often idle and lifetime limits are checked, and exited sessions noticed. */
    cull_interval_ms: z.number().int().min(50).default(30_000),
    database_file: z.string().min(1).default('./var/launcher/sessions.sqlite'),
    /** Process backend: session logs and pid records. */
    state_dir: z.string().min(1).default('./var/launcher'),
    /** The bearer token callers (portal, relay, stream, CLI) present; created on first start. */
    token_file: z.string().min(1).default('./var/launcher/api-token'),
    listen_host: z.string().min(1).default('127.0.0.1'),
    listen_port: z.number().int().min(0).max(65535).default(8095),
    /** A unix socket instead of TCP (mode 660); wins over listen_host/listen_port when set. */
    listen_socket: z.string().min(1).optional(),
    /** The host address sessions are reached on (host and bridge network). */
    session_host: z.string().min(1).default('127.0.0.1'),
    /** The browser terminal; without it the terminal route answers 404. */
    terminal: terminal.optional(),
  })
  .prefault({});

export type LauncherConfig = z.infer<typeof launcherSection>;
export type AppConfig = LauncherConfig['apps'][number];
export type PodmanConfig = LauncherConfig['podman'];
export type Limits = AppConfig['limits'];
export type TerminalConfig = NonNullable<LauncherConfig['terminal']>;
