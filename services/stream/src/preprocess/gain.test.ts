import { AppError } from '@cloudlet/core';
import { applyGain, type GainImage, orientGain } from './gain';

/** 3 wide, 2 high:  1 2 3 / 4 5 6. */
const gain: GainImage = { data: Float32Array.from([1, 2, 3, 4, 5, 6]), width: 3, height: 2 };

function rows(g: GainImage): number[][] {
  return Array.from({ length: g.height }, (_, y) => [...g.data.subarray(y * g.width, (y + 1) * g.width)]);
}

describe('orientGain', () => {
  it.each([
    [{}, [[1, 2, 3], [4, 5, 6]]],
    [{ rotate: 90 }, [[4, 1], [5, 2], [6, 3]]],
    [{ rotate: 180 }, [[6, 5, 4], [3, 2, 1]]],
    [{ rotate: 270 }, [[3, 6], [2, 5], [1, 4]]],
    [{ flipX: true }, [[3, 2, 1], [6, 5, 4]]],
    [{ flipY: true }, [[4, 5, 6], [1, 2, 3]]],
    [{ flipX: true, flipY: true }, [[6, 5, 4], [3, 2, 1]]],
    [{ rotate: 90, flipX: true }, [[1, 4], [2, 5], [3, 6]]],
    [{ rotate: 270, flipY: true }, [[1, 4], [2, 5], [3, 6]]],
  ] as const)('%j', (orientation, expected) => {
    const out = orientGain(gain, orientation);
    expect(rows(out)).toEqual(expected);
    expect(out.width).toBe(expected[0].length);
  });
});

describe('applyGain', () => {
  it('multiplies pixel by pixel, in place', () => {
    const frame = Float32Array.from([1, 1, 2, 2, 0.5, 10]);
    expect([...applyGain(frame, 3, 2, gain)]).toEqual([1, 2, 6, 8, 2.5, 60]);
    expect([...frame]).toEqual([1, 2, 6, 8, 2.5, 60]);
  });

  it('a gain of the wrong size is an error naming both sizes', () => {
    const rotated = orientGain(gain, { rotate: 90 });
    let err: unknown;
    try {
      applyGain(new Float32Array(6), 3, 2, rotated);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(AppError);
    expect((err as AppError).message).toMatch(/gain reference is 2x3 .* movie frames are 3x2/);
  });
});
