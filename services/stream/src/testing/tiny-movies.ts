/**
 * Tiny but valid MRC movies for the stream tests, written slowly on purpose (a real copy over
 * the network shows its final name long before its last byte): header first, frames in chunks.
 */
import fs from 'node:fs';
import { randomBytes } from 'node:crypto';

export function mrcHeader(nx: number, ny: number, nz: number, mode = 0): Buffer {
  const h = Buffer.alloc(1024);
  h.writeInt32LE(nx, 0);
  h.writeInt32LE(ny, 4);
  h.writeInt32LE(nz, 8);
  h.writeInt32LE(mode, 12);
  h.write('MAP ', 208, 'latin1');
  h.writeUInt8(0x44, 212);
  h.writeUInt8(0x44, 213);
  return h;
}

/** A whole movie at once: 1024-byte header and nz frames of random int8 pixels. */
export function writeMovie(file: string, nx = 16, ny = 16, nz = 4): number {
  const data = Buffer.concat([mrcHeader(nx, ny, nz), randomBytes(nx * ny * nz)]);
  fs.writeFileSync(file, data);
  return data.length;
}

/** The same, in `chunks` writes `gapMs` apart, at its final name from the first byte. */
export async function writeMovieSlowly(file: string, chunks: number, gapMs: number, nx = 16, ny = 16, nz = 4): Promise<number> {
  const data = Buffer.concat([mrcHeader(nx, ny, nz), randomBytes(nx * ny * nz)]);
  const fd = fs.openSync(file, 'w');
  try {
    const size = Math.ceil(data.length / chunks);
    for (let i = 0; i < data.length; i += size) {
      fs.writeSync(fd, data.subarray(i, Math.min(data.length, i + size)));
      await new Promise((resolve) => setTimeout(resolve, gapMs));
    }
  } finally {
    fs.closeSync(fd);
  }
  return data.length;
}
