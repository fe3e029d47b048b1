import fs from 'node:fs';
import path from 'node:path';
import { randomVncPassword, readSecretFile } from '@cloudlet/core';
import { z } from 'zod';
import { MIN_HEIGHT, MIN_WIDTH } from './panel';

const port = z.number().int().min(0).max(65535);

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
