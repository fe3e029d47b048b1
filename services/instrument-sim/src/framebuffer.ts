/** The screen of the simulated control PC: 4 bytes a pixel, R G B X, rows top to bottom. */
import { intersect, isEmpty, type Rect, rect } from './region';

export const BYTES_PER_PIXEL = 4;

/** Colours are 0xRRGGBB numbers throughout. */
export type Rgb = number;

export function rgb(r: number, g: number, b: number): Rgb {
  return ((r & 0xff) << 16) | ((g & 0xff) << 8) | (b & 0xff);
}

export class Framebuffer {
  readonly data: Buffer;

  constructor(
    readonly width: number,
    readonly height: number,
  ) {
    if (!Number.isInteger(width) || !Number.isInteger(height) || width < 1 || height < 1 || width > 0xffff || height > 0xffff) {
      throw new RangeError(`framebuffer size ${width}x${height} is not a valid RFB size`);
    }
    this.data = Buffer.alloc(width * height * BYTES_PER_PIXEL);
  }

  get bounds(): Rect {
    return rect(0, 0, this.width, this.height);
  }

  pixel(x: number, y: number): Rgb {
    const i = (y * this.width + x) * BYTES_PER_PIXEL;
    return rgb(this.data[i] ?? 0, this.data[i + 1] ?? 0, this.data[i + 2] ?? 0);
  }

  setPixel(x: number, y: number, colour: Rgb): void {
    if (x < 0 || y < 0 || x >= this.width || y >= this.height) return;
    const i = (y * this.width + x) * BYTES_PER_PIXEL;
    this.data[i] = (colour >> 16) & 0xff;
    this.data[i + 1] = (colour >> 8) & 0xff;
    this.data[i + 2] = colour & 0xff;
    this.data[i + 3] = 0;
  }

  /** Fills `r` clipped to the screen. */
  fill(r: Rect, colour: Rgb): void {
    const c = intersect(r, this.bounds);
    if (isEmpty(c)) return;
    const pixel = Buffer.from([(colour >> 16) & 0xff, (colour >> 8) & 0xff, colour & 0xff, 0]);
    for (let y = c.y; y < c.y + c.height; y++) {
      const start = (y * this.width + c.x) * BYTES_PER_PIXEL;
      this.data.fill(pixel, start, start + c.width * BYTES_PER_PIXEL);
    }
  }

  /** A border of `thickness` pixels just inside `r`. */
  outline(r: Rect, colour: Rgb, thickness = 1): void {
    this.fill(rect(r.x, r.y, r.width, thickness), colour);
    this.fill(rect(r.x, r.y + r.height - thickness, r.width, thickness), colour);
    this.fill(rect(r.x, r.y, thickness, r.height), colour);
    this.fill(rect(r.x + r.width - thickness, r.y, thickness, r.height), colour);
  }
}
