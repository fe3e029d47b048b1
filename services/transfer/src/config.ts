import { z } from 'zod';
import { INSTRUMENT_ID } from '@cloudlet/core';

const absolute = z.string().startsWith('/', 'an absolute path');

const cluster = z.strictObject({
  /** The name the usermap's `people[].clusters[].cluster` uses for this cluster. */
  id: z.string().regex(INSTRUMENT_ID, 'lowercase letters, digits and dashes'),
  host: z.string().min(1),
  port: z.number().int().min(1).max(65535).default(22),
  /** A known_hosts file holding the cluster's host key: the only key accepted. */
  known_hosts_file: absolute,
  /** The service's private SSH key (a secret: mode 600, readable by this service only). */
  key_file: absolute,
  /** Remote destinations must lie under one of these (checked textually; see remote-path.ts). */
  allowed_remote_roots: z.array(absolute).min(1),
  /**
   * Environment for the Slurm commands run there over SSH (e.g. SLURM_CONF, PATH), passed as
   * `env NAME=value sbatch ...`: sshd drops client-sent variables unless AcceptEnv allows them.
   */
  slurm_env: z.record(z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'an environment variable name'), z.string().refine((v) => !/[\0\n]/.test(v), 'no NUL or newline')).default({}),
});

/** Batch jobs on the clusters, from job templates (remote-jobs.ts). */
const remoteJobs = z
  .strictObject({
    /** Site-provided handlebars job templates, `<name>.hbs`; read again on every submission. */
    templates_dir: z.string().min(1).default('./etc/transfer/job-templates'),
    /** How often squeue is asked about the jobs still queued or running. */
    poll_interval_ms: z.number().int().min(100).default(10_000),
    /** The most one remote command (ssh login included) may take. */
    command_timeout_ms: z.number().int().min(1000).default(30_000),
  })
  .prefault({});

/** Follow mode: send pre-processing products as the stream service finishes them. */
const follow = z
  .strictObject({
    /** The stream service (its /api/events and /api/movies). */
    stream_url: z.url().default('http://127.0.0.1:8093'),
    /** The stream's `output_dir`: where a movie's output folder lies. Must be under local_roots. */
    output_root: z.string().min(1).default('./var/stream/output'),
    /** Wait before reconnecting after the event stream dropped. */
    reconnect_ms: z.number().int().min(10).default(2000),
  })
  .prefault({});

/** The `transfer` section of cloudlet.yml. */
export const transferSection = z
  .strictObject({
    clusters: z.array(cluster).default([]),
    /** Local sources must resolve (symlinks followed) under one of these. */
    local_roots: z.array(z.string().min(1)).default(['./var/stream/output']),
    ledger_file: z.string().min(1).default('./var/transfer/queue.sqlite'),
    /** rsync processes in flight at once within a job (a big file has one to itself; small files share one). */
    parallel: z.number().int().min(1).max(64).default(4),
    /** The cap for one job, KiB/s, shared evenly by its rsync processes in flight; 0 means no cap. */
    bandwidth_kibps: z.number().int().min(0).default(0),
    /** Sends per file before it is marked failed (a verify mismatch or a dropped link counts one). */
    retries: z.number().int().min(1).max(100).default(3),
    /** First backoff after a failed round; doubles each round. */
    retry_backoff_ms: z.number().int().min(0).default(2000),
    /** A send that moves nothing for this long is cut (rsync --timeout) and retried; the retry resumes it. */
    io_timeout_s: z.number().int().min(1).max(3600).default(60),
    listen_host: z.string().min(1).default('127.0.0.1'),
    listen_port: z.number().int().min(0).max(65535).default(8094),
    remote_jobs: remoteJobs,
    follow,
  })
  .prefault({});

export type TransferConfig = z.infer<typeof transferSection>;
export type ClusterConfig = TransferConfig['clusters'][number];
