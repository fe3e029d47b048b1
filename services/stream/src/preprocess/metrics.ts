/**
 * The numbers a microscopist acts on, one record per movie, whatever engine produced them: the
 * built-in steps and the external presets (MotionCor2, CTFFIND, RELION) fill the same fields, so
 * the ledger, the dashboard, curation and exports never ask which engine ran. Every field is
 * optional: a step fills only its own, and a later step merges into what earlier ones left.
 * Lengths in Angstrom unless the name says px; angles in degrees; motion in full-size pixels.
 */
export interface MovieMetrics {
  /** Which engine filled the record, step by step, e.g. { motion: 'builtin', ctf: 'ctffind4' }. */
  engines?: Record<string, string>;
  frames?: number;
  width_px?: number;
  height_px?: number;
  pixelSize_A?: number;

  /** motion: per-frame shift of the specimen relative to frame 0, full-size pixels. */
  shifts_px?: { x: number; y: number }[];
  /** Path length of the trajectory, full-size pixels. */
  totalMotion_px?: number;
  /** Largest shift between consecutive frames, full-size pixels. */
  maxFrameMotion_px?: number;

  /** sum: bytes of the movie, of the binned reduced product, and their ratio. */
  movieBytes?: number;
  reducedBytes?: number;
  reductionRatio?: number;

  /** ctf: underfocus along the two principal axes (U >= V), astigmatism angle of U from x. */
  defocusU_A?: number;
  defocusV_A?: number;
  astigmatism_A?: number;
  astigmatismAngle_deg?: number;
  phaseShift_deg?: number;
  /** Resolution to which the fitted model agrees with the rings (stated CC threshold). */
  ctfFitResolution_A?: number;
  ctfCc?: number;

  /** ice: power in the ice-ring band (3.89-3.65 A) relative to its neighbours; about 1 for thin vitreous ice. */
  iceRatio?: number;

  /** picking */
  particles?: number;

  /** Output files the steps wrote, relative to the movie's output folder. */
  files?: Record<string, string>;
}

/** Merge a step's metrics into a movie's record; later values win, engines and files are merged key by key. */
export function mergeMetrics(base: MovieMetrics, update: MovieMetrics): MovieMetrics {
  const merged: MovieMetrics = { ...base, ...update };
  if (base.engines || update.engines) merged.engines = { ...base.engines, ...update.engines };
  if (base.files || update.files) merged.files = { ...base.files, ...update.files };
  return merged;
}
