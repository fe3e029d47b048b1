/**
 * The simulated detector: while the microscope acquires, a movie per exposure (or, for
 * benchmarks, rate_per_hour movies) lands in output_dir, written slowly at its final name the
 * way detector PCs copy to a CIFS share. Movies are written one at a time, in order, from a
 * short backlog; the microscope's settings at the moment of the exposure go into the file.
 */
import fs from 'node:fs';
import path from 'node:path';
import { logError, type Logger } from '@cloudlet/core';
import type { DetectorConfig } from './config';
import { Random } from './exposure';
import { type MovieParams, writeMovie } from './movie-writer';
import type { MicroscopeSnapshot, MicroscopeState } from './state';

/** Exposures waiting while a movie is written; beyond this the detector drops them, and says so. */
const MAX_BACKLOG = 4;

export interface DetectorDeps {
  config: DetectorConfig;
  state: MicroscopeState;
  log: Logger;
}

export interface DetectorStats {
  written: number;
  failed: number;
  dropped: number;
  queued: number;
  /** The movie being written, if any. */
  writing: string | undefined;
}

export interface Detector {
  start(): Promise<void>;
  /** Stops taking exposures; a movie half-written is abandoned and removed. */
  stop(): Promise<void>;
  stats(): DetectorStats;
}

interface Job {
  number: number;
  snapshot: MicroscopeSnapshot;
}

export function createDetector(deps: DetectorDeps): Detector {
  const { config, state, log } = deps;
  const queue: Job[] = [];
  const stats = { written: 0, failed: 0, dropped: 0 };
  let writing: string | undefined;
  let running: Promise<void> | undefined;
  let abort = new AbortController();
  /** Numbers continue after the highest already in output_dir, so a restart overwrites nothing. */
  let base = 0;
  let rateCount = 0;
  let lastExposures = 0;
  let rateTimer: NodeJS.Timeout | undefined;

  const enqueue = (number: number, snapshot: MicroscopeSnapshot): void => {
    if (queue.length >= MAX_BACKLOG) {
      stats.dropped++;
      log.warn({ number, queued: queue.length }, 'exposure dropped: detector busy');
      return;
    }
    queue.push({ number, snapshot });
    running ??= drain().finally(() => {
      running = undefined;
    });
  };

  const drain = async (): Promise<void> => {
    for (let job = queue.shift(); job; job = queue.shift()) await write(job);
  };

  const write = async (job: Job): Promise<void> => {
    const file = path.join(config.output_dir, `${config.prefix}_${String(job.number).padStart(5, '0')}.${config.format}`);
    writing = file;
    try {
      const movie = await writeMovie(file, movieParams(config, job, abort.signal));
      stats.written++;
      log.info({ path: movie.path, bytes: movie.bytes, seconds: movie.seconds, number: job.number }, 'movie written');
    } catch (err) {
      if (abort.signal.aborted) {
        fs.rmSync(file, { force: true });
        log.info({ path: file }, 'movie abandoned: detector stopped');
      } else {
        stats.failed++;
        logError(log, err, 'movie write failed', { path: file });
      }
    } finally {
      writing = undefined;
    }
  };

  const rateTick = (): void => enqueue(base + ++rateCount, state.snapshot());

  const onChange = (s: MicroscopeSnapshot): void => {
    if (config.trigger === 'exposure') {
      for (let e = lastExposures + 1; e <= s.exposures; e++) enqueue(base + e, s);
      lastExposures = s.exposures;
    } else if (s.acquiring && !rateTimer) {
      rateTimer = setInterval(rateTick, 3_600_000 / config.rate_per_hour);
    } else if (!s.acquiring && rateTimer) {
      clearInterval(rateTimer);
      rateTimer = undefined;
    }
  };

  return {
    async start() {
      abort = new AbortController();
      await fs.promises.mkdir(config.output_dir, { recursive: true });
      base = await highestNumber(config.output_dir, config.prefix);
      lastExposures = state.snapshot().exposures;
      state.on('change', onChange);
      onChange(state.snapshot());
      log.info({ output_dir: config.output_dir, format: config.format, trigger: config.trigger, next_number: base + 1 }, 'detector ready');
    },
    async stop() {
      state.off('change', onChange);
      if (rateTimer) clearInterval(rateTimer);
      rateTimer = undefined;
      queue.length = 0;
      abort.abort();
      await running;
    },
    stats: () => ({ ...stats, queued: queue.length, writing }),
  };
}

function movieParams(config: DetectorConfig, job: Job, signal: AbortSignal): MovieParams {
  const s = job.snapshot;
  // A drift of 0.1-0.5 px per frame in a random direction, fixed by the movie's number.
  const rng = new Random(job.number);
  const speed = 0.1 + 0.4 * rng.next();
  const angle = 2 * Math.PI * rng.next();
  const drift: [number, number] = [Math.round(speed * Math.cos(angle) * 100) / 100, Math.round(speed * Math.sin(angle) * 100) / 100];
  return {
    format: config.format,
    width: config.width,
    height: config.height,
    frames: config.frames,
    mrcMode: config.mrc_mode,
    tiffCompression: config.tiff_compression,
    seed: job.number,
    writeSeconds: config.write_seconds,
    chunks: config.write_chunks,
    signal,
    defocusUm: s.defocus_um,
    doseRate: s.dose_rate_e_per_px_s,
    driftPxPerFrame: drift,
    frameSeconds: config.exposure_s / config.frames,
    magnification: s.magnification,
    pixelSizeA: config.pixel_size_a,
    stageUm: [s.stage_x_um, s.stage_y_um],
  };
}

async function highestNumber(dir: string, prefix: string): Promise<number> {
  const pattern = new RegExp(`^${prefix.replace(/[.]/g, '\\.')}_(\\d+)\\.(mrc|tiff?)$`);
  let highest = 0;
  for (const name of await fs.promises.readdir(dir)) {
    const m = pattern.exec(name);
    if (m) highest = Math.max(highest, Number(m[1]));
  }
  return highest;
}
