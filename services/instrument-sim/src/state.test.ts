import { DEFOCUS_MAX_UM, DEFOCUS_MIN_UM, MAGNIFICATIONS, type MicroscopeSnapshot, MicroscopeState, STAGE_LIMIT_UM } from './state';

function recorder(state: MicroscopeState): MicroscopeSnapshot[] {
  const seen: MicroscopeSnapshot[] = [];
  state.on('change', (s) => seen.push(s));
  return seen;
}

describe('microscope state', () => {
  test('starts ready, valves closed, not acquiring', () => {
    const s = new MicroscopeState().snapshot();
    expect(s).toMatchObject({ stage_x_um: 0, stage_y_um: 0, defocus_um: -1.5, dose_rate_e_per_px_s: 15, column_valves_open: false, acquiring: false, exposures: 0, status: 'Ready' });
    expect(MAGNIFICATIONS).toContain(s.magnification);
    expect(Object.isFrozen(s)).toBe(true);
  });

  test('every change emits a new snapshot with the next seq; a no-op emits nothing', () => {
    const state = new MicroscopeState();
    const seen = recorder(state);
    state.moveStage(10, 0);
    state.moveStage(0, -20);
    state.setStage(10, -20);
    expect(seen.map((s) => [s.seq, s.stage_x_um, s.stage_y_um])).toEqual([
      [1, 10, 0],
      [2, 10, -20],
    ]);
    expect(state.snapshot()).toBe(seen[1]);
  });

  test('the stage is clamped to its travel, and the status says so', () => {
    const state = new MicroscopeState();
    state.setStage(995, -2000);
    expect(state.snapshot()).toMatchObject({ stage_x_um: 995, stage_y_um: -STAGE_LIMIT_UM, status: expect.stringMatching(/limit/) as unknown });
    state.moveStage(10, 0);
    expect(state.snapshot().stage_x_um).toBe(STAGE_LIMIT_UM);
    state.moveStage(-10, 0);
    expect(state.snapshot()).toMatchObject({ stage_x_um: 990, status: 'Ready' });
  });

  test('magnification follows the ladder and stops at its ends', () => {
    const state = new MicroscopeState();
    state.setMagnification(1);
    expect(state.snapshot().magnification).toBe(MAGNIFICATIONS[0]);
    state.stepMagnification(1);
    expect(state.snapshot().magnification).toBe(MAGNIFICATIONS[1]);
    state.setMagnification(100_000);
    expect(state.snapshot().magnification).toBe(96000);
    state.stepMagnification(100);
    expect(state.snapshot()).toMatchObject({ magnification: MAGNIFICATIONS[MAGNIFICATIONS.length - 1], status: expect.stringMatching(/limit/) as unknown });
  });

  test('defocus moves in 0.1 um steps without drifting, within -5.0..-0.5', () => {
    const state = new MicroscopeState();
    for (let i = 0; i < 7; i++) state.stepDefocus(-1);
    expect(state.snapshot().defocus_um).toBe(-2.2);
    state.stepDefocus(-100);
    expect(state.snapshot().defocus_um).toBe(DEFOCUS_MIN_UM);
    state.setDefocus(0.3);
    expect(state.snapshot().defocus_um).toBe(DEFOCUS_MAX_UM);
    state.setDefocus(-1.23);
    expect(state.snapshot().defocus_um).toBe(-1.2);
  });

  test('dose rate is a whole number within 1..50', () => {
    const state = new MicroscopeState();
    state.setDoseRate(0);
    expect(state.snapshot().dose_rate_e_per_px_s).toBe(1);
    state.setDoseRate(80);
    expect(state.snapshot().dose_rate_e_per_px_s).toBe(50);
    state.stepDoseRate(-1);
    expect(state.snapshot().dose_rate_e_per_px_s).toBe(49);
  });

  test('values that are not finite numbers are refused, not clamped', () => {
    const state = new MicroscopeState();
    expect(() => state.setStage(Number.NaN, 0)).toThrow(RangeError);
    expect(() => state.setDefocus(Number.POSITIVE_INFINITY)).toThrow(RangeError);
    expect(() => state.setDoseRate('5' as unknown as number)).toThrow(RangeError);
    expect(state.snapshot().seq).toBe(0);
  });

  test('acquiring is refused while the column valves are closed, and the status says why', () => {
    const state = new MicroscopeState();
    const seen = recorder(state);
    expect(state.startAcquiring()).toBe(false);
    expect(state.snapshot()).toMatchObject({ acquiring: false, status: 'Column valves closed: open them to acquire' });
    expect(seen).toHaveLength(1);
    state.stop();
  });

  describe('with a clock', () => {
    beforeEach(() => jest.useFakeTimers());
    afterEach(() => jest.useRealTimers());

    test('exposures tick at the interval while acquiring, and stop with acquisition', () => {
      const state = new MicroscopeState({ exposureIntervalMs: 1000 });
      state.setValves(true);
      expect(state.startAcquiring()).toBe(true);
      expect(state.snapshot()).toMatchObject({ acquiring: true, exposures: 0, status: 'Acquiring exposure 1' });
      jest.advanceTimersByTime(3500);
      expect(state.snapshot()).toMatchObject({ exposures: 3, status: 'Acquiring exposure 4' });
      state.toggleAcquire();
      expect(state.snapshot()).toMatchObject({ acquiring: false, status: 'Acquisition stopped after 3 exposures' });
      expect(jest.getTimerCount()).toBe(0);
      jest.advanceTimersByTime(5000);
      expect(state.snapshot().exposures).toBe(3);
    });

    test('closing the valves stops acquisition', () => {
      const state = new MicroscopeState({ exposureIntervalMs: 1000 });
      state.toggleValves();
      state.toggleAcquire();
      state.toggleValves();
      expect(state.snapshot()).toMatchObject({ column_valves_open: false, acquiring: false, status: 'Acquisition stopped: column valves closed' });
      expect(jest.getTimerCount()).toBe(0);
    });

    test('stop() leaves no timer behind', () => {
      const state = new MicroscopeState({ exposureIntervalMs: 1000 });
      state.setValves(true);
      state.startAcquiring();
      expect(jest.getTimerCount()).toBe(1);
      state.stop();
      expect(jest.getTimerCount()).toBe(0);
    });

    test('starting twice keeps one timer', () => {
      const state = new MicroscopeState({ exposureIntervalMs: 1000 });
      state.setValves(true);
      state.startAcquiring();
      state.startAcquiring();
      expect(jest.getTimerCount()).toBe(1);
      state.stop();
    });
  });
});
