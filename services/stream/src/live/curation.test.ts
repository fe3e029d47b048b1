import { DEFAULT_THRESHOLDS, judge, parseThresholds } from './curation';

const good = { defocusU_A: 15_500, defocusV_A: 14_500, ctfFitResolution_A: 3.4, totalMotion_px: 12, particles: 240 };

describe('judge', () => {
  test('accepts an exposure inside every bound, and names each bound one breaks', () => {
    expect(judge(good, DEFAULT_THRESHOLDS, null, true)).toEqual({ verdict: 'accepted', reasons: [], manual: null });
    const bad = judge({ ...good, ctfFitResolution_A: 8.25, defocusU_A: 52_000, defocusV_A: 50_000 }, DEFAULT_THRESHOLDS, null, true);
    expect(bad.verdict).toBe('rejected');
    expect(bad.reasons).toEqual(['Defocus 5.10 um > 4 um', 'CTF fit resolution 8.25 A > 6 A']);
  });

  test('a threshold edit flips the verdict with no new metrics', () => {
    expect(judge(good, { ctfFitResolution_A: { max: 3 } }, null, true).verdict).toBe('rejected');
    expect(judge(good, { ctfFitResolution_A: { max: 4 } }, null, true).verdict).toBe('accepted');
    expect(judge(good, { particles: { min: 300 } }, null, true).reasons).toEqual(['Particles 240 < 300']);
  });

  test('a missing metric does not judge; an unfinished movie is pending unless already rejected', () => {
    expect(judge({ totalMotion_px: 3 }, DEFAULT_THRESHOLDS, null, false)).toEqual({ verdict: 'pending', reasons: [], manual: null });
    expect(judge({ totalMotion_px: 80 }, DEFAULT_THRESHOLDS, null, false).verdict).toBe('rejected');
    expect(judge({}, DEFAULT_THRESHOLDS, null, true).verdict).toBe('accepted');
  });

  test('a manual mark wins over the thresholds, both ways', () => {
    expect(judge({ ...good, ctfFitResolution_A: 20 }, DEFAULT_THRESHOLDS, 'accept', true)).toEqual({ verdict: 'accepted', reasons: ['accepted by hand'], manual: 'accept' });
    expect(judge(good, DEFAULT_THRESHOLDS, 'reject', true)).toEqual({ verdict: 'rejected', reasons: ['rejected by hand'], manual: 'reject' });
  });
});

describe('parseThresholds', () => {
  test('takes numbers or numeric strings from a form; an empty field means no bound', () => {
    expect(parseThresholds({ ctfFitResolution_A: { max: '6.5' }, defocus_um: { min: '', max: 3 }, particles: { min: '', max: '' } })).toEqual({ ctfFitResolution_A: { max: 6.5 }, defocus_um: { max: 3 } });
  });

  test.each([
    ['a threshold that is not a number', { ctfFitResolution_A: { max: 'six' } }, /ctfFitResolution_A\.max/],
    ['infinity', { ctfFitResolution_A: { max: 'Infinity' } }, /ctfFitResolution_A\.max/],
    ['NaN', { ctfFitResolution_A: { max: Number.NaN } }, /ctfFitResolution_A\.max/],
    ['min above max', { defocus_um: { min: 4, max: 1 } }, /min must not exceed max/],
    ['an unknown metric', { happiness: { min: 1 } }, /happiness/],
    ['an unknown side', { particles: { least: 1 } }, /least/],
    ['not an object', 'strict', /invalid thresholds/],
  ])('refuses %s with the field named', (_what, input, message) => {
    expect(() => parseThresholds(input)).toThrow(message);
  });
});
