import { Framebuffer } from './framebuffer';
import { decodePixel, type PixelFormat, PixelEncoder, pixelFormatProblem, readPixelFormat, SERVER_PIXEL_FORMAT, writePixelFormat } from './pixel-format';
import { rect } from './region';

const RGB565_BE: PixelFormat = { bitsPerPixel: 16, depth: 16, bigEndian: true, trueColour: true, redMax: 31, greenMax: 63, blueMax: 31, redShift: 11, greenShift: 5, blueShift: 0 };
const BGR233: PixelFormat = { bitsPerPixel: 8, depth: 8, bigEndian: false, trueColour: true, redMax: 7, greenMax: 7, blueMax: 3, redShift: 0, greenShift: 3, blueShift: 6 };
const RGBX_BE: PixelFormat = { ...SERVER_PIXEL_FORMAT, bigEndian: true, redShift: 24, greenShift: 16, blueShift: 8 };

function screen(): Framebuffer {
  const fb = new Framebuffer(3, 2);
  [0xff0000, 0x00ff00, 0x0000ff, 0xffffff, 0x000000, 0x808080].forEach((c, i) => fb.setPixel(i % 3, Math.floor(i / 3), c));
  return fb;
}

describe('pixel formats', () => {
  test('the server format is 32 bpp little-endian with red at bit 16: bytes B, G, R, 0', () => {
    const out = new PixelEncoder(SERVER_PIXEL_FORMAT).encode(screen(), rect(0, 0, 1, 1));
    expect([...out]).toEqual([0x00, 0x00, 0xff, 0x00]);
  });

  test('writes and reads back the 16-byte PIXEL_FORMAT', () => {
    for (const f of [SERVER_PIXEL_FORMAT, RGB565_BE, BGR233]) expect(readPixelFormat(writePixelFormat(f))).toEqual(f);
  });

  test.each([
    ['server', SERVER_PIXEL_FORMAT, 0],
    ['32 bpp big-endian, other shifts', RGBX_BE, 0],
    ['rgb565 big-endian', RGB565_BE, 5],
    ['bgr233', BGR233, 43],
  ] as const)('%s round-trips colours (within the format precision)', (_name, format, tolerance) => {
    const fb = screen();
    const enc = new PixelEncoder(format);
    const out = enc.encode(fb, rect(0, 0, 3, 2));
    expect(out.length).toBe(6 * enc.bytesPerPixel);
    for (let i = 0; i < 6; i++) {
      const want = fb.pixel(i % 3, Math.floor(i / 3));
      const got = decodePixel(out, i * enc.bytesPerPixel, format);
      [(want >> 16) & 0xff, (want >> 8) & 0xff, want & 0xff].forEach((c, k) => expect(Math.abs((got[k] as number) - c)).toBeLessThanOrEqual(tolerance));
    }
  });

  test('a sub-rectangle is encoded row by row', () => {
    const out = new PixelEncoder(RGB565_BE).encode(screen(), rect(1, 0, 2, 2));
    expect(out.toString('hex')).toBe(['07e0', '001f', '0000', '8410'].join(''));
  });

  test('unsupported formats are named, not half-served', () => {
    expect(pixelFormatProblem({ ...SERVER_PIXEL_FORMAT, bitsPerPixel: 24 })).toMatch(/24 bits per pixel/);
    expect(pixelFormatProblem({ ...SERVER_PIXEL_FORMAT, trueColour: false })).toMatch(/colour-map/);
    expect(pixelFormatProblem({ ...RGB565_BE, redMax: 30 })).toMatch(/red-max 30/);
    expect(pixelFormatProblem({ ...RGB565_BE, redShift: 12 })).toMatch(/does not fit/);
    expect(() => new PixelEncoder({ ...SERVER_PIXEL_FORMAT, bitsPerPixel: 24 })).toThrow(RangeError);
  });
});
