/**
 * TIFF LZW (TIFF 6.0 section 13) as libtiff writes it: codes MSB first, 9 to 12 bits, a Clear
 * code first and whenever the table fills, and the code width growing one code "early" (the
 * decoder, one code behind, switches at 511, 1023 and 2047). Detectors write their TIFF movies
 * this way, so the pipeline has to read it; the simulator writes it so the pipeline is tested
 * on what it will meet.
 */

export const LZW_CLEAR = 256;
export const LZW_EOI = 257;
const FIRST_CODE = 258;
/** libtiff clears at 4094 so a 12-bit code never overflows. */
const TABLE_FULL = 4094;

/**
 * Encodes strips fed in any number of pieces (so a caller can yield between rows). One encoder
 * can do many strips in turn; its string table is a direct map from (prefix code, next byte)
 * to code whose entries carry a generation stamp instead of being erased, so a Clear is free.
 */
export class LzwEncoder {
  private readonly codes = new Uint16Array(1 << 20);
  private readonly stamps = new Uint32Array(1 << 20);
  private generation = 0;
  private sink = new BitSink(0);
  private width = 9;
  private next = FIRST_CODE;
  /** The code for the string matched so far; -1 before the first byte. */
  private prefix = -1;

  /** Starts a strip; `expectedBytes` sizes the output buffer. */
  begin(expectedBytes = 0): this {
    this.sink = new BitSink(expectedBytes);
    this.clearTable();
    this.width = 9;
    this.prefix = -1;
    this.sink.put(LZW_CLEAR, 9);
    return this;
  }

  push(data: Uint8Array): this {
    const { codes, stamps } = this;
    let i = 0;
    if (this.prefix < 0 && data.length > 0) this.prefix = data[i++] as number;
    let prefix = this.prefix;
    for (; i < data.length; i++) {
      const c = data[i] as number;
      const key = (prefix << 8) | c;
      if (stamps[key] === this.generation) {
        prefix = codes[key] as number;
        continue;
      }
      this.sink.put(prefix, this.width);
      codes[key] = this.next;
      stamps[key] = this.generation;
      this.added();
      prefix = c;
    }
    this.prefix = prefix;
    return this;
  }

  /** Ends the strip and returns its bytes. */
  end(): Buffer {
    if (this.prefix >= 0) {
      this.sink.put(this.prefix, this.width);
      // The decoder adds an entry for the last code too; EOI's width must follow it.
      this.added();
    }
    this.sink.put(LZW_EOI, this.width);
    this.prefix = -1;
    return this.sink.finish();
  }

  /** After each new entry: clear when the table is full, else widen once the next code needs another bit. */
  private added(): void {
    this.next++;
    if (this.next === TABLE_FULL) {
      this.sink.put(LZW_CLEAR, this.width);
      this.clearTable();
      this.width = 9;
    } else if (this.next > (1 << this.width) - 1) {
      this.width++;
    }
  }

  private clearTable(): void {
    this.generation = (this.generation + 1) >>> 0;
    if (this.generation === 0) {
      this.stamps.fill(0);
      this.generation = 1;
    }
    this.next = FIRST_CODE;
  }
}

export function lzwEncode(data: Uint8Array): Buffer {
  return new LzwEncoder().begin(data.length).push(data).end();
}

/** Codes packed MSB first into a growing buffer. */
class BitSink {
  private buf: Buffer;
  private length = 0;
  private bits = 0;
  private count = 0;

  constructor(expected: number) {
    this.buf = Buffer.allocUnsafe(Math.max(64, expected >> 1));
  }

  put(code: number, width: number): void {
    this.bits = (this.bits << width) | code;
    this.count += width;
    while (this.count >= 8) {
      this.count -= 8;
      this.byte((this.bits >>> this.count) & 0xff);
    }
    this.bits &= (1 << this.count) - 1;
  }

  finish(): Buffer {
    if (this.count > 0) this.byte((this.bits << (8 - this.count)) & 0xff);
    this.count = 0;
    return this.buf.subarray(0, this.length);
  }

  private byte(b: number): void {
    if (this.length === this.buf.length) {
      const bigger = Buffer.allocUnsafe(this.buf.length * 2);
      this.buf.copy(bigger, 0, 0, this.length);
      this.buf = bigger;
    }
    this.buf[this.length++] = b;
  }
}
