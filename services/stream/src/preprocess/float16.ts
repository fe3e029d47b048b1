/**
 * IEEE 754 half precision (MRC mode 12) to and from float32, without Float16Array (Node 20 has
 * none). Exact both ways for every value float16 can hold, -0, the infinities and NaN included;
 * other values round to nearest, ties to even, as a hardware conversion does. Too big for
 * float16 becomes +-Infinity; too small, +-0. Every NaN is written as the quiet NaN 0x7e00,
 * keeping its sign.
 */

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

export function toFloat16Bits(value: number): number {
  f32[0] = value;
  const x = u32[0] as number;
  const sign = (x >>> 16) & 0x8000;
  const exponent = (x >>> 23) & 0xff;
  const mantissa = x & 0x7fffff;
  if (exponent === 0xff) return sign | 0x7c00 | (mantissa === 0 ? 0 : 0x200);
  const e = exponent - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    // Subnormal in float16: the value in units of 2^-24, rounded; below half a unit it is 0.
    if (e < -10) return sign;
    const shift = 14 - e;
    const full = mantissa | 0x800000;
    let half = full >>> shift;
    const rest = full & ((1 << shift) - 1);
    const mid = 1 << (shift - 1);
    if (rest > mid || (rest === mid && (half & 1) === 1)) half++;
    return sign | half;
  }
  // A carry out of the mantissa moves into the exponent, which is the right answer (up to Infinity).
  let half = (e << 10) | (mantissa >>> 13);
  const rest = mantissa & 0x1fff;
  if (rest > 0x1000 || (rest === 0x1000 && (half & 1) === 1)) half++;
  return sign | half;
}

let table: Float32Array | undefined;

/** All 65536 float16 values, built once: a lookup beats the arithmetic on 16 M pixels a frame. */
export function float16Table(): Float32Array {
  if (table) return table;
  table = new Float32Array(0x10000);
  for (let h = 0; h < 0x10000; h++) {
    const sign = h & 0x8000 ? -1 : 1;
    const e = (h >>> 10) & 0x1f;
    const m = h & 0x3ff;
    table[h] = e === 0 ? sign * m * 2 ** -24 : e === 0x1f ? (m === 0 ? sign * Infinity : NaN) : sign * (1 + m / 1024) * 2 ** (e - 15);
  }
  return table;
}
