import { z } from 'zod';

const root = z.strictObject({
  path: z.string().min(1),
  /** event: inotify (local disks); poll: network mounts (CIFS, NFS), where events never come. */
  mode: z.enum(['event', 'poll']).default('event'),
  include: z.array(z.string().min(1)).default(['**/*.mrc', '**/*.mrcs', '**/*.tif', '**/*.tiff', '**/*.eer']),
});

/** The `stream` section of cloudlet.yml. */
export const streamSection = z
  .strictObject({
    roots: z.array(root).default([{ path: './var/detector/krios-sim', mode: 'event', include: ['**/*.mrc', '**/*.mrcs', '**/*.tif', '**/*.tiff', '**/*.eer'] }]),
    /** Size and mtime must hold still this long (Warp: 1 s, CryoFLARE: 2 s). */
    settle_ms: z.number().int().min(0).default(1000),
    poll_interval_ms: z.number().int().min(100).default(5000),
    partial_timeout_s: z.number().int().min(1).default(600),
    ledger_file: z.string().min(1).default('./var/stream/ledger.sqlite'),
    output_dir: z.string().min(1).default('./var/stream/output'),
    /** The pipeline YAML; empty means the built-in default pipeline. */
    pipeline_file: z.string().default(''),
    executor: z.enum(['local', 'slurm']).default('local'),
    /** With executor: slurm. Jobs are named after the movie and step, so a restart finds its jobs. */
    slurm: z
      .strictObject({
        partition: z.string().optional(),
        account: z.string().optional(),
        extra_args: z.array(z.string()).default([]),
        poll_interval_ms: z.number().int().min(100).default(2000),
        script_dir: z.string().min(1).default('./var/stream/slurm'),
      })
      .prefault({}),
    workers: z.number().int().min(1).max(256).default(2),
    priority: z.enum(['oldest', 'newest']).default('oldest'),
    listen_host: z.string().min(1).default('127.0.0.1'),
    listen_port: z.number().int().min(0).max(65535).default(8093),
  })
  .prefault({});

export type StreamConfig = z.infer<typeof streamSection>;
