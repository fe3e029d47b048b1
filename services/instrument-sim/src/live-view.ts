/**
 * The "live view": a plausible micrograph of particles in ice, so that driving the microscope
 * visibly does something. Particles sit in a fixed random pattern in specimen coordinates, so
 * moving the stage slides the image; defocus softens their edges, lowers their contrast and
 * brightens the field; dose rate brightens it and calms the shot noise; with the column valves
 * closed there is no beam and the view goes dark.
 */
import { BYTES_PER_PIXEL, type Framebuffer } from './framebuffer';
import { MAGNIFICATIONS, type MicroscopeSnapshot } from './state';
import type { Rect } from './region';

/** Screen pixels per cell of the particle pattern; one particle per cell at most. */
const CELL_PX = 40;
/** Specimen micrometres per screen pixel at 1x; at 1500x the view spans about 17 um. */
const UM_PER_PX_AT_1X = 50;
/** Shot noise, tiled in specimen pixels so that it moves with the stage like everything else. */
const GRAIN_SIZE = 256;
const GRAIN = Uint8Array.from({ length: GRAIN_SIZE * GRAIN_SIZE }, (_, i) => hash(i % GRAIN_SIZE, Math.floor(i / GRAIN_SIZE), 0x5eed) & 0xff);

interface Particle {
  /** Centre in cell units. */
  u: number;
  v: number;
  /** Squared radii (pixels) of the solid core and of where the blurred edge ends. */
  inner2: number;
  outer2: number;
}

export function renderLiveView(fb: Framebuffer, area: Rect, s: MicroscopeSnapshot): void {
  const umPerPx = UM_PER_PX_AT_1X / s.magnification;
  const seed = MAGNIFICATIONS.indexOf(s.magnification) + 1;
  const defocus = Math.abs(s.defocus_um);
  const blurPx = 1 + defocus * 3;
  const contrast = 110 / (1 + defocus * 0.35);
  const beam = s.column_valves_open ? 1 : 0.12;
  const background = (70 + s.dose_rate_e_per_px_s * 1.6 + defocus * 9) * beam;
  const noise = (28 / Math.sqrt(s.dose_rate_e_per_px_s)) * beam;

  // The view's top-left corner in specimen pixels, whole ones so that the image moves by exact
  // pixels (y grows downwards on screen, upwards on the stage).
  const x0 = Math.round(s.stage_x_um / umPerPx) - Math.floor(area.width / 2);
  const y0 = Math.round(-s.stage_y_um / umPerPx) - Math.floor(area.height / 2);
  const cu0 = Math.floor(x0 / CELL_PX) - 1;
  const cv0 = Math.floor(y0 / CELL_PX) - 1;
  const cols = Math.ceil(area.width / CELL_PX) + 3;
  const rows = Math.ceil(area.height / CELL_PX) + 3;
  const particles: (Particle | undefined)[] = [];
  for (let j = 0; j < rows; j++) for (let i = 0; i < cols; i++) particles.push(particleIn(cu0 + i, cv0 + j, seed, blurPx));
  const columnCell = cellIndices(x0, area.width, cu0);
  const rowCell = cellIndices(y0, area.height, cv0);

  // The per-pixel loop calls no Math functions: they are not inlined under every runtime
  // (jest's vm contexts make them ~100x slower), and this loop runs ~260k times a frame.
  const data = fb.data;
  for (let py = 0; py < area.height; py++) {
    const v = (y0 + py) / CELL_PX;
    const cj = rowCell[py] as number;
    const grainRow = ((y0 + py) & (GRAIN_SIZE - 1)) * GRAIN_SIZE;
    let o = ((area.y + py) * fb.width + area.x) * BYTES_PER_PIXEL;
    for (let px = 0; px < area.width; px++, o += BYTES_PER_PIXEL) {
      const u = (x0 + px) / CELL_PX;
      const ci = columnCell[px] as number;
      let density = 0;
      for (let dj = -1; dj <= 1; dj++) {
        for (let di = -1; di <= 1; di++) {
          const p = particles[(cj + dj) * cols + ci + di];
          if (!p) continue;
          const du = (u - p.u) * CELL_PX;
          const dv = (v - p.v) * CELL_PX;
          const d2 = du * du + dv * dv;
          // Solid inside, fading to nothing across the blur width (in squared distance: no sqrt).
          if (d2 <= p.inner2) density += 1;
          else if (d2 < p.outer2) density += (p.outer2 - d2) / (p.outer2 - p.inner2);
        }
      }
      if (density > 1) density = 1;
      const grain = (((GRAIN[grainRow + ((x0 + px) & (GRAIN_SIZE - 1))] as number) / 255) - 0.5) * noise;
      const level = background - contrast * beam * density + grain;
      const value = level <= 0 ? 0 : level >= 255 ? 255 : (level + 0.5) | 0;
      data[o] = value;
      data[o + 1] = value;
      data[o + 2] = value;
      data[o + 3] = 0;
    }
  }
}

/** For each pixel along one axis, the index of its cell in the particle grid. */
function cellIndices(origin: number, length: number, firstCell: number): Int32Array {
  const out = new Int32Array(length);
  for (let i = 0; i < length; i++) out[i] = Math.floor((origin + i) / CELL_PX) - firstCell;
  return out;
}

function particleIn(cu: number, cv: number, seed: number, blurPx: number): Particle | undefined {
  const h = hash(cu, cv, seed);
  if ((h & 0xf) < 5) return undefined; // some cells are empty ice
  const radiusPx = 5 + (((h >>> 20) & 0xff) / 255) * 7;
  const inner = Math.max(0, radiusPx - blurPx / 2);
  const outer = radiusPx + blurPx / 2;
  return {
    u: cu + 0.2 + (((h >>> 4) & 0xff) / 255) * 0.6,
    v: cv + 0.2 + (((h >>> 12) & 0xff) / 255) * 0.6,
    inner2: inner * inner,
    outer2: outer * outer,
  };
}

/** A small integer hash (murmur3's finaliser over three inputs): the same cell always looks the same. */
function hash(x: number, y: number, seed: number): number {
  let h = Math.imul(x | 0, 0x27d4eb2d) ^ Math.imul(y | 0, 0x165667b1) ^ Math.imul(seed, 0x9e3779b1);
  h = Math.imul(h ^ (h >>> 15), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}
