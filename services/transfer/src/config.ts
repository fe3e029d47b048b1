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
});

/** The `transfer` section of cloudlet.yml. */
export const transferSection = z
  .strictObject({
    clusters: z.array(cluster).default([]),
    /** Local sources must resolve (symlinks followed) under one of these. */
    local_roots: z.array(z.string().min(1)).default(['./var/stream/output']),
    ledger_file: z.string().min(1).default('./var/transfer/queue.sqlite'),
    /** Files in flight at once within a job. */
    parallel: z.number().int().min(1).max(64).default(4),
    /** rsync's --bwlimit per file in flight, KiB/s; 0 means no cap. */
    bandwidth_kibps: z.number().int().min(0).default(0),
    /** Sends per file before it is marked failed (a verify mismatch or a dropped link counts one). */
    retries: z.number().int().min(1).max(100).default(3),
    /** First backoff after a failed round; doubles each round. */
    retry_backoff_ms: z.number().int().min(0).default(2000),
    listen_host: z.string().min(1).default('127.0.0.1'),
    listen_port: z.number().int().min(0).max(65535).default(8094),
  })
  .prefault({});

export type TransferConfig = z.infer<typeof transferSection>;
export type ClusterConfig = TransferConfig['clusters'][number];
