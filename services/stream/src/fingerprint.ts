/**
 * A movie's identity: its size and a hash of its first and last 64 KiB. A rename or a touch
 * keeps it, a restart recomputes the same value, and two different exposures (different noise,
 * different header labels) never share it. Reading 128 KiB is cheap next to processing.
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs/promises';

const EDGE = 64 * 1024;

export async function fingerprint(file: string): Promise<string> {
  const handle = await fs.open(file, 'r');
  try {
    const { size } = await handle.stat();
    const hash = createHash('sha256');
    hash.update(`${size}:`);
    const head = Buffer.alloc(Math.min(EDGE, size));
    await handle.read(head, 0, head.length, 0);
    hash.update(head);
    if (size > EDGE) {
      const tailLength = Math.min(EDGE, size - EDGE);
      const tail = Buffer.alloc(tailLength);
      await handle.read(tail, 0, tailLength, size - tailLength);
      hash.update(tail);
    }
    return hash.digest('hex').slice(0, 32);
  } finally {
    await handle.close();
  }
}
