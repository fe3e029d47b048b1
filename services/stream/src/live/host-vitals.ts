/** The machine's load, memory and the output disk's free space, for the headline and the disk alarm. */
import fs from 'node:fs';
import os from 'node:os';

export interface HostVitals {
  /** One-minute load average and the cores it compares with. */
  load1: number;
  cores: number;
  memUsedBytes: number;
  memTotalBytes: number;
  /** Null when the output folder cannot be looked at (not made yet, unmounted). */
  disk: { freeBytes: number; totalBytes: number } | null;
}

export function hostVitals(outputRoot: string): HostVitals {
  let disk: HostVitals['disk'] = null;
  try {
    const s = fs.statfsSync(outputRoot);
    // bavail, not bfree: what an unprivileged writer (the pipeline) can still use.
    disk = { freeBytes: s.bavail * s.bsize, totalBytes: s.blocks * s.bsize };
  } catch {
    disk = null;
  }
  const total = os.totalmem();
  return { load1: Math.round((os.loadavg()[0] ?? 0) * 100) / 100, cores: os.availableParallelism(), memUsedBytes: total - os.freemem(), memTotalBytes: total, disk };
}
