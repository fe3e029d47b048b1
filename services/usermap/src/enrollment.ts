/**
 * The enrollment queue: a sign-in that maps to nobody files a request here (OOD's
 * `map_fail_uri` page, or the portal's), and an admin approves it by linking the identity to
 * a person. One pending request per (issuer, subject), however often they try.
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import { z } from 'zod';
import { AppError, ConfigError, errorMessage, formatIssues, withFileLock, writeFileAtomic } from '@cloudlet/core';

const request = z.strictObject({
  id: z.string(),
  iss: z.string(),
  sub: z.string(),
  name: z.string().optional(),
  email: z.string().optional(),
  idp: z.string().optional(),
  eppn: z.string().optional(),
  requested_at: z.string(),
  last_seen_at: z.string(),
  attempts: z.number().int().min(1),
  status: z.enum(['pending', 'approved', 'rejected']),
  decided_at: z.string().optional(),
  decided_by: z.string().optional(),
  person: z.string().optional(),
  reason: z.string().optional(),
});
const queueFile = z.strictObject({ version: z.literal(1), requests: z.array(request) });

export type EnrollmentRequest = z.infer<typeof request>;
export type EnrollmentClaims = Pick<EnrollmentRequest, 'iss' | 'sub'> & Partial<Pick<EnrollmentRequest, 'name' | 'email' | 'idp' | 'eppn'>>;

/** Text fields from an identity provider are stored for admins to read: trimmed and bounded. */
function clean(value: string | undefined, max = 256): string | undefined {
  if (value === undefined) return undefined;
  // Control characters could forge lines in an admin's terminal.
  const text = value.replace(/[\u0000-\u001f\u007f]/g, ' ').trim();
  return text === '' ? undefined : text.slice(0, max);
}

export class EnrollmentQueue {
  constructor(private readonly file: string) {}

  list(): EnrollmentRequest[] {
    return this.read().requests;
  }

  pending(): EnrollmentRequest[] {
    return this.list().filter((r) => r.status === 'pending');
  }

  get(id: string): EnrollmentRequest | undefined {
    return this.list().find((r) => r.id === id);
  }

  /** Files (or refreshes) the pending request for this identity; returns it. */
  async submit(claims: EnrollmentClaims, now = new Date()): Promise<EnrollmentRequest> {
    return this.modify((requests) => {
      const at = now.toISOString();
      const existing = requests.find((r) => r.status === 'pending' && r.iss === claims.iss && r.sub === claims.sub);
      if (existing) {
        existing.last_seen_at = at;
        existing.attempts += 1;
        return existing;
      }
      const created: EnrollmentRequest = {
        id: `enr-${randomBytes(5).toString('hex')}`,
        iss: claims.iss.slice(0, 512),
        sub: claims.sub.slice(0, 512),
        requested_at: at,
        last_seen_at: at,
        attempts: 1,
        status: 'pending',
      };
      for (const key of ['name', 'email', 'idp', 'eppn'] as const) {
        const value = clean(claims[key]);
        if (value !== undefined) created[key] = value;
      }
      requests.push(created);
      return created;
    });
  }

  async decide(id: string, decision: { status: 'approved' | 'rejected'; by: string; person?: string; reason?: string }): Promise<EnrollmentRequest> {
    return this.modify((requests) => {
      const req = requests.find((r) => r.id === id);
      if (!req) throw new AppError(`enrollment request ${id} not found`, { code: 'not_found', status: 404 });
      if (req.status !== 'pending') {
        throw new AppError(`enrollment request ${id} was already ${req.status}`, { code: 'conflict', status: 409 });
      }
      req.status = decision.status;
      req.decided_at = new Date().toISOString();
      req.decided_by = decision.by;
      if (decision.person) req.person = decision.person;
      if (decision.reason) req.reason = clean(decision.reason, 1000);
      return req;
    });
  }

  private async modify<T>(change: (requests: EnrollmentRequest[]) => T): Promise<T> {
    return withFileLock(this.file, () => {
      const doc = this.read();
      const result = change(doc.requests);
      writeFileAtomic(this.file, `${JSON.stringify(doc, null, 2)}\n`, 0o640);
      return result;
    });
  }

  private read(): z.infer<typeof queueFile> {
    let text: string;
    try {
      text = fs.readFileSync(this.file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { version: 1, requests: [] };
      throw new ConfigError(this.file, [errorMessage(err)]);
    }
    let doc: unknown;
    try {
      doc = JSON.parse(text);
    } catch (err) {
      throw new ConfigError(this.file, [`not valid JSON: ${errorMessage(err)}`]);
    }
    const parsed = queueFile.safeParse(doc);
    if (!parsed.success) throw new ConfigError(this.file, formatIssues(parsed.error));
    return parsed.data;
  }
}
