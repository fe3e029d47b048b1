/**
 * TIFF LZW decoding (TIFF 6.0 section 13): codes MSB first, 9 to 12 bits, Clear (256) resets
 * the table, EOI (257) ends the strip, and the code width grows one code early (at 511, 1023
 * and 2047), as libtiff and every detector write it. The pre-6.0 LSB-first variant (a strip
 * starting 0x00 0x01) is refused rather than misread.
 */
import { AppError } from '@cloudlet/core';

const CLEAR = 256;
const EOI = 257;
const FIRST_CODE = 258;
const MAX_CODES = 4096;

/** Decodes `src` into exactly `expected` bytes; extra output past that is dropped, as libtiff does. */
export function lzwDecode(src: Uint8Array, expected: number): Uint8Array {
  if (src[0] === 0 && ((src[1] ?? 0) & 1) === 1) throw lzwError('old-style (pre-TIFF 6.0, LSB-first) LZW is not supported');
  const out = new Uint8Array(expected);
  const prefix = new Uint16Array(MAX_CODES);
  const suffix = new Uint8Array(MAX_CODES);
  const length = new Uint16Array(MAX_CODES);
  const first = new Uint8Array(MAX_CODES);
  for (let i = 0; i < 256; i++) {
    suffix[i] = i;
    first[i] = i;
    length[i] = 1;
  }
  let pos = 0;
  let bits = 0;
  let bitCount = 0;
  let at = 0;
  let width = 9;
  let next = FIRST_CODE;
  let old = -1;

  /** Writes the string for `code` at `pos`, clipped to the output. */
  const emit = (code: number): void => {
    const len = length[code] as number;
    let c = code;
    for (let i = len - 1; i >= 0; i--) {
      if (pos + i < expected) out[pos + i] = suffix[c] as number;
      c = prefix[c] as number;
    }
    pos += len;
  };

  while (pos < expected) {
    while (bitCount < width && at < src.length) {
      bits = ((bits << 8) | (src[at++] as number)) & 0xffffff;
      bitCount += 8;
    }
    if (bitCount < width) break;
    bitCount -= width;
    const code = (bits >>> bitCount) & ((1 << width) - 1);
    if (code === EOI) break;
    if (code === CLEAR) {
      width = 9;
      next = FIRST_CODE;
      old = -1;
      continue;
    }
    if (old === -1) {
      if (code > 255) throw lzwError(`code ${code} right after a Clear`);
      emit(code);
      old = code;
      continue;
    }
    if (code > next) throw lzwError(`code ${code} is past the table (next entry ${next})`);
    if (next < MAX_CODES) {
      // When code === next the new entry is old + its own first byte (the KwKwK case).
      prefix[next] = old;
      suffix[next] = code === next ? (first[old] as number) : (first[code] as number);
      first[next] = first[old] as number;
      length[next] = (length[old] as number) + 1;
      next++;
      if (next >= (1 << width) - 1 && width < 12) width++;
    }
    emit(code);
    old = code;
  }
  if (pos < expected) throw lzwError(`the data decodes to ${pos} bytes, ${expected} expected`);
  return out;
}

function lzwError(what: string): AppError {
  return new AppError(`corrupt LZW data: ${what}`, { code: 'tiff_invalid', status: 422 });
}
