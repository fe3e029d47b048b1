/**
 * The contract between the built-in pre-processing stages (preprocess/stages.ts) and the
 * pipeline that runs them in worker threads (the stream runner). A stage reads the movie and
 * what earlier stages left in the movie's output folder, writes its own files there, and
 * returns its part of the movie's metrics. Stages are pure functions of their input and the
 * files: running one twice gives the same files, so a restart may simply run it again.
 */
import type { MovieMetrics } from './metrics';

export const STAGE_NAMES = ['motion', 'sum', 'ctf', 'ice', 'picking', 'thumbnails'] as const;
export type StageName = (typeof STAGE_NAMES)[number];

export interface GainOptions {
  /** Gain reference (MRC or TIFF), multiplied into every frame. */
  file: string;
  flipX: boolean;
  flipY: boolean;
  /** Counter-clockwise quarter turns, 0-3. */
  rotate: 0 | 1 | 2 | 3;
}

export interface Optics {
  /** Overrides the header's pixel size when set (headers often carry 0 or 1). */
  pixelSize_A?: number;
  voltage_kV: number;
  cs_mm: number;
  amplitudeContrast: number;
  /** Electrons per A^2 per frame; 0 turns dose weighting off. */
  dosePerFrame_ePerA2: number;
  gain?: GainOptions;
}

export interface StageOptions {
  optics: Optics;
  /** bin 'auto': the whole number that brings the frame's long side nearest 512 pixels (at least 1). */
  motion: { bin: number | 'auto'; iterations: number; patches: [number, number] | null };
  sum: { reducedBin: number };
  ctf: { tile: number; minRes_A: number; maxRes_A: number; minDefocus_A: number; maxDefocus_A: number; phaseShift: boolean; ccThreshold: number };
  picking: { radiusMin_A: number; radiusMax_A: number; threshold: number };
  thumbnails: { maxSide: number };
}

export interface StageInput {
  stage: StageName;
  /** Absolute path of the movie. */
  movie: string;
  /** The movie's output folder (exists). */
  out: string;
  options: StageOptions;
  /** Everything earlier stages reported for this movie. */
  previous: MovieMetrics;
}

/**
 * A stage's failure. `bad_movie` means the movie itself is at fault (an unsupported mode, NaNs,
 * a gain reference of the wrong size): retrying cannot help, the movie fails with `message`.
 * Anything else (out of memory, a full disk) may succeed on a retry.
 */
export interface StageError {
  code: 'bad_movie' | 'error';
  message: string;
}

export type StageFn = (input: StageInput, signal?: AbortSignal) => Promise<MovieMetrics>;
