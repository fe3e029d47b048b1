/**
 * Difference-of-Gaussians particle picking (after Voss et al. 2009, DoG Picker).
 *
 * For each radius in the range, G(s) - G(k s) is a band-pass whose response peaks on blobs of
 * that size and is already scale-normalised ((k - 1) s^2 times the Laplacian of Gaussian), so
 * the maps of several radii compare directly and we keep their pixelwise maximum. Picks are
 * the local maxima of that map above a robust threshold, thinned greedily from the strongest
 * so that no two are closer than the particle radius, and kept away from the edges.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';

export interface PickOptions {
  /** Smallest and largest particle radius, pixels. */
  minRadius_px: number;
  maxRadius_px: number;
  /** Threshold = median + k * robust std (1.4826 MAD) of the DoG map. Default 4. */
  thresholdK?: number;
  /** Particles darker than the background (raw micrographs, negative CTF at low k). Default true. */
  darkParticles?: boolean;
  /** Picks closer than this to an edge are dropped. Default maxRadius_px. */
  edge_px?: number;
  /** Minimum distance between picks. Default maxRadius_px. */
  minDistance_px?: number;
}

export interface ParticlePick { x: number; y: number; score: number }

/** Ratio of the two Gaussians; 1.6 is Marr-Hildreth's closest DoG to a Laplacian of Gaussian. */
const K = 1.6;

export function pickParticles(image: Float32Array, width: number, height: number, o: PickOptions): ParticlePick[] {
  if (image.length !== width * height) throw new RangeError(`image has ${image.length} pixels, not ${width}x${height}`);
  if (!(o.minRadius_px > 0 && o.maxRadius_px >= o.minRadius_px)) throw new RangeError(`bad radius range ${o.minRadius_px}..${o.maxRadius_px}`);
  const map = dogMap(image, width, height, o.minRadius_px, o.maxRadius_px, o.darkParticles ?? true);
  const edge = Math.max(1, Math.ceil(o.edge_px ?? o.maxRadius_px));
  const threshold = robustThreshold(map, width, height, edge, o.thresholdK ?? 4);
  const candidates: ParticlePick[] = [];
  for (let y = edge; y < height - edge; y++) {
    for (let x = edge; x < width - edge; x++) {
      const v = map[y * width + x] as number;
      if (v > threshold && isLocalMax(map, width, x, y)) candidates.push(refine(map, width, x, y));
    }
  }
  return suppress(candidates, o.minDistance_px ?? o.maxRadius_px);
}

/** Pixelwise maximum of scale-normalised DoG responses over up to four radii in the range. */
function dogMap(image: Float32Array, width: number, height: number, rMin: number, rMax: number, dark: boolean): Float32Array {
  const src = dark ? image.map((v) => -v) : image;
  const steps = rMax > rMin ? Math.min(4, 1 + Math.ceil(Math.log(rMax / rMin) / Math.log(1.25))) : 1;
  const map = new Float32Array(width * height).fill(-Infinity);
  for (let s = 0; s < steps; s++) {
    const r = steps > 1 ? rMin * (rMax / rMin) ** (s / (steps - 1)) : rMin;
    // A disk of radius r answers a Laplacian of Gaussian best at sigma r / sqrt(2); place the
    // geometric mean of the two DoG sigmas there.
    const sigma = r / Math.SQRT2 / Math.sqrt(K);
    const a = gaussianBlur(src, width, height, sigma);
    const b = gaussianBlur(src, width, height, K * sigma);
    for (let i = 0; i < map.length; i++) {
      const v = (a[i] as number) - (b[i] as number);
      if (v > (map[i] as number)) map[i] = v;
    }
  }
  return map;
}

/**
 * Separable Gaussian blur, edges clamped. Each line is copied into a padded buffer so the inner
 * loop has no bounds logic (Math.min/max there runs ~100x slower under jest's vm contexts).
 */
export function gaussianBlur(src: Float32Array, width: number, height: number, sigma: number): Float32Array {
  const reach = Math.max(1, Math.ceil(3 * sigma));
  const kernel = new Float32Array(2 * reach + 1);
  let sum = 0;
  for (let d = -reach; d <= reach; d++) sum += kernel[d + reach] = Math.exp(-(d * d) / (2 * sigma * sigma));
  for (let i = 0; i < kernel.length; i++) kernel[i] = (kernel[i] as number) / sum;
  const rows = blurLines(src, width, height, 1, width, kernel);
  return blurLines(rows, height, width, width, 1, kernel);
}

/** Blur `count` lines of `length` samples (`step` apart; lines `stride` apart). */
function blurLines(src: Float32Array, length: number, count: number, step: number, stride: number, kernel: Float32Array): Float32Array {
  const reach = (kernel.length - 1) / 2;
  const out = new Float32Array(src.length);
  const line = new Float32Array(length + 2 * reach);
  for (let c = 0; c < count; c++) {
    const base = c * stride;
    for (let i = 0; i < line.length; i++) {
      const j = i < reach ? 0 : i >= length + reach ? length - 1 : i - reach;
      line[i] = src[base + j * step] as number;
    }
    for (let i = 0; i < length; i++) {
      let s = 0;
      for (let d = 0; d < kernel.length; d++) s += (kernel[d] as number) * (line[i + d] as number);
      out[base + i * step] = s;
    }
  }
  return out;
}

/** Median + k * 1.4826 MAD over the interior: the particles themselves barely move it. */
function robustThreshold(map: Float32Array, width: number, height: number, edge: number, k: number): number {
  const values: number[] = [];
  for (let y = edge; y < height - edge; y++) for (let x = edge; x < width - edge; x++) values.push(map[y * width + x] as number);
  if (values.length === 0) throw new RangeError(`edge ${edge} leaves no interior in ${width}x${height}`);
  const median = quantile(values, 0.5);
  const mad = quantile(values.map((v) => (v > median ? v - median : median - v)), 0.5);
  return median + k * 1.4826 * mad;
}

function quantile(values: number[], q: number): number {
  const sorted = Float64Array.from(values).sort();
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] as number;
}

function isLocalMax(map: Float32Array, width: number, x: number, y: number): boolean {
  const v = map[y * width + x] as number;
  for (let dy = -1; dy <= 1; dy++) {
    for (let dx = -1; dx <= 1; dx++) {
      if ((dx !== 0 || dy !== 0) && (map[(y + dy) * width + x + dx] as number) > v) return false;
    }
  }
  return true;
}

/** Sub-pixel position from a parabola through the maximum and its neighbours on each axis. */
function refine(map: Float32Array, width: number, x: number, y: number): ParticlePick {
  const at = (dx: number, dy: number): number => map[(y + dy) * width + x + dx] as number;
  const offset = (m: number, c: number, p: number): number => {
    const curvature = m - 2 * c + p;
    return curvature < 0 ? Math.max(-0.5, Math.min(0.5, (0.5 * (m - p)) / curvature)) : 0;
  };
  const c = at(0, 0);
  return { x: x + offset(at(-1, 0), c, at(1, 0)), y: y + offset(at(0, -1), c, at(0, 1)), score: c };
}

/** Greedy non-maximum suppression, strongest first, on a grid of buckets. */
function suppress(candidates: ParticlePick[], distance: number): ParticlePick[] {
  const sorted = [...candidates].sort((a, b) => b.score - a.score);
  const cell = Math.max(1, distance);
  const grid = new Map<string, ParticlePick[]>();
  const kept: ParticlePick[] = [];
  for (const p of sorted) {
    const gx = Math.floor(p.x / cell);
    const gy = Math.floor(p.y / cell);
    let clear = true;
    for (let dy = -1; dy <= 1 && clear; dy++) {
      for (let dx = -1; dx <= 1 && clear; dx++) {
        for (const q of grid.get(`${gx + dx},${gy + dy}`) ?? []) {
          if ((q.x - p.x) ** 2 + (q.y - p.y) ** 2 < distance * distance) {
            clear = false;
            break;
          }
        }
      }
    }
    if (!clear) continue;
    kept.push(p);
    const key = `${gx},${gy}`;
    grid.set(key, [...(grid.get(key) ?? []), p]);
  }
  return kept;
}

/** RELION coordinate STAR text for one micrograph. */
export function formatStar(picks: ParticlePick[], micrographName: string): string {
  // RELION writes coordinate files with an unnamed block; the micrograph goes in a comment.
  const lines = [`# coordinates picked on ${micrographName.replace(/[\r\n]+/g, ' ')}`, '', 'data_', '', 'loop_', '_rlnCoordinateX #1', '_rlnCoordinateY #2', '_rlnAutopickFigureOfMerit #3'];
  for (const p of picks) lines.push(`${p.x.toFixed(2)} ${p.y.toFixed(2)} ${p.score.toPrecision(6)}`);
  return `${lines.join('\n')}\n\n`;
}

/** Write the STAR file atomically: readers never see a half-written one. */
export function writeStar(filePath: string, picks: ParticlePick[], micrographName: string): void {
  const tmp = path.join(path.dirname(filePath), `.${path.basename(filePath)}.${process.pid}.tmp`);
  try {
    fs.writeFileSync(tmp, formatStar(picks, micrographName));
    fs.renameSync(tmp, filePath);
  } catch (err) {
    fs.rmSync(tmp, { force: true });
    throw err;
  }
}
