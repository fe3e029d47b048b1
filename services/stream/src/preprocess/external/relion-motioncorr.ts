/**
 * RELION's own motion correction (relion_run_motioncorr --use_own, and the UCSF MotionCor2
 * wrapper too) writes one STAR file per movie next to the sum: --o DIR/ plus the input path
 * without its extension, dots turned into underscores, then ".star". In it, data_general (a list:
 * rlnImageSizeX/Y/Z = movie width, height, frames; rlnMicrographOriginalPixelSize; ...) and
 * data_global_shift (a loop: rlnMicrographFrameNumber from 1, rlnMicrographShiftX/Y in unbinned
 * movie pixels). Frames left out of the sum (--first_frame_sum) carry the placeholder -9999.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import type { MovieMetrics } from '../metrics';
import { badOutput, finite, firstExisting, isFile, readOutputText, relativeTo, type ParserContext } from './output-files';
import { parseStar, type StarBlock } from './star';
import { trajectoryMetrics, type Shift } from './trajectory';

/** The presets run RELION with --o relion/ inside the movie's output folder. */
export const RELION_OUTPUT_DIR = 'relion';
/** RELION's marker for a frame it did not align. */
const NOT_OBSERVED = -9999;
/** RELION's own summary of all movies in the job, not a per-movie file. */
const JOB_STAR_FILES: ReadonlySet<string> = new Set(['corrected_micrographs.star', 'corrected_micrograph_movies.star']);

/**
 * The per-movie STAR: named after the movie when RELION was given it directly, otherwise the one
 * per-movie STAR in the folder (the presets link the movie under a fixed name, so that stems with
 * dots, which RELION would rename, still give predictable paths).
 */
async function findStar(ctx: ParserContext): Promise<string> {
  const dir = path.join(ctx.out, RELION_OUTPUT_DIR);
  const named = path.join(dir, `${ctx.stem.replace(/\./g, '_')}.star`);
  if (await isFile(named)) return named;
  let entries: string[];
  try {
    entries = await fs.readdir(dir);
  } catch {
    return firstExisting([named], 'RELION per-movie motion STAR file');
  }
  const stars = entries.filter((e) => e.endsWith('.star') && !JOB_STAR_FILES.has(e));
  if (stars.length === 1) return path.join(dir, stars[0] as string);
  if (stars.length === 0) return firstExisting([named], 'RELION per-movie motion STAR file');
  throw badOutput(dir, `${stars.length} per-movie STAR files (${stars.join(', ')}); expected ${path.basename(named)} or exactly one`);
}

function block(blocks: StarBlock[], name: string, file: string): StarBlock {
  const b = blocks.find((x) => x.name === name);
  if (!b) throw badOutput(file, `no data_${name} block`);
  return b;
}

function column(b: StarBlock, label: string, file: string): number {
  const i = b.columns.indexOf(label);
  if (i < 0) throw badOutput(file, `data_${b.name} has no _${label} column`);
  return i;
}

function positiveInt(b: StarBlock, label: string, file: string): number {
  const v = finite(b.pairs.get(label), file, `data_${b.name} _${label}`);
  if (!Number.isInteger(v) || v <= 0) throw badOutput(file, `data_${b.name} _${label}: ${v} is not a positive integer`);
  return v;
}

/** Shifts of the aligned frames in frame order, first aligned frame first, and the movie's geometry. */
export function parseRelionMotionStar(text: string, file: string): { shifts: Shift[]; metrics: MovieMetrics } {
  if (!text.endsWith('\n')) throw badOutput(file, 'truncated: the last line is incomplete');
  const blocks = parseStar(text, file);
  const general = block(blocks, 'general', file);
  const frames = positiveInt(general, 'rlnImageSizeZ', file);
  const metrics: MovieMetrics = { frames, width_px: positiveInt(general, 'rlnImageSizeX', file), height_px: positiveInt(general, 'rlnImageSizeY', file) };
  if (general.pairs.has('rlnMicrographOriginalPixelSize')) {
    const px = finite(general.pairs.get('rlnMicrographOriginalPixelSize'), file, 'data_general _rlnMicrographOriginalPixelSize');
    // RELION writes -1 when it was not told the pixel size.
    if (px > 0) metrics.pixelSize_A = px;
  }
  const global = block(blocks, 'global_shift', file);
  const [iFrame, iX, iY] = ['rlnMicrographFrameNumber', 'rlnMicrographShiftX', 'rlnMicrographShiftY'].map((l) => column(global, l, file)) as [number, number, number];
  if (global.rows.length !== frames) throw badOutput(file, `data_global_shift has ${global.rows.length} rows, but data_general says ${frames} frames`);
  const shifts: Shift[] = [];
  let skippedAfterAligned = false;
  global.rows.forEach((row, i) => {
    const frame = finite(row[iFrame], file, `data_global_shift row ${i + 1} frame number`);
    if (frame !== i + 1) throw badOutput(file, `data_global_shift row ${i + 1}: frame ${row[iFrame] ?? ''}, expected ${i + 1}`);
    const x = finite(row[iX], file, `data_global_shift frame ${frame} x shift`);
    const y = finite(row[iY], file, `data_global_shift frame ${frame} y shift`);
    // Frames outside --first_frame_sum..--last_frame_sum are placeholders at either end; a gap
    // in the middle would make the path length meaningless.
    if (x === NOT_OBSERVED && y === NOT_OBSERVED) {
      if (shifts.length > 0) skippedAfterAligned = true;
      return;
    }
    if (skippedAfterAligned) throw badOutput(file, `data_global_shift frame ${frame}: aligned after a frame that was not (-9999)`);
    shifts.push({ x, y });
  });
  if (shifts.length < 2) throw badOutput(file, `data_global_shift: ${shifts.length} aligned frame(s); a trajectory needs at least 2`);
  return { shifts, metrics };
}

export async function parseRelionMotioncorr(ctx: ParserContext): Promise<MovieMetrics> {
  const star = await findStar(ctx);
  const { shifts, metrics } = parseRelionMotionStar(await readOutputText(star), star);
  const files: Record<string, string> = { motion_star: relativeTo(ctx.out, star) };
  const sum = star.replace(/\.star$/, '.mrc');
  if (!(await isFile(sum))) throw badOutput(sum, 'missing: RELION wrote the motion STAR file but not the sum next to it');
  files.sum = relativeTo(ctx.out, sum);
  return { engines: { motion: 'relion_motioncorr' }, ...metrics, ...trajectoryMetrics(shifts), files };
}
