/** Rectangles and a bounded dirty region: what changed on screen and still has to be sent. */

export interface Rect {
  readonly x: number;
  readonly y: number;
  readonly width: number;
  readonly height: number;
}

export function rect(x: number, y: number, width: number, height: number): Rect {
  return { x, y, width, height };
}

export function isEmpty(r: Rect): boolean {
  return r.width <= 0 || r.height <= 0;
}

export function area(r: Rect): number {
  return isEmpty(r) ? 0 : r.width * r.height;
}

export function contains(outer: Rect, inner: Rect): boolean {
  return inner.x >= outer.x && inner.y >= outer.y && inner.x + inner.width <= outer.x + outer.width && inner.y + inner.height <= outer.y + outer.height;
}

export function containsPoint(r: Rect, x: number, y: number): boolean {
  return x >= r.x && y >= r.y && x < r.x + r.width && y < r.y + r.height;
}

/** The overlap of `a` and `b`; width or height 0 when they do not overlap. */
export function intersect(a: Rect, b: Rect): Rect {
  const x = Math.max(a.x, b.x);
  const y = Math.max(a.y, b.y);
  const right = Math.min(a.x + a.width, b.x + b.width);
  const bottom = Math.min(a.y + a.height, b.y + b.height);
  return { x, y, width: Math.max(0, right - x), height: Math.max(0, bottom - y) };
}

export function bounds(a: Rect, b: Rect): Rect {
  const x = Math.min(a.x, b.x);
  const y = Math.min(a.y, b.y);
  return { x, y, width: Math.max(a.x + a.width, b.x + b.width) - x, height: Math.max(a.y + a.height, b.y + b.height) - y };
}

/** `a` minus `b` as up to four disjoint rectangles (bands above, below, left, right of the overlap). */
export function subtract(a: Rect, b: Rect): Rect[] {
  const o = intersect(a, b);
  if (isEmpty(o)) return [a];
  const parts = [
    rect(a.x, a.y, a.width, o.y - a.y),
    rect(a.x, o.y + o.height, a.width, a.y + a.height - (o.y + o.height)),
    rect(a.x, o.y, o.x - a.x, o.height),
    rect(o.x + o.width, o.y, a.x + a.width - (o.x + o.width), o.height),
  ];
  return parts.filter((p) => !isEmpty(p));
}

/**
 * A set of rectangles that never grows past `maxRects`: when it would, everything collapses
 * into the bounding box. Sending a few extra pixels is cheaper than tracking a slow client's
 * every change, and it keeps per-client memory constant.
 */
export class DirtyRegion {
  private rects: Rect[] = [];

  constructor(private readonly maxRects = 16) {}

  get size(): number {
    return this.rects.length;
  }

  add(r: Rect): void {
    if (isEmpty(r)) return;
    if (this.rects.some((d) => contains(d, r))) return;
    this.rects = this.rects.filter((d) => !contains(r, d));
    this.rects.push(r);
    if (this.rects.length > this.maxRects) {
      this.rects = [this.rects.reduce(bounds)];
    }
  }

  /** Removes and returns the parts inside `window`; what lies outside stays dirty. */
  take(window: Rect): Rect[] {
    const taken: Rect[] = [];
    const kept: Rect[] = [];
    for (const d of this.rects) {
      const inside = intersect(d, window);
      if (isEmpty(inside)) {
        kept.push(d);
        continue;
      }
      taken.push(inside);
      kept.push(...subtract(d, inside));
    }
    this.rects = [];
    for (const k of kept) this.add(k);
    return taken;
  }

  clear(): void {
    this.rects = [];
  }
}
