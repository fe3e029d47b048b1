import { Random } from './exposure';
import { LzwEncoder, lzwEncode } from './lzw';
import { lzwDecode } from './testing/movie-readers';

function randomBytes(n: number, seed: number, alphabet = 256): Uint8Array {
  const rng = new Random(seed);
  return Uint8Array.from({ length: n }, () => Math.floor(rng.next() * alphabet));
}

describe('TIFF LZW', () => {
  test('a hand-worked stream: Clear, 0, 258, 0, EOI in 9 bits, MSB first', () => {
    // "0 0 0 0": 0 is emitted, (0,0) becomes 258, then 258 matches "0 0", then the last 0.
    expect([...lzwEncode(Uint8Array.from([0, 0, 0, 0]))]).toEqual([0x80, 0x00, 0x20, 0x40, 0x08, 0x08]);
  });

  test('nothing is Clear then EOI', () => {
    expect(lzwDecode(lzwEncode(new Uint8Array(0)))).toHaveLength(0);
    expect([...lzwEncode(new Uint8Array(0))]).toEqual([0x80, 0x40, 0x40]);
  });

  test.each<[string, Uint8Array]>([
    ['one byte', Uint8Array.from([200])],
    ['every byte value', Uint8Array.from({ length: 256 }, (_, i) => i)],
    ['the KwKwK case', Uint8Array.from([1, 2, 1, 2, 1, 2, 1, 2, 1])],
    ['a long run (strings far longer than a code)', new Uint8Array(300_000).fill(7)],
    ['random bytes (the table fills and clears many times, every code width)', randomBytes(200_000, 1)],
    ['few symbols (long strings, 12-bit codes)', randomBytes(200_000, 2, 3)],
    ['detector-like counts', randomBytes(100_000, 3, 6)],
  ])('round-trips %s', (_what, data) => {
    const encoded = lzwEncode(data);
    expect(lzwDecode(encoded).equals(Buffer.from(data))).toBe(true);
  });

  test('compresses what is compressible', () => {
    expect(lzwEncode(new Uint8Array(100_000)).length).toBeLessThan(2000);
    expect(lzwEncode(randomBytes(100_000, 4, 4)).length).toBeLessThan(40_000);
  });

  test('feeding a strip in pieces gives the same bytes as all at once; one encoder does many strips', () => {
    const data = randomBytes(50_000, 5, 5);
    const whole = lzwEncode(data);
    const e = new LzwEncoder();
    for (let strip = 0; strip < 3; strip++) {
      e.begin();
      for (let at = 0; at < data.length; at += 997 + strip) e.push(data.subarray(at, at + 997 + strip));
      expect(e.end().equals(whole)).toBe(true);
    }
  });
});
