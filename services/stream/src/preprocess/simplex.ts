/** Nelder-Mead minimisation: small, derivative-free, enough for a handful of parameters. */
export interface SimplexResult { x: number[]; value: number; iterations: number }

export function nelderMead(f: (x: number[]) => number, start: number[], steps: number[], o: { maxIterations: number; tolerance: number }): SimplexResult {
  const n = start.length;
  let pts = [start, ...start.map((_, i) => start.map((v, j) => (i === j ? v + (steps[i] ?? 1) : v)))].map((x) => ({ x, v: f(x) }));
  const combine = (a: number[], b: number[], t: number): number[] => a.map((ai, i) => ai + t * ((b[i] as number) - ai));
  let it = 0;
  for (; it < o.maxIterations; it++) {
    pts.sort((a, b) => a.v - b.v);
    const best = pts[0] as { x: number[]; v: number };
    const worst = pts[n] as { x: number[]; v: number };
    const second = pts[n - 1] as { x: number[]; v: number };
    if (Math.abs(worst.v - best.v) <= o.tolerance * (Math.abs(best.v) + 1e-12)) break;
    const centroid = start.map((_, i) => pts.slice(0, n).reduce((s, p) => s + (p.x[i] as number), 0) / n);
    const reflected = combine(centroid, worst.x, -1);
    const rv = f(reflected);
    if (rv < best.v) {
      const expanded = combine(centroid, worst.x, -2);
      const ev = f(expanded);
      pts[n] = ev < rv ? { x: expanded, v: ev } : { x: reflected, v: rv };
    } else if (rv < second.v) {
      pts[n] = { x: reflected, v: rv };
    } else {
      const contracted = combine(centroid, worst.x, 0.5);
      const cv = f(contracted);
      if (cv < worst.v) {
        pts[n] = { x: contracted, v: cv };
      } else {
        pts = pts.map((p, i) => (i === 0 ? p : { x: combine(best.x, p.x, 0.5), v: f(combine(best.x, p.x, 0.5)) }));
      }
    }
  }
  pts.sort((a, b) => a.v - b.v);
  const best = pts[0] as { x: number[]; v: number };
  return { x: best.x, value: best.v, iterations: it };
}
