/**
 * What a session hands on: the accepted micrographs with their CTF as a RELION micrographs STAR
 * file (what RELION's CTF job writes, so the next job starts from it), the picks as a RELION
 * coordinate-file list, and every metric of every exposure as CSV for a spreadsheet.
 *
 * Paths in the STAR files are written as given (the caller decides whether they are absolute or
 * relative to a project folder). Names with whitespace cannot be written in STAR, which has no
 * quoting RELION reads back reliably: such rows are left out and reported.
 */
import type { MovieMetrics } from '../preprocess/metrics';
import { JUDGED_METRIC_NAMES, JUDGED_METRICS, type Judgement } from './curation';

export interface ExportOptics {
  pixelSize_A: number;
  voltage_kV: number;
  cs_mm: number;
  amplitudeContrast: number;
}

export interface ExportRow {
  id: number;
  /** The movie's path as found. */
  movie: string;
  /** The dose-weighted sum (the micrograph), as it should appear in the STAR file. */
  micrograph: string | null;
  /** The power spectrum with the fit, for rlnCtfImage; optional. */
  ctfImage: string | null;
  /** The picks' coordinate STAR file, for the coordinate list; optional. */
  picks: string | null;
  state: string;
  acquiredMs: number;
  doneMs: number | null;
  metrics: MovieMetrics;
  judgement: Judgement;
}

export interface StarExport {
  text: string;
  written: number;
  /** Accepted rows left out, each with why. */
  skipped: { id: number; why: string }[];
}

const STAR_VERSION = '# version 30001';

function starSafe(value: string): boolean {
  return value.length > 0 && !/\s/.test(value);
}

/** RELION 3.1+ micrographs STAR with one optics group: the accepted exposures with a CTF fit. */
export function micrographsStar(rows: readonly ExportRow[], optics: ExportOptics): StarExport {
  const lines = [
    STAR_VERSION,
    '',
    'data_optics',
    '',
    'loop_',
    '_rlnOpticsGroupName #1',
    '_rlnOpticsGroup #2',
    '_rlnMicrographPixelSize #3',
    '_rlnVoltage #4',
    '_rlnSphericalAberration #5',
    '_rlnAmplitudeContrast #6',
    `opticsGroup1 1 ${optics.pixelSize_A.toFixed(6)} ${optics.voltage_kV.toFixed(6)} ${optics.cs_mm.toFixed(6)} ${optics.amplitudeContrast.toFixed(6)}`,
    '',
    '',
    STAR_VERSION,
    '',
    'data_micrographs',
    '',
    'loop_',
    '_rlnMicrographName #1',
    '_rlnOpticsGroup #2',
    '_rlnCtfImage #3',
    '_rlnDefocusU #4',
    '_rlnDefocusV #5',
    '_rlnCtfAstigmatism #6',
    '_rlnDefocusAngle #7',
    '_rlnCtfFigureOfMerit #8',
    '_rlnCtfMaxResolution #9',
  ];
  const skipped: StarExport['skipped'] = [];
  let written = 0;
  for (const r of rows) {
    if (r.judgement.verdict !== 'accepted') continue;
    const m = r.metrics;
    if (r.micrograph === null) {
      skipped.push({ id: r.id, why: 'no micrograph (sum) yet' });
      continue;
    }
    if (m.defocusU_A === undefined || m.defocusV_A === undefined || m.astigmatismAngle_deg === undefined) {
      skipped.push({ id: r.id, why: 'no CTF fit yet' });
      continue;
    }
    const ctfImage = r.ctfImage ?? 'None';
    if (!starSafe(r.micrograph) || !starSafe(ctfImage)) {
      skipped.push({ id: r.id, why: `a path with whitespace cannot be written in STAR: ${JSON.stringify(r.micrograph)}` });
      continue;
    }
    const astig = m.astigmatism_A ?? Math.abs(m.defocusU_A - m.defocusV_A);
    lines.push([r.micrograph, '1', ctfImage, m.defocusU_A.toFixed(6), m.defocusV_A.toFixed(6), astig.toFixed(6), m.astigmatismAngle_deg.toFixed(6), (m.ctfCc ?? 0).toFixed(6), (m.ctfFitResolution_A ?? 999).toFixed(6)].join(' '));
    written++;
  }
  return { text: `${lines.join('\n')}\n\n`, written, skipped };
}

/** RELION's list of coordinate files (what an import of coordinates or an autopick job writes). */
export function coordinatesStar(rows: readonly ExportRow[]): StarExport {
  const lines = [STAR_VERSION, '', 'data_coordinate_files', '', 'loop_', '_rlnMicrographName #1', '_rlnMicrographCoordinates #2'];
  const skipped: StarExport['skipped'] = [];
  let written = 0;
  for (const r of rows) {
    if (r.judgement.verdict !== 'accepted') continue;
    if (r.micrograph === null || r.picks === null) {
      skipped.push({ id: r.id, why: 'no picks yet' });
      continue;
    }
    if (!starSafe(r.micrograph) || !starSafe(r.picks)) {
      skipped.push({ id: r.id, why: `a path with whitespace cannot be written in STAR: ${JSON.stringify(r.micrograph)}` });
      continue;
    }
    lines.push(`${r.micrograph} ${r.picks}`);
    written++;
  }
  return { text: `${lines.join('\n')}\n\n`, written, skipped };
}

/**
 * One CSV field: quoted when needed (RFC 4180), and a leading =, +, - or @ in text defused with
 * a quote mark, so a file name cannot become a formula in a spreadsheet.
 */
export function csvField(value: string | number | null | undefined): string {
  if (value === null || value === undefined) return '';
  if (typeof value === 'number') return Number.isFinite(value) ? String(value) : '';
  const text = /^[=+\-@\t\r]/.test(value) ? `'${value}` : value;
  return /[",\r\n]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
}

const CSV_METRICS: (keyof MovieMetrics)[] = ['frames', 'pixelSize_A', 'totalMotion_px', 'maxFrameMotion_px', 'defocusU_A', 'defocusV_A', 'astigmatism_A', 'astigmatismAngle_deg', 'phaseShift_deg', 'ctfFitResolution_A', 'ctfCc', 'iceRatio', 'particles', 'movieBytes', 'reducedBytes', 'reductionRatio'];

/** Every exposure and every metric, one row each. */
export function metricsCsv(rows: readonly ExportRow[]): string {
  const header = ['id', 'movie', 'state', 'verdict', 'reasons', 'acquired_utc', 'done_utc', ...CSV_METRICS, ...JUDGED_METRIC_NAMES.filter((k) => k === 'defocus_um')];
  const out = [header.join(',')];
  for (const r of rows) {
    const iso = (ms: number | null): string => (ms === null ? '' : new Date(ms).toISOString());
    const fields: (string | number | null | undefined)[] = [r.id, r.movie, r.state, r.judgement.verdict, r.judgement.reasons.join('; '), iso(r.acquiredMs), iso(r.doneMs)];
    for (const k of CSV_METRICS) {
      const v = r.metrics[k];
      fields.push(typeof v === 'number' ? v : undefined);
    }
    fields.push(JUDGED_METRICS.defocus_um.of(r.metrics));
    out.push(fields.map(csvField).join(','));
  }
  return `${out.join('\r\n')}\r\n`;
}
