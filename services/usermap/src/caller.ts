/**
 * Who is asking a Cloudlet service's loopback API. Two kinds of caller:
 * - trusted: the portal, which has signed the person in, sends the service's API token as a
 *   bearer token and names the person by username;
 * - local: a client command run as the researcher (an OOD job script, a terminal) proves its
 *   Unix uid by a file-ownership challenge: the service hands out a one-time nonce, the client
 *   creates a file of that name in a sticky, world-writable directory, and the service reads
 *   the file's owner. No password to store, nothing in argv, and the kernel vouches for the uid.
 *   Hard links (nlink > 1), symlinks and stale files are refused.
 * Either way the person comes from the usermap and must be active.
 */
import { randomBytes, timingSafeEqual } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { AppError } from '@cloudlet/core';
import type { Person } from './schema';
import type { UserMap } from './usermap';

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

export interface Caller {
  /** The portal (bearer token) rather than the person's own process. */
  trusted: boolean;
  person: Person;
}

export interface CallerRequest {
  /** The Authorization header. */
  authorization?: string | undefined;
  /** The X-Cloudlet-Challenge header: a nonce whose proof file the caller created. */
  challenge?: string | undefined;
  /** With a bearer token: the username the portal acts for. */
  username?: unknown;
}

function denied(message: string, status: number, code: string): AppError {
  return new AppError(message, { code, status, publicMessage: message });
}

/** The person behind a request, or a 400/401/403 AppError that says why not. */
export function resolveCaller(req: CallerRequest, deps: { token: string; challenges: ChallengeStore; map: UserMap }): Caller {
  if (req.authorization?.startsWith('Bearer ')) {
    const given = Buffer.from(req.authorization.slice(7));
    const expected = Buffer.from(deps.token);
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) throw denied('Bad API token', 401, 'unauthorized');
    if (typeof req.username !== 'string') throw denied('username is required', 400, 'bad_request');
    const person = deps.map.personByUsername(req.username);
    if (!person || person.status !== 'active') throw denied(`${req.username} is not an active cloudlet user`, 403, 'forbidden');
    return { trusted: true, person };
  }
  if (req.challenge) {
    const uid = deps.challenges.verify(req.challenge);
    const person = deps.map.personByUid(uid);
    if (!person || person.status !== 'active') throw denied(`uid ${uid} is not an active cloudlet user`, 403, 'forbidden');
    return { trusted: false, person };
  }
  throw denied('Authentication required', 401, 'unauthorized');
}

/**
 * The client's half: asks `apiUrl` (whose challenge endpoint is `${apiUrl}/api/challenges`) for
 * a nonce and creates its proof file as the user running this process. Returns the headers to
 * send with the one request the nonce is good for.
 */
export async function proveCaller(apiUrl: string): Promise<Record<string, string>> {
  const res = await fetch(`${apiUrl}/api/challenges`, { method: 'POST' });
  if (!res.ok) throw new Error(`${apiUrl} refused a challenge (HTTP ${res.status})`);
  const challenge = (await res.json()) as { nonce: string; path: string };
  fs.writeFileSync(challenge.path, '', { flag: 'wx', mode: 0o600 });
  return { 'x-cloudlet-challenge': challenge.nonce };
}
