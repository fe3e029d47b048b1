import { AlarmRules, alarmsSection, type Vitals } from './alarms';

const rules = (input: unknown) => new AlarmRules(alarmsSection.parse({ rules: input }).rules);
const vitals = (v: Partial<Vitals>): Vitals => ({ now: 0, lastMovieAt: null, lagS: 0, diskFreePercent: 50, ...v });

describe('AlarmRules', () => {
  test('CTF worse than X for N in a row fires once per episode and clears once', () => {
    const r = rules([{ kind: 'ctf_worse', above_A: 5, in_a_row: 3 }]);
    const seq = [4, 6, 7, 8, 9, 10, 4, 6, 7, 8];
    const events = seq.flatMap((res, i) => r.movie(`m${i}`, { ctfFitResolution_A: res }, i));
    expect(events.map((e) => [e.type, e.at])).toEqual([
      ['fired', 3],
      ['cleared', 6],
      ['fired', 9],
    ]);
    expect(events[0]?.message).toBe('m3: CTF fit 8.0 A');
    expect(events[0]?.rule).toBe('CTF fit worse than 5 A for 3 movies in a row');
    expect(r.current[0]).toMatchObject({ active: true, since: 9 });
  });

  test('a movie without the metric neither extends nor breaks a streak', () => {
    const r = rules([{ kind: 'ctf_worse', above_A: 5, in_a_row: 2 }]);
    expect(r.movie('a', { ctfFitResolution_A: 9 }, 1)).toEqual([]);
    expect(r.movie('b', { totalMotion_px: 3 }, 2)).toEqual([]);
    expect(r.movie('c', { ctfFitResolution_A: 9 }, 3).map((e) => e.type)).toEqual(['fired']);
  });

  test('defocus outside a range', () => {
    const r = rules([{ kind: 'defocus_outside', min_um: 0.5, max_um: 3 }]);
    expect(r.movie('a', { defocusU_A: 20_000, defocusV_A: 18_000 }, 1)).toEqual([]);
    expect(r.movie('b', { defocusU_A: 41_000, defocusV_A: 39_000 }, 2)).toEqual([{ type: 'fired', rule: 'defocus outside 0.5-3 um', message: 'b: defocus 4.00 um', at: 2 }]);
    expect(r.movie('c', { defocusU_A: 40_000, defocusV_A: 40_000 }, 3)).toEqual([]);
    expect(r.movie('d', { defocusU_A: 10_000, defocusV_A: 10_000 }, 4).map((e) => e.type)).toEqual(['cleared']);
  });

  test('no new movie, lag and disk are checked on the clock', () => {
    const r = rules([
      { kind: 'no_new_movie', minutes: 10 },
      { kind: 'lag_above', seconds: 30 },
      { kind: 'disk_nearly_full', free_percent_below: 5 },
    ]);
    expect(r.tick(vitals({ now: 3_600_000 }))).toEqual([]); // no movie yet: nothing is missing
    const t0 = 1_000_000;
    expect(r.tick(vitals({ now: t0 + 9 * 60_000, lastMovieAt: t0 }))).toEqual([]);
    expect(r.tick(vitals({ now: t0 + 11 * 60_000, lastMovieAt: t0, lagS: 45, diskFreePercent: 4.2 })).map((e) => [e.type, e.message])).toEqual([
      ['fired', 'no new movie for 11 min'],
      ['fired', 'processing is 45 s behind acquisition'],
      ['fired', '4.2% disk free'],
    ]);
    expect(r.tick(vitals({ now: t0 + 12 * 60_000, lastMovieAt: t0, lagS: 50, diskFreePercent: 4 }))).toEqual([]);
    expect(r.tick(vitals({ now: t0 + 13 * 60_000, lastMovieAt: t0 + 12 * 60_000, lagS: 3, diskFreePercent: 40 })).map((e) => e.type)).toEqual(['cleared', 'cleared', 'cleared']);
  });

  test.each([
    ['a threshold that is not a number', [{ kind: 'ctf_worse', above_A: 'five' }], /above_A/],
    ['an unknown kind', [{ kind: 'moon_phase' }], /kind/],
    ['an inverted range', [{ kind: 'defocus_outside', min_um: 3, max_um: 1 }], /min_um must be below max_um/],
    ['a negative count', [{ kind: 'ctf_worse', above_A: 5, in_a_row: 0 }], /in_a_row/],
  ])('refuses %s', (_what, input, message) => {
    expect(() => rules(input)).toThrow(message);
  });
});
