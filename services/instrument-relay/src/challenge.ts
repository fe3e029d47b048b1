/**
 * Proof of which Unix user runs `cloudlet-relay` (an OOD job runs it as the researcher): the
 * relay hands out a one-time nonce, the CLI creates a file of that name in a sticky,
 * world-writable directory, and the relay reads the file's owner. No password to store, nothing
 * in argv, and the kernel vouches for the uid. Hard links (nlink > 1), symlinks and stale
 * files are refused.
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { AppError } from '@cloudlet/core';

const TTL_MS = 30_000;

export class ChallengeStore {
  private readonly issued = new Map<string, number>();

  constructor(readonly dir: string) {
    fs.mkdirSync(dir, { recursive: true });
    // Sticky and writable by all, listable by none but the owner: users create, nobody browses.
    fs.chmodSync(dir, 0o1733);
  }

  issue(): { nonce: string; path: string } {
    this.sweep();
    const nonce = randomBytes(16).toString('hex');
    this.issued.set(nonce, Date.now() + TTL_MS);
    return { nonce, path: path.join(this.dir, nonce) };
  }

  /** The uid that proved itself with `nonce`; throws a 401 AppError otherwise. Single use. */
  verify(nonce: string): number {
    const refuse = (why: string): AppError => new AppError(`challenge refused: ${why}`, { code: 'challenge_failed', status: 401, publicMessage: 'Could not verify which user is asking' });
    if (!/^[0-9a-f]{32}$/.test(nonce)) throw refuse('malformed nonce');
    const expires = this.issued.get(nonce);
    this.issued.delete(nonce);
    if (expires === undefined || expires < Date.now()) throw refuse('unknown or expired nonce');
    const file = path.join(this.dir, nonce);
    let stat: fs.Stats;
    try {
      stat = fs.lstatSync(file);
    } catch {
      throw refuse('no proof file');
    }
    try {
      if (!stat.isFile()) throw refuse('proof is not a regular file');
      if (stat.nlink !== 1) throw refuse('proof file has other links');
      if (Date.now() - stat.mtimeMs > TTL_MS) throw refuse('proof file is stale');
      return stat.uid;
    } finally {
      fs.rmSync(file, { force: true });
    }
  }

  private sweep(): void {
    const now = Date.now();
    for (const [nonce, expires] of this.issued) if (expires < now) this.issued.delete(nonce);
  }
}
