import { judge } from './curation';
import { coordinatesStar, csvField, type ExportRow, metricsCsv, micrographsStar } from './exports';

const OPTICS = { pixelSize_A: 0.83, voltage_kV: 300, cs_mm: 2.7, amplitudeContrast: 0.07 };

function row(id: number, over: Partial<ExportRow> = {}, metrics: ExportRow['metrics'] = {}): ExportRow {
  const m = { defocusU_A: 15_200, defocusV_A: 14_800, astigmatism_A: 400, astigmatismAngle_deg: 33.5, ctfCc: 0.21, ctfFitResolution_A: 3.6, totalMotion_px: 8.25, particles: 120, ...metrics };
  return {
    id,
    movie: `Images-Disc1/FoilHole_${id}_Data.tiff`,
    micrograph: `output/${id}/sum.mrc`,
    ctfImage: `output/${id}/ctf.png`,
    picks: `output/${id}/picks.star`,
    state: 'done',
    acquiredMs: Date.parse('2026-11-22T03:00:00Z') + id * 1000,
    doneMs: Date.parse('2026-11-22T03:01:00Z') + id * 1000,
    metrics: m,
    judgement: judge(m, { ctfFitResolution_A: { max: 5 } }, null, true),
    ...over,
  };
}

/** The rows of a STAR loop, as RELION reads them: the labels, then whitespace-separated values. */
function loop(text: string, block: string): { labels: string[]; rows: string[][] } {
  const lines = text.split('\n');
  let i = lines.indexOf(`data_${block}`);
  expect(i).toBeGreaterThanOrEqual(0);
  const labels: string[] = [];
  const rows: string[][] = [];
  for (i++; i < lines.length; i++) {
    const l = (lines[i] as string).trim();
    if (l.startsWith('data_')) break;
    if (l === '' || l === 'loop_' || l.startsWith('#')) continue;
    if (l.startsWith('_rln')) labels.push(l.split(/\s+/)[0] as string);
    else rows.push(l.split(/\s+/));
  }
  return { labels, rows };
}

describe('micrographsStar', () => {
  test('writes the optics and the accepted micrographs with their CTF, as RELION lays them out', () => {
    const rows = [row(1), row(2, {}, { ctfFitResolution_A: 7.5 }), row(3)];
    const star = micrographsStar(rows, OPTICS);
    expect(star.written).toBe(2);
    const optics = loop(star.text, 'optics');
    expect(optics.rows).toEqual([['opticsGroup1', '1', '0.830000', '300.000000', '2.700000', '0.070000']]);
    const mics = loop(star.text, 'micrographs');
    expect(mics.labels).toEqual(['_rlnMicrographName', '_rlnOpticsGroup', '_rlnCtfImage', '_rlnDefocusU', '_rlnDefocusV', '_rlnCtfAstigmatism', '_rlnDefocusAngle', '_rlnCtfFigureOfMerit', '_rlnCtfMaxResolution']);
    expect(mics.rows.map((r) => r[0])).toEqual(['output/1/sum.mrc', 'output/3/sum.mrc']);
    expect(mics.rows[0]?.slice(3)).toEqual(['15200.000000', '14800.000000', '400.000000', '33.500000', '0.210000', '3.600000']);
    for (const r of mics.rows) expect(r).toHaveLength(mics.labels.length);
  });

  test('leaves out, with a reason, what cannot be written: no CTF yet, no sum, a name with a space', () => {
    const noCtf = row(4, {}, {});
    delete noCtf.metrics.defocusU_A;
    const star = micrographsStar([noCtf, row(5, { micrograph: null }), row(6, { micrograph: 'output/with space/sum.mrc' })], OPTICS);
    expect(star.written).toBe(0);
    expect(star.skipped.slice(0, 2)).toEqual([
      { id: 4, why: 'no CTF fit yet' },
      { id: 5, why: 'no micrograph (sum) yet' },
    ]);
    expect(star.skipped[2]?.id).toBe(6);
    expect(star.skipped[2]?.why).toMatch(/whitespace/);
    expect(loop(star.text, 'micrographs').rows).toEqual([]);
  });
});

test('coordinatesStar pairs each accepted micrograph with its picks', () => {
  const star = coordinatesStar([row(1), row(2, { picks: null }), row(3, {}, { ctfFitResolution_A: 9 })]);
  expect(loop(star.text, 'coordinate_files')).toEqual({ labels: ['_rlnMicrographName', '_rlnMicrographCoordinates'], rows: [['output/1/sum.mrc', 'output/1/picks.star']] });
  expect(star.skipped).toEqual([{ id: 2, why: 'no picks yet' }]);
});

describe('CSV', () => {
  test('one row per exposure with every metric and the verdict', () => {
    const csv = metricsCsv([row(1), row(2, {}, { ctfFitResolution_A: 7.5 })]);
    const lines = csv.trimEnd().split('\r\n');
    expect(lines).toHaveLength(3);
    const header = (lines[0] as string).split(',');
    const second = (lines[2] as string).split(',');
    const col = (name: string): string | undefined => second[header.indexOf(name)];
    expect(col('verdict')).toBe('rejected');
    expect(col('reasons')).toBe('CTF fit resolution 7.50 A > 5 A');
    expect(col('ctfFitResolution_A')).toBe('7.5');
    expect(col('defocus_um')).toBe('1.5');
    expect(col('acquired_utc')).toBe('2026-11-22T03:00:02.000Z');
    expect(col('iceRatio')).toBe('');
  });

  test.each([
    ['a plain name', 'FoilHole_1.tiff', 'FoilHole_1.tiff'],
    ['a comma', 'a,b.tiff', '"a,b.tiff"'],
    ['a quote', 'say "hi".tiff', '"say ""hi"".tiff"'],
    ['a newline', 'a\nb.tiff', '"a\nb.tiff"'],
    ['a formula', '=HYPERLINK("http://x")', '"\'=HYPERLINK(""http://x"")"'],
    ['a leading minus', '-1+1', "'-1+1"],
  ])('a field with %s is written safely', (_what, value, expected) => {
    expect(csvField(value)).toBe(expected);
  });

  test('numbers stay numbers; NaN and infinity become empty', () => {
    expect([csvField(-2.5), csvField(Number.NaN), csvField(Number.POSITIVE_INFINITY), csvField(null)]).toEqual(['-2.5', '', '', '']);
  });
});
