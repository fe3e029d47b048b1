/**
 * Whole-frame trajectories from external motion correction, brought to the convention of the
 * built-in step (metrics.ts): shifts relative to the first aligned frame, path length and the
 * largest frame-to-frame step. MotionCor2 reports shifts relative to its reference frame (the
 * central one unless -FmRef 0) and RELION relative to the first frame it summed, so rebasing here
 * is what makes the numbers comparable across engines.
 */
import type { MovieMetrics } from '../metrics';

export interface Shift {
  x: number;
  y: number;
}

export function trajectoryMetrics(raw: readonly Shift[]): Pick<MovieMetrics, 'shifts_px' | 'totalMotion_px' | 'maxFrameMotion_px'> {
  const first = raw[0] ?? { x: 0, y: 0 };
  const shifts_px = raw.map((s) => ({ x: s.x - first.x, y: s.y - first.y }));
  let totalMotion_px = 0;
  let maxFrameMotion_px = 0;
  for (let i = 1; i < shifts_px.length; i++) {
    const a = shifts_px[i - 1] as Shift;
    const b = shifts_px[i] as Shift;
    const step = Math.hypot(b.x - a.x, b.y - a.y);
    totalMotion_px += step;
    maxFrameMotion_px = Math.max(maxFrameMotion_px, step);
  }
  return { shifts_px, totalMotion_px, maxFrameMotion_px };
}
