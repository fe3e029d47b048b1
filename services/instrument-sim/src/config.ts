import fs from 'node:fs';
import path from 'node:path';
import { randomVncPassword, readSecretFile } from '@cloudlet/core';
import { z } from 'zod';
import { MIN_HEIGHT, MIN_WIDTH } from './panel';

const port = z.number().int().min(0).max(65535);
const side = z.number().int().min(16).max(16384);

/** `sim.detector`: the simulated camera that writes a movie per exposure into a directory. */
export const detectorSection = z
  .strictObject({
    enabled: z.boolean().default(false),
    /** Where movies appear, as on the detector PC's share; created when missing. */
    output_dir: z.string().min(1).default('./var/detector/krios-sim'),
    /** Movies are `<prefix>_<number, 5 digits>.<mrc|tiff>`. */
    prefix: z
      .string()
      .regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$/, 'letters, digits, ".", "_" and "-" only, starting with a letter or digit')
      .default('FoilHole'),
    format: z.enum(['mrc', 'tiff']).default('mrc'),
    /** MRC pixels: 1 int16, 0 int8. */
    mrc_mode: z.union([z.literal(0), z.literal(1)]).default(1),
    /** TIFF strips (8-bit): LZW as detectors write them, or none. */
    tiff_compression: z.enum(['lzw', 'none']).default('lzw'),
    frames: z.number().int().min(1).max(1000).default(8),
    width: side.default(512),
    height: side.default(512),
    pixel_size_a: z.number().positive().max(100).default(1.0),
    /** Exposure time; each frame gets exposure_s / frames of the panel's dose rate. */
    exposure_s: z.number().positive().max(600).default(2),
    /** Each movie is written over this long, as a copy over the network would be (0: at once). */
    write_seconds: z.number().min(0).max(600).default(2),
    write_chunks: z.number().int().min(1).max(10000).default(20),
    /** 'exposure': one movie per panel exposure. 'rate': rate_per_hour movies while acquiring (benchmarks). */
    trigger: z.enum(['exposure', 'rate']).default('exposure'),
    rate_per_hour: z.number().positive().max(36000).default(320),
  })
  .prefault({});

export type DetectorConfig = z.infer<typeof detectorSection>;

/** The `sim` section of cloudlet.yml. */
export const simSection = z
  .strictObject({
    /** Where the VNC server listens; a relay on another host needs a routable address here. */
    listen_host: z.string().min(1).default('127.0.0.1'),
    /** 0 picks a free port (tests). */
    vnc_port: port.default(5901),
    /** The read-only state API; loopback unless other hosts must follow the microscope. */
    api_host: z.string().min(1).default('127.0.0.1'),
    api_port: port.default(8092),
    /** The VNC password (only the first 8 characters count); created at random when missing. */
    password_file: z.string().min(1).default('./var/secrets/sim-vnc.password'),
    width: z.number().int().min(MIN_WIDTH).max(4096).default(1024),
    height: z.number().int().min(MIN_HEIGHT).max(4096).default(768),
    /** The desktop name VNC clients show. */
    name: z.string().min(1).max(200).default('Cloudlet simulated TEM'),
    /** Seconds per exposure while acquiring. */
    exposure_interval_s: z.number().positive().max(3600).default(11),
    detector: detectorSection,
  })
  .prefault({});

export type SimConfig = z.infer<typeof simSection>;

/**
 * The VNC password from `file`, which is created (mode 600) with a random 8-character password
 * when missing. core's readOrCreateSecretFile would write 43 characters, of which VNC would
 * silently use 8; an 8-character file says exactly what the password is.
 */
export function readOrCreateVncPassword(file: string): string {
  if (!fs.existsSync(file)) {
    fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
    try {
      const fd = fs.openSync(file, 'wx', 0o600);
      fs.writeSync(fd, `${randomVncPassword()}\n`);
      fs.closeSync(fd);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
  }
  return readSecretFile(file);
}
