/**
 * The usermap file, version 1: people (immutable id, status), their local account, the
 * federated identities that sign in as them, their accounts on remote clusters and their
 * roles on instruments. Structure is checked by zod; the cross-record rules (uniqueness,
 * uid range, no reuse after retirement) by `checkRules`, so every violation is reported with
 * its path in one pass.
 */
import { z } from 'zod';
import { formatIssues, INSTRUMENT_ID, joinPath } from '@cloudlet/core';

export const USERNAME = /^[a-z_][a-z0-9_-]{0,31}$/;
export const PERSON_ID = /^[a-z0-9][a-z0-9._-]{0,63}$/;
export const ROLES = ['operator', 'viewer'] as const;
export type Role = (typeof ROLES)[number];
export const STATUSES = ['active', 'suspended', 'retired'] as const;
export type PersonStatus = (typeof STATUSES)[number];

const timestamp = z.iso.datetime({ offset: true });
const id = z.number().int().min(0).max(4_294_967_294);

const identity = z.strictObject({
  /** The OIDC issuer, exactly as in its tokens (CILogon: https://cilogon.org). */
  iss: z.url(),
  /** The subject: stable and unique per issuer. With CILogon it differs per upstream IdP. */
  sub: z.string().min(1).max(512),
  // For people to read; never used to authorize or to link accounts.
  idp: z.string().optional(),
  eppn: z.string().optional(),
  email: z.string().optional(),
  linked_at: timestamp.optional(),
});

const clusterAccount = z.strictObject({
  cluster: z.string().regex(INSTRUMENT_ID, 'lowercase letters, digits and dashes'),
  username: z.string().regex(USERNAME, 'a POSIX user name'),
  uid: id,
  gid: id,
  paths: z.record(z.string().regex(/^[a-z_]+$/), z.string().startsWith('/', 'an absolute path')).default({}),
  /** When `ssh <cluster> id` last matched this record; transfers wait until it has. */
  verified_at: timestamp.optional(),
});

const person = z.strictObject({
  id: z.string().regex(PERSON_ID, 'lowercase letters, digits, dot, dash and underscore'),
  name: z.string().min(1),
  status: z.enum(STATUSES).default('active'),
  retired_at: timestamp.optional(),
  account: z.strictObject({
    username: z.string().regex(USERNAME, 'a POSIX user name (lowercase, at most 32 characters)'),
    uid: id,
    gid: id,
    groups: z.array(z.string().regex(USERNAME, 'a POSIX group name')).default([]),
  }),
  identities: z.array(identity).default([]),
  clusters: z.array(clusterAccount).default([]),
  instruments: z.record(z.string().regex(INSTRUMENT_ID, 'an instrument id'), z.enum(ROLES)).default({}),
});

export const usermapSchema = z.strictObject({
  version: z.literal(1, 'this cloudlet reads usermap version 1'),
  uid_range: z
    .strictObject({ min: id, max: id })
    .refine((r) => r.min <= r.max, 'min must not exceed max'),
  people: z.array(person).default([]),
});

export type UsermapDoc = z.infer<typeof usermapSchema>;
export type Person = UsermapDoc['people'][number];
export type Identity = Person['identities'][number];
export type ClusterAccount = Person['clusters'][number];

export type ParseResult = { ok: true; doc: UsermapDoc } | { ok: false; problems: string[] };

/**
 * Validates a parsed YAML document. With `previous` (the last good map) it also enforces that
 * people are retired, never deleted, and that a person's uid and username never change.
 */
export function validateUsermap(input: unknown, previous?: UsermapDoc): ParseResult {
  const parsed = usermapSchema.safeParse(input);
  if (!parsed.success) return { ok: false, problems: formatIssues(parsed.error) };
  const problems = checkRules(parsed.data, previous);
  return problems.length > 0 ? { ok: false, problems } : { ok: true, doc: parsed.data };
}

function checkRules(doc: UsermapDoc, previous: UsermapDoc | undefined): string[] {
  const problems: string[] = [];
  const firstSeen = {
    id: new Map<string, number>(),
    username: new Map<string, number>(),
    uid: new Map<number, number>(),
    identity: new Map<string, number>(),
  };
  const claim = <K>(map: Map<K, number>, key: K, index: number, where: (string | number)[], what: string): void => {
    const other = map.get(key);
    if (other === undefined) map.set(key, index);
    else problems.push(`${joinPath(where)}: ${what} is already used by people[${other}] (${doc.people[other]?.id ?? '?'})`);
  };

  doc.people.forEach((p, i) => {
    const at = ['people', i];
    claim(firstSeen.id, p.id, i, [...at, 'id'], `person id ${p.id}`);
    claim(firstSeen.username, p.account.username, i, [...at, 'account', 'username'], `username ${p.account.username}`);
    claim(firstSeen.uid, p.account.uid, i, [...at, 'account', 'uid'], `uid ${p.account.uid}`);
    if (p.account.uid < doc.uid_range.min || p.account.uid > doc.uid_range.max) {
      problems.push(`${joinPath([...at, 'account', 'uid'])}: uid ${p.account.uid} is outside uid_range ${doc.uid_range.min}-${doc.uid_range.max}`);
    }
    p.identities.forEach((ident, j) => {
      claim(firstSeen.identity, identityKey(ident.iss, ident.sub), i, [...at, 'identities', j], `identity (${ident.iss}, ${ident.sub})`);
    });
    const clusters = new Set<string>();
    p.clusters.forEach((c, j) => {
      if (clusters.has(c.cluster)) problems.push(`${joinPath([...at, 'clusters', j, 'cluster'])}: a second account on ${c.cluster}`);
      clusters.add(c.cluster);
    });
    if (p.status === 'retired' && !p.retired_at) problems.push(`${joinPath([...at, 'retired_at'])}: a retired person needs retired_at`);
    if (p.status !== 'retired' && p.retired_at) problems.push(`${joinPath([...at, 'retired_at'])}: only retired people have retired_at`);
  });

  if (previous) problems.push(...checkHistory(doc, previous));
  return problems;
}

function checkHistory(doc: UsermapDoc, previous: UsermapDoc): string[] {
  const problems: string[] = [];
  const now = new Map(doc.people.map((p, i) => [p.id, { p, i }]));
  for (const before of previous.people) {
    const after = now.get(before.id);
    if (!after) {
      problems.push(`people: person ${before.id} (uid ${before.account.uid}) was removed; people are retired, never deleted, so their uid and identities are never reused`);
      continue;
    }
    const at = ['people', after.i, 'account'];
    if (after.p.account.uid !== before.account.uid) {
      problems.push(`${joinPath([...at, 'uid'])}: changed from ${before.account.uid}; a person's uid never changes (files on disk carry it)`);
    }
    if (after.p.account.username !== before.account.username) {
      problems.push(`${joinPath([...at, 'username'])}: changed from ${before.account.username}; usernames are immutable`);
    }
  }
  return problems;
}

export function identityKey(iss: string, sub: string): string {
  return `${iss}\u0000${sub}`;
}
