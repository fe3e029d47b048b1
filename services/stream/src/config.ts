import fs from 'node:fs';
import { z } from 'zod';
import type { StageOptions } from './preprocess/stage-types';

const root = z.strictObject({
  path: z.string().min(1),
  /** event: inotify (local disks); poll: network mounts (CIFS, NFS), where events never come. */
  mode: z.enum(['event', 'poll']).default('event'),
  include: z.array(z.string().min(1)).default(['**/*.mrc', '**/*.mrcs', '**/*.tif', '**/*.tiff', '**/*.eer']),
});

const powerOfTwo = z
  .number()
  .int()
  .refine((n) => n >= 64 && (n & (n - 1)) === 0, 'a power of two, at least 64');

/** `stream.preprocess`: what the built-in stages need to know and how hard they work. */
const preprocess = z
  .strictObject({
    optics: z
      .strictObject({
        /** Overrides the movie header's pixel size (headers often carry 0 or 1). */
        pixel_size_a: z.number().positive().max(100).optional(),
        voltage_kv: z.number().positive().max(1000).default(300),
        cs_mm: z.number().min(0).max(10).default(2.7),
        amplitude_contrast: z.number().min(0).lt(1).default(0.07),
        /** Electrons per A^2 per frame; 0 turns dose weighting off (the dose is site knowledge, not in MRC headers). */
        dose_per_frame: z.number().min(0).max(100).default(0),
        /** Multiplied into every frame; checked to exist when the service starts. */
        gain: z
          .strictObject({
            file: z.string().min(1),
            flip_x: z.boolean().default(false),
            flip_y: z.boolean().default(false),
            /** Counter-clockwise quarter turns. */
            rotate: z.union([z.literal(0), z.literal(1), z.literal(2), z.literal(3)]).default(0),
          })
          .optional(),
      })
      .prefault({}),
    motion: z
      .strictObject({
        bin: z.union([z.literal('auto'), z.number().int().min(1).max(16)]).default('auto'),
        iterations: z.number().int().min(1).max(50).default(8),
        /** [x, y] local patches; null aligns whole frames. */
        patches: z.tuple([z.number().int().min(1).max(32), z.number().int().min(1).max(32)]).nullable().default(null),
      })
      .prefault({}),
    sum: z.strictObject({ reduced_bin: z.number().int().min(1).max(16).default(2) }).prefault({}),
    ctf: z
      .strictObject({
        tile: powerOfTwo.default(512),
        min_res_a: z.number().positive().default(30),
        max_res_a: z.number().positive().default(5),
        min_defocus_a: z.number().min(0).default(5000),
        max_defocus_a: z.number().positive().default(50000),
        phase_shift: z.boolean().default(false),
        /** Fit resolution: where model and spectrum stop agreeing this well (cryoSPARC: 0.3). */
        cc_threshold: z.number().gt(0).lt(1).default(0.3),
      })
      .refine((c) => c.min_res_a > c.max_res_a, { message: 'min_res_a must be a larger distance (lower resolution) than max_res_a', path: ['min_res_a'] })
      .refine((c) => c.min_defocus_a < c.max_defocus_a, { message: 'min_defocus_a must be below max_defocus_a', path: ['min_defocus_a'] })
      .prefault({}),
    picking: z
      .strictObject({
        radius_min_a: z.number().positive().default(40),
        radius_max_a: z.number().positive().default(80),
        /** Picks stand this many robust standard deviations above the background. */
        threshold: z.number().positive().default(6),
      })
      .refine((p) => p.radius_min_a <= p.radius_max_a, { message: 'radius_min_a must not exceed radius_max_a', path: ['radius_min_a'] })
      .prefault({}),
    thumbnails: z.strictObject({ max_side: z.number().int().min(16).max(4096).default(512) }).prefault({}),
    /** Heap per stage worker thread: a stage that needs more fails alone, the service lives on. */
    worker_memory_mb: z.number().int().min(64).max(65536).default(2048),
  })
  .prefault({});

export type PreprocessConfig = z.infer<typeof preprocess>;

/** The stages' options (stage-types.ts) from the config's snake_case. */
export function stageOptions(p: PreprocessConfig): StageOptions {
  const { optics } = p;
  return {
    optics: {
      ...(optics.pixel_size_a !== undefined ? { pixelSize_A: optics.pixel_size_a } : {}),
      voltage_kV: optics.voltage_kv,
      cs_mm: optics.cs_mm,
      amplitudeContrast: optics.amplitude_contrast,
      dosePerFrame_ePerA2: optics.dose_per_frame,
      ...(optics.gain ? { gain: { file: optics.gain.file, flipX: optics.gain.flip_x, flipY: optics.gain.flip_y, rotate: optics.gain.rotate } } : {}),
    },
    motion: { bin: p.motion.bin, iterations: p.motion.iterations, patches: p.motion.patches },
    sum: { reducedBin: p.sum.reduced_bin },
    ctf: { tile: p.ctf.tile, minRes_A: p.ctf.min_res_a, maxRes_A: p.ctf.max_res_a, minDefocus_A: p.ctf.min_defocus_a, maxDefocus_A: p.ctf.max_defocus_a, phaseShift: p.ctf.phase_shift, ccThreshold: p.ctf.cc_threshold },
    picking: { radiusMin_A: p.picking.radius_min_a, radiusMax_A: p.picking.radius_max_a, threshold: p.picking.threshold },
    thumbnails: { maxSide: p.thumbnails.max_side },
  };
}

/** What the schema cannot see: files named in the config that must exist when the service starts. */
export function preprocessFileProblems(p: PreprocessConfig): string[] {
  const gain = p.optics.gain;
  if (!gain) return [];
  const where = 'stream.preprocess.optics.gain.file';
  const stat = fs.statSync(gain.file, { throwIfNoEntry: false });
  if (!stat) return [`${where}: ${gain.file} does not exist`];
  if (!stat.isFile()) return [`${where}: ${gain.file} is not a file`];
  return [];
}

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
    /** Movies processed at once; also the number of stage worker threads. */
    workers: z.number().int().min(1).max(256).default(2),
    priority: z.enum(['oldest', 'newest']).default('oldest'),
    listen_host: z.string().min(1).default('127.0.0.1'),
    listen_port: z.number().int().min(0).max(65535).default(8093),
    preprocess,
  })
  .prefault({});

export type StreamConfig = z.infer<typeof streamSection>;
