/**
 * What the host knows about a user, checked before podman is asked: the account's uid (the
 * pilot lost days to a uid that differed between machines), supplementary group ids, and the
 * subordinate id ranges rootless podman needs for its user namespace.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import { AppError } from '@cloudlet/core';
import type { LocalAccount } from '@cloudlet/usermap';

/** `getent` so LDAP/SSSD accounts count too; undefined when the host has no such entry. */
function getent(database: 'passwd' | 'group', key: string): string[] | undefined {
  try {
    const line = execFileSync('getent', [database, key], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).split('\n')[0];
    return line ? line.split(':') : undefined;
  } catch {
    return undefined;
  }
}

/** The host account must exist with the usermap's uid: files the session writes carry it. */
export function checkHostAccount(account: LocalAccount): void {
  const entry = getent('passwd', account.username);
  if (!entry) {
    throw new AppError(`${account.username} has no account on this host; rootless sessions run under the user's own account`, {
      code: 'no_host_account',
      status: 409,
      publicMessage: 'Your account is not set up on this server; ask an administrator',
    });
  }
  const uid = Number(entry[2]);
  if (uid !== account.uid) {
    throw new AppError(`${account.username} has uid ${uid} on this host but ${account.uid} in the usermap; fix one before starting sessions`, {
      code: 'uid_mismatch',
      status: 409,
      publicMessage: 'Your account on this server does not match the user map; ask an administrator',
    });
  }
}

/** Supplementary groups by name -> gid, so the container process is in them too (group-shared folders). */
export function groupIds(account: LocalAccount): number[] {
  return account.groups.map((name) => {
    const entry = getent('group', name);
    if (!entry) {
      throw new AppError(`group ${name} of ${account.username} does not exist on this host`, {
        code: 'no_host_group',
        status: 409,
        publicMessage: 'Your account is not set up on this server; ask an administrator',
      });
    }
    return Number(entry[2]);
  });
}

export interface SubIdRange {
  start: number;
  count: number;
}

/** Ranges for `username` or its uid in an /etc/subuid-style file. */
export function subIdRanges(file: string, account: LocalAccount): SubIdRange[] {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch {
    return [];
  }
  const ranges: SubIdRange[] = [];
  for (const line of text.split('\n')) {
    const [owner, start, count] = line.trim().split(':');
    if (owner !== account.username && owner !== String(account.uid)) continue;
    const range = { start: Number(start), count: Number(count) };
    if (Number.isInteger(range.start) && Number.isInteger(range.count) && range.count > 0) ranges.push(range);
  }
  return ranges;
}

/** Rootless podman needs at least one subordinate uid and gid range; a user without them gets a clear refusal here, not a podman stack. */
export function checkSubordinateIds(account: LocalAccount, files = { subuid: '/etc/subuid', subgid: '/etc/subgid' }): void {
  const missing = (['subuid', 'subgid'] as const).filter((kind) => subIdRanges(files[kind], account).length === 0);
  if (missing.length > 0) {
    throw new AppError(`${account.username} (uid ${account.uid}) has no entry in ${missing.map((k) => files[k]).join(' and ')}; rootless podman needs subordinate ids (usermod --add-subuids/--add-subgids)`, {
      code: 'no_subordinate_ids',
      status: 409,
      publicMessage: 'Your account is not set up for sessions on this server; ask an administrator',
    });
  }
}
