/**
 * CTFFIND's summary file: the diagnostic image name with .txt for its extension. Comment lines
 * start with '#' (program version, input, optics, search limits, and a "# Columns:" legend), then
 * one line per micrograph:
 *   CTFFIND4: number, defocus 1 (A), defocus 2 (A), azimuth of astigmatism (degrees from x),
 *             additional phase shift (radians), cross correlation, fit resolution (A, or "inf")
 *   CTFFIND5: the same seven, then estimated tilt axis angle (degrees), estimated tilt angle
 *             (degrees) and estimated sample thickness (A); zero when not determined.
 * MovieMetrics has no field for sample tilt or thickness yet, so those are checked and returned
 * by parseCtffindText for callers that want them, but not put in the record.
 */
import path from 'node:path';
import type { MovieMetrics } from '../metrics';
import { badOutput, dataLines, finite, firstExisting, isFile, readOutputText, relativeTo, type ParserContext } from './output-files';

export type CtffindVersion = 4 | 5;

export interface CtffindResult {
  metrics: MovieMetrics;
  /** CTFFIND5 only. */
  sample?: { tiltAxisAngle_deg: number; tiltAngle_deg: number; thickness_A: number };
}

const BASE_COLUMNS = 7;
const CTFFIND5_COLUMNS = 10;

/** How many columns the "# Columns:" legend declares (its highest "#n"), or undefined without a legend. */
function declaredColumns(text: string): number | undefined {
  const legend = text.split(/\r?\n/).find((l) => /^#\s*Columns:/i.test(l));
  if (legend === undefined) return undefined;
  const numbers = [...legend.matchAll(/#(\d+)/g)].map((m) => Number(m[1]));
  return numbers.length > 0 ? Math.max(...numbers) : undefined;
}

function expectedColumns(version: CtffindVersion, declared: number | undefined, file: string): number {
  if (version === 5) {
    if (declared !== undefined && declared !== CTFFIND5_COLUMNS) throw badOutput(file, `the Columns legend declares ${declared} columns; CTFFIND5 writes ${CTFFIND5_COLUMNS} (is this CTFFIND4 output?)`);
    return CTFFIND5_COLUMNS;
  }
  // CTFFIND 4.1.15+ may append tilt columns; the first seven keep their meaning, so follow the legend.
  if (declared !== undefined && declared < BASE_COLUMNS) throw badOutput(file, `the Columns legend declares ${declared} columns; CTFFIND4 writes at least ${BASE_COLUMNS}`);
  return declared ?? BASE_COLUMNS;
}

/** Degrees in [0, 180): an astigmatism axis has no direction. */
function axisAngle(deg: number): number {
  return ((deg % 180) + 180) % 180;
}

export function parseCtffindText(text: string, file: string, version: CtffindVersion): CtffindResult {
  const expected = expectedColumns(version, declaredColumns(text), file);
  const rows = dataLines(text);
  if (rows.length === 0) throw badOutput(file, 'no result line after the # header (truncated?)');
  if (rows.length > 1) throw badOutput(file, `${rows.length} result lines; one micrograph per file expected (was the input a stack?)`);
  const row = rows[0] as { line: number; tokens: string[] };
  const t = row.tokens;
  if (t.length !== expected) throw badOutput(file, `line ${row.line}: ${t.length} columns, expected ${expected} (CTFFIND${version} layout)`);
  const at = (i: number, what: string): number => finite(t[i], file, `line ${row.line} column ${i + 1} (${what})`);
  at(0, 'micrograph number');
  let defocusU_A = at(1, 'defocus 1');
  let defocusV_A = at(2, 'defocus 2');
  let angle = at(3, 'azimuth of astigmatism');
  // metrics.ts keeps U >= V; CTFFIND's azimuth is the angle of defocus 1, so the other axis is 90 degrees away.
  if (defocusU_A < defocusV_A) {
    [defocusU_A, defocusV_A] = [defocusV_A, defocusU_A];
    angle += 90;
  }
  const metrics: MovieMetrics = {
    engines: { ctf: `ctffind${version}` },
    defocusU_A,
    defocusV_A,
    astigmatism_A: defocusU_A - defocusV_A,
    astigmatismAngle_deg: axisAngle(angle),
    phaseShift_deg: (at(4, 'additional phase shift') * 180) / Math.PI,
    ctfCc: at(5, 'cross correlation'),
  };
  // "inf": no ring fitted to any resolution. That is a real answer, not a broken file; leave the
  // field unset rather than store a number that JSON cannot carry.
  if (!/^\+?inf(inity)?$/i.test(t[6] ?? '')) metrics.ctfFitResolution_A = at(6, 'fit resolution');
  const result: CtffindResult = { metrics };
  if (version === 5) result.sample = { tiltAxisAngle_deg: at(7, 'tilt axis angle'), tiltAngle_deg: at(8, 'tilt angle'), thickness_A: at(9, 'sample thickness') };
  return result;
}

/** The presets name the diagnostic image <stem>_ctf.mrc; CTFFIND puts the summary beside it. */
export function ctffindCandidates(ctx: ParserContext): string[] {
  return [`${ctx.stem}_ctf.txt`, `${ctx.stem}.txt`].map((f) => path.join(ctx.out, f));
}

export async function parseCtffind(ctx: ParserContext, version: CtffindVersion): Promise<MovieMetrics> {
  const txt = await firstExisting(ctffindCandidates(ctx), `CTFFIND${version} result (.txt)`);
  const { metrics } = parseCtffindText(await readOutputText(txt), txt, version);
  const files: Record<string, string> = { ctf_txt: relativeTo(ctx.out, txt) };
  const diagnostic = txt.replace(/\.txt$/, '.mrc');
  if (await isFile(diagnostic)) files.ctf_diagnostic = relativeTo(ctx.out, diagnostic);
  return { ...metrics, files };
}
