import type { MovieMetrics } from '../preprocess/metrics';
import { type DashboardMovie, ExposureIndex } from './exposure-index';

const T0 = Date.UTC(2024, 4, 14, 10);

function movie(id: number, state: string, metrics: MovieMetrics, lagS = 20): DashboardMovie {
  const mtimeMs = T0 + id * 10_000;
  return { id, path: `Images-Disc1/FoilHole_${id}_Data.tiff`, mtimeMs, state, step: null, stepIndex: state === 'done' ? 6 : 0, reason: null, times: state === 'done' ? { done: mtimeMs + lagS * 1000 } : {}, metrics };
}

const good: MovieMetrics = { defocusU_A: 15_100, defocusV_A: 14_900, ctfFitResolution_A: 3.8, totalMotion_px: 12, movieBytes: 160e6, reducedBytes: 3e6, files: { sumThumbnail: 'sum.png', ctfPlot: 'ctf.png' } };

test('rows are judged, re-judged on a threshold edit, and a mark wins', () => {
  const index = new ExposureIndex([movie(1, 'done', good), movie(2, 'done', { ...good, ctfFitResolution_A: 5.5 }), movie(3, 'running', { totalMotion_px: 80 }), movie(4, 'failed', {})], { ctfFitResolution_A: { max: 6 }, totalMotion_px: { max: 50 } }, new Map());
  expect(index.rows().map((r) => r.verdict)).toEqual(['accepted', 'accepted', 'rejected', 'failed']);
  expect(index.get(1)).toMatchObject({ name: 'FoilHole_1_Data.tiff', defocus_um: 1.5, thumbs: ['sum.png', 'ctf.png'] });
  const version = index.version;
  index.setThresholds({ ctfFitResolution_A: { max: 5 } });
  expect(index.version).toBeGreaterThan(version);
  expect(index.rows().map((r) => r.verdict)).toEqual(['accepted', 'rejected', 'pending', 'failed']);
  expect(index.get(2)?.reasons).toEqual(['CTF fit resolution 5.50 A > 5 A']);
  index.setMark(2, 'accept');
  expect(index.get(2)).toMatchObject({ verdict: 'accepted', manual: 'accept' });
  expect(index.verdicts()).toEqual([[1, 'accepted', []], [2, 'accepted', ['accepted by hand']], [3, 'pending', []], [4, 'failed', ['processing failed']]]);
});

test('the summary: rates, lag now and p95, reduction', () => {
  const movies = Array.from({ length: 100 }, (_, i) => movie(i + 1, 'done', good, i === 99 ? 40 : 10 + (i % 20)));
  const index = new ExposureIndex(movies, {}, new Map());
  const newest = T0 + 100 * 10_000;
  const s = index.stats(newest + 1000);
  // Lag now is the most recently finished movie's, not the slowest's.
  expect(s.lagNowS).toBe(40);
  expect(s.lagP95S).toBe(28);
  expect(s.reduction).toBeCloseTo(53.33, 1);
  // 100 movies over 1000 s: 360 an hour.
  expect(s.acquiredPerHour).toBeGreaterThan(350);
  expect(s.acquiredPerHour).toBeLessThan(370);
  expect(index.upsert(movie(101, 'queued', {})).verdict).toBe('pending');
  expect(index.stats(newest).pending).toBe(1);
});
