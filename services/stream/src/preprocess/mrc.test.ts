import fs from 'node:fs';
import path from 'node:path';
import { AppError } from '@cloudlet/core';
import { tempDir } from '@cloudlet/core/testing';
import { toFloat16Bits } from './float16';
import { MRC_HEADER_BYTES, type MrcMode, readMrcFrame, readMrcFrames, readMrcHeader, writeMrc } from './mrc';

let dir: string;
let n = 0;

beforeAll(() => {
  dir = tempDir('cloudlet-mrc-');
});

afterAll(() => {
  fs.rmSync(dir, { recursive: true, force: true });
});

function file(): string {
  return path.join(dir, `movie-${++n}.mrc`);
}

/** Frame z of a width x height movie: a pattern inside [lo, hi], different per frame. */
function pattern(width: number, height: number, z: number, lo: number, hi: number, integers = true): Float32Array {
  const f = new Float32Array(width * height);
  const span = hi - lo + 1;
  for (let i = 0; i < f.length; i++) f[i] = integers ? lo + ((i * 7919 + z * 104729) % span) : lo + (((i * 7919 + z * 104729) % 1000) / 1000) * (hi - lo);
  return f;
}

async function all(p: string): Promise<Float32Array[]> {
  const frames: Float32Array[] = [];
  for await (const f of readMrcFrames(p)) frames.push(f);
  return frames;
}

/** Bit-exact equality, so -0 and NaN count. */
function expectSame(actual: Float32Array, expected: ArrayLike<number>): void {
  expect(actual.length).toBe(expected.length);
  for (let i = 0; i < actual.length; i++) {
    if (!Object.is(actual[i], Math.fround(expected[i] as number))) throw new Error(`pixel ${i}: got ${actual[i]}, expected ${expected[i]}`);
  }
}

const FLOAT16_EDGES = [0, -0, 1, -1, 65504, -65504, 2 ** -24, -(2 ** -24), 2 ** -14, 2 ** -14 - 2 ** -24, 1 + 2 ** -10, 0.333251953125, Infinity, -Infinity, NaN, 1025, 2047, 65472];

describe('writeMrc then readMrc', () => {
  const cases: [MrcMode, number, number, number, number][] = [
    [0, 7, 5, -128, 127],
    [1, 6, 4, -32768, 32767],
    [6, 5, 3, 0, 65535],
    [101, 7, 3, 0, 15],
    [101, 1, 4, 0, 15],
    [101, 8, 2, 0, 15],
  ];
  it.each(cases)('mode %i, %ix%i, round-trips bit-exact', async (mode, width, height, lo, hi) => {
    const p = file();
    const frames = [0, 1, 2].map((z) => pattern(width, height, z, lo, hi));
    frames[0]?.set([lo, hi], 0);
    await writeMrc(p, { width, height, frames, mode, pixelSizeA: 0.83 });
    const h = await readMrcHeader(p);
    expect(h).toMatchObject({ width, height, frames: 3, mode, littleEndian: true });
    const read = await all(p);
    read.forEach((f, z) => expectSame(f, frames[z] as Float32Array));
    expectSame(await readMrcFrame(p, h, 1), frames[1] as Float32Array);
  });

  it('mode 101 packs the low nibble first with rows padded to whole bytes', async () => {
    const p = file();
    await writeMrc(p, { width: 3, height: 2, frames: [[1, 2, 3, 4, 5, 6]], mode: 101 });
    expect([...fs.readFileSync(p).subarray(1024)]).toEqual([0x21, 0x03, 0x54, 0x06]);
  });

  it('mode 2 keeps every float32, NaN and -0 included', async () => {
    const p = file();
    const frame = Float32Array.from([NaN, -0, 3.4028234663852886e38, -1.401298464324817e-45, Infinity, 0.1]);
    await writeMrc(p, { width: 3, height: 2, frames: [frame], mode: 2 });
    expectSame((await all(p))[0] as Float32Array, frame);
  });

  it('mode 12 (float16) is exact for representable values, edge values included', async () => {
    const p = file();
    await writeMrc(p, { width: FLOAT16_EDGES.length, height: 1, frames: [FLOAT16_EDGES], mode: 12 });
    expectSame((await all(p))[0] as Float32Array, FLOAT16_EDGES);
  });

  it('mode 12 rounds other values to nearest even and saturates to infinity', () => {
    expect(toFloat16Bits(1 + 2 ** -11)).toBe(0x3c00);
    expect(toFloat16Bits(1 + 3 * 2 ** -11)).toBe(0x3c02);
    expect(toFloat16Bits(65520)).toBe(0x7c00);
    expect(toFloat16Bits(65519)).toBe(0x7bff);
    expect(toFloat16Bits(2 ** -25)).toBe(0);
    expect(toFloat16Bits(2 ** -25 + 2 ** -30)).toBe(1);
    expect(toFloat16Bits(-NaN) & 0x7fff).toBe(0x7e00);
  });

  it('mode 12 writes the bits toFloat16Bits gives, across the range and at rounding ties', async () => {
    const p = file();
    let seed = 9;
    const rand = (): number => (seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648;
    const values = Float32Array.from({ length: 4096 }, (_, i) => (i % 2 ? -1 : 1) * 2 ** (rand() * 50 - 30) * (1 + rand()));
    values.set([1 + 2 ** -11, 1 + 3 * 2 ** -11, 65519, 65520, 2 ** -14, 2 ** -14 - 2 ** -25, 2 ** 15 * (2 - 2 ** -11), -0, 0.1, 1e-9]);
    await writeMrc(p, { width: 64, height: 64, frames: [values], mode: 12 });
    const bits = new Uint16Array(fs.readFileSync(p).buffer.slice(MRC_HEADER_BYTES, MRC_HEADER_BYTES + 8192));
    expect(Array.from(bits)).toEqual(Array.from(values, (v) => toFloat16Bits(v)));
  });

  it('takes frames from an async iterable and records NZ, pixel size and labels', async () => {
    const p = file();
    async function* frames(): AsyncGenerator<Int16Array> {
      for (let z = 0; z < 4; z++) {
        await new Promise(setImmediate);
        yield Int16Array.from(pattern(4, 4, z, -5, 5));
      }
    }
    await writeMrc(p, { width: 4, height: 4, frames: frames(), mode: 1, pixelSizeA: 1.06, labels: ['cloudlet test', 'second label'] });
    const h = await readMrcHeader(p);
    expect(h.frames).toBe(4);
    expect(h.pixelSizeA).toBeCloseTo(1.06, 5);
    expect(h.labels).toEqual(['cloudlet test', 'second label']);
  });

  it('skips the extended header', async () => {
    const p = file();
    const frame = pattern(5, 4, 0, -100, 100);
    await writeMrc(p, { width: 5, height: 4, frames: [frame], mode: 1, extendedHeader: Buffer.alloc(131 * 2, 0x7f), extendedType: 'FEI1' });
    const h = await readMrcHeader(p);
    expect(h).toMatchObject({ extendedBytes: 262, extendedType: 'FEI1', dataOffset: 1024 + 262 });
    expectSame((await all(p))[0] as Float32Array, frame);
  });

  it('reads big-endian files', async () => {
    const p = file();
    const frames = [pattern(3, 3, 0, -32768, 32767), pattern(3, 3, 1, -32768, 32767)];
    await writeMrc(p, { width: 3, height: 3, frames, mode: 1, pixelSizeA: 0.5, littleEndian: false });
    const bytes = fs.readFileSync(p);
    expect(bytes.readInt32BE(0)).toBe(3);
    expect(bytes[212]).toBe(0x11);
    const h = await readMrcHeader(p);
    expect(h).toMatchObject({ littleEndian: false, width: 3, height: 3, frames: 2 });
    expect(h.pixelSizeA).toBeCloseTo(0.5, 6);
    (await all(p)).forEach((f, z) => expectSame(f, frames[z] as Float32Array));
  });

  it.each([2, 12] as const)('reads big-endian mode %i', async (mode) => {
    const p = file();
    const frame = mode === 12 ? FLOAT16_EDGES : pattern(6, 3, 0, -1e6, 1e6, false);
    await writeMrc(p, { width: frame.length, height: 1, frames: [frame], mode, littleEndian: false });
    expectSame((await all(p))[0] as Float32Array, frame);
  });

  it('mode 0 is signed unless IMOD says its bytes are unsigned', async () => {
    const p = file();
    await writeMrc(p, { width: 3, height: 1, frames: [[-1, -128, 127]], mode: 0 });
    expectSame((await all(p))[0] as Float32Array, [-1, -128, 127]);
    const b = fs.readFileSync(p);
    b.writeInt32LE(1146047817, 152);
    fs.writeFileSync(p, b);
    expect((await readMrcHeader(p)).unsignedBytes).toBe(true);
    expectSame((await all(p))[0] as Float32Array, [255, 128, 127]);
    b.writeInt32LE(1, 156);
    fs.writeFileSync(p, b);
    expectSame((await all(p))[0] as Float32Array, [-1, -128, 127]);
  });

  it('takes the pixel size as cell X / MX', async () => {
    const p = file();
    await writeMrc(p, { width: 4, height: 2, frames: [new Float32Array(8)], mode: 2, pixelSizeA: 1 });
    const b = fs.readFileSync(p);
    b.writeInt32LE(2, 28);
    b.writeFloatLE(1.5, 40);
    fs.writeFileSync(p, b);
    expect((await readMrcHeader(p)).pixelSizeA).toBeCloseTo(0.75, 6);
    b.writeFloatLE(0, 40);
    fs.writeFileSync(p, b);
    expect((await readMrcHeader(p)).pixelSizeA).toBeUndefined();
  });
});

describe('errors', () => {
  async function written(): Promise<string> {
    const p = file();
    await writeMrc(p, { width: 4, height: 4, frames: [new Float32Array(16), new Float32Array(16)], mode: 2 });
    return p;
  }

  async function failure(promise: Promise<unknown>): Promise<AppError> {
    const err: unknown = await promise.then(() => undefined, (e: unknown) => e);
    expect(err).toBeInstanceOf(AppError);
    return err as AppError;
  }

  it('a truncated file says how many bytes it has and needs', async () => {
    const p = await written();
    fs.truncateSync(p, 1024 + 64 + 10);
    const err = await failure(readMrcHeader(p));
    expect(err.message).toMatch(/truncated: 1098 bytes, .* needs 1152/);
    fs.truncateSync(p, 100);
    expect((await failure(readMrcHeader(p))).message).toMatch(/shorter than the 1024-byte MRC header/);
  });

  it('a file longer than its header says is refused', async () => {
    const p = await written();
    fs.appendFileSync(p, Buffer.alloc(3));
    expect((await failure(readMrcHeader(p))).message).toMatch(/1155 bytes, .* accounts for only 1152/);
  });

  it('an unsupported mode is named', async () => {
    const p = await written();
    const b = fs.readFileSync(p);
    b.writeInt32LE(4, 12);
    fs.writeFileSync(p, b);
    const err = await failure(readMrcHeader(p));
    expect(err.code).toBe('mrc_unsupported');
    expect(err.message).toMatch(/unsupported MRC mode 4/);
  });

  it('a frame read after the file shrank is a clear error', async () => {
    const p = await written();
    const h = await readMrcHeader(p);
    fs.truncateSync(p, 1024 + 64 + 8);
    expect((await failure(readMrcFrame(p, h, 1))).message).toMatch(/truncated: frame 1/);
  });

  it.each([
    [0, 128],
    [1, 0.5],
    [6, -1],
    [101, 16],
    [1, NaN],
  ] as const)('mode %i refuses %d, naming the pixel, and leaves no file', async (mode, value) => {
    const p = file();
    const frame = new Float32Array(6);
    frame[4] = value;
    const err = await failure(writeMrc(p, { width: 3, height: 2, frames: [new Float32Array(6), frame], mode }));
    expect(err.message).toMatch(new RegExp(`frame 1 pixel \\(1, 1\\) is ${value}, which MRC mode ${mode} cannot hold`));
    expect(fs.existsSync(p)).toBe(false);
  });

  it('a frame of the wrong size is refused', async () => {
    await expect(writeMrc(file(), { width: 3, height: 2, frames: [new Float32Array(5)], mode: 2 })).rejects.toThrow(/frame 0 has 5 pixels, not 3x2/);
  });
});
