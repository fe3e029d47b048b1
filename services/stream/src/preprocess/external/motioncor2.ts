/**
 * MotionCor2 / MotionCor3 per-movie output. With -LogDir DIR/ (1.4 and later) the whole-frame
 * trajectory is DIR/<input name without .mrc/.tif/.eer>-Full.log, or -Patch-Full.log when patches
 * were aligned; with the older -LogFile PREFIX it is PREFIX0-Full.log / PREFIX0-Patch-Full.log.
 * Either way: '#' comment lines (blank lines in the patch variant), then one line per frame,
 * "%4d  %8.2f  %8.2f": frame number from 1, x and y shift in pixels of the input frames,
 * relative to the reference frame (-FmRef; the central frame by default).
 */
import path from 'node:path';
import type { MovieMetrics } from '../metrics';
import { readMrcHeader } from '../mrc';
import { badOutput, dataLines, finite, firstExisting, isFile, readOutputText, relativeTo, type ParserContext } from './output-files';
import { trajectoryMetrics, type Shift } from './trajectory';

/** MotionCor2 names its logs after the input up to the first .mrc, .tif or .eer (any case), not after the last dot. */
export function motioncor2Stem(movieName: string): string {
  for (const ext of ['.mrc', '.tif', '.eer']) {
    const at = movieName.toLowerCase().indexOf(ext);
    if (at >= 0) return movieName.slice(0, at);
  }
  return movieName.replace(/\.[^.]*$/, '');
}

export function logCandidates(ctx: ParserContext): string[] {
  const stems = [...new Set([ctx.stem, motioncor2Stem(path.basename(ctx.movie))])];
  // Patch logs first: a patch run writes both kinds of names in some versions, and its
  // "initial alignment based upon full frames" is the same trajectory.
  const suffixes = ['-Patch-Full.log', '-Full.log', '0-Patch-Full.log', '0-Full.log'];
  return suffixes.flatMap((suffix) => stems.map((stem) => path.join(ctx.out, `${stem}${suffix}`)));
}

/** The per-frame shifts in a -Full.log or -Patch-Full.log, as written. */
export function parseMotioncor2Log(text: string, file: string): Shift[] {
  if (!text.endsWith('\n')) throw badOutput(file, 'truncated: the last line is incomplete');
  const rows = dataLines(text);
  if (rows.length < 2) throw badOutput(file, `${rows.length} frame line(s); a trajectory needs at least 2`);
  const shifts: Shift[] = [];
  rows.forEach((row, i) => {
    if (row.tokens.length !== 3) throw badOutput(file, `line ${row.line}: ${row.tokens.length} columns, expected 3 (frame, x shift, y shift)`);
    const frame = finite(row.tokens[0], file, `line ${row.line} frame number`);
    if (frame !== i + 1) throw badOutput(file, `line ${row.line}: frame ${row.tokens[0]}, expected ${i + 1} (frames must run 1, 2, 3, ...)`);
    shifts.push({ x: finite(row.tokens[1], file, `line ${row.line} x shift`), y: finite(row.tokens[2], file, `line ${row.line} y shift`) });
  });
  return shifts;
}

export function sumCandidates(ctx: ParserContext): string[] {
  return [`${ctx.stem}_sum.mrc`, `${ctx.stem}.mrc`].map((f) => path.join(ctx.out, f));
}

export async function parseMotioncor2(ctx: ParserContext): Promise<MovieMetrics> {
  const log = await firstExisting(logCandidates(ctx), 'MotionCor2 full-frame log');
  const shifts = parseMotioncor2Log(await readOutputText(log), log);
  const sum = await firstExisting(sumCandidates(ctx), 'MotionCor2 output sum');
  try {
    // The header check catches a sum cut short by a full disk or a killed job.
    await readMrcHeader(sum);
  } catch (err) {
    throw badOutput(sum, `not a complete MRC image: ${(err as Error).message}`, err);
  }
  const files: Record<string, string> = { motion_log: relativeTo(ctx.out, log), sum: relativeTo(ctx.out, sum) };
  const dw = sum.replace(/\.mrc$/, '_DW.mrc');
  if (await isFile(dw)) files.sum_dw = relativeTo(ctx.out, dw);
  return { engines: { motion: 'motioncor2' }, frames: shifts.length, ...trajectoryMetrics(shifts), files };
}
