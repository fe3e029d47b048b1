/**
 * Gain correction: each frame multiplied, pixel by pixel, by a gain reference. References
 * often come rotated or flipped relative to the movie (the camera software and the detector
 * disagree about which way is up), so a reference is first oriented: rotated clockwise as
 * displayed with row 0 at the top, then flipped. Check the result on one movie: vendors do
 * not agree on which way "rotate 90" turns.
 */
import { AppError } from '@cloudlet/core';

export interface GainImage {
  data: Float32Array;
  width: number;
  height: number;
}

export interface GainOrientation {
  /** Degrees clockwise, applied before the flips. */
  rotate?: 0 | 90 | 180 | 270;
  /** Mirror left-right. */
  flipX?: boolean;
  /** Mirror top-bottom. */
  flipY?: boolean;
}

export function orientGain(gain: GainImage, o: GainOrientation): GainImage {
  const { width: w, height: h, data } = gain;
  if (data.length !== w * h) throw new RangeError(`gain reference has ${data.length} pixels, not ${w}x${h}`);
  const rotate = o.rotate ?? 0;
  const quarter = rotate === 90 || rotate === 270;
  const ow = quarter ? h : w;
  const oh = quarter ? w : h;
  const out = new Float32Array(w * h);
  for (let y = 0; y < oh; y++) {
    for (let x = 0; x < ow; x++) {
      // Undo the flips, then the rotation, to find the source pixel of output (x, y).
      const fx = o.flipX ? ow - 1 - x : x;
      const fy = o.flipY ? oh - 1 - y : y;
      const [sx, sy] = rotate === 90 ? [fy, h - 1 - fx] : rotate === 180 ? [w - 1 - fx, h - 1 - fy] : rotate === 270 ? [w - 1 - fy, fx] : [fx, fy];
      out[y * ow + x] = data[sy * w + sx] as number;
    }
  }
  return { data: out, width: ow, height: oh };
}

/** Multiplies `frame` (width x height) by `gain` in place and returns it. */
export function applyGain(frame: Float32Array, width: number, height: number, gain: GainImage): Float32Array {
  if (gain.width !== width || gain.height !== height) {
    throw new AppError(`gain reference is ${gain.width}x${gain.height} (after orienting) but the movie frames are ${width}x${height}`, { code: 'gain_mismatch', status: 422 });
  }
  if (frame.length !== width * height) throw new RangeError(`frame has ${frame.length} pixels, not ${width}x${height}`);
  const g = gain.data;
  for (let i = 0; i < frame.length; i++) frame[i] = (frame[i] as number) * (g[i] as number);
  return frame;
}
