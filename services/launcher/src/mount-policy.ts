/**
 * Which host folders a session sees. Only two kinds, both derived from the usermap: the user's
 * own project folder (read-write at /project) and the raw-data roots of instruments the user
 * holds a role on (read-only at /data/<instrument>). Every path is resolved with symlinks
 * followed and confined to its allowed root first; nothing else from the host is mounted.
 */
import fs from 'node:fs';
import path from 'node:path';
import { AppError, confinePath, type Instrument } from '@cloudlet/core';
import type { LocalAccount, UserMap } from '@cloudlet/usermap';
import type { Mount } from './podman-client';

export interface MountPolicyInput {
  projectsRoot: string;
  rawDataRoots: readonly string[];
  account: LocalAccount;
  usermap: UserMap;
  instruments: readonly Instrument[];
  mountInstruments: boolean;
  /** Require the project folder to be owned by the user's uid (true wherever the uid is real). */
  checkOwner: boolean;
  relabel?: 'z' | 'Z' | undefined;
}

export interface SessionMounts {
  projectDir: string;
  mounts: Mount[];
}

export function sessionMounts(input: MountPolicyInput): SessionMounts {
  const projectDir = projectFolder(input.projectsRoot, input.account, input.checkOwner);
  const mounts: Mount[] = [{ source: projectDir, destination: '/project', readOnly: false, relabel: input.relabel }];
  if (input.mountInstruments) {
    for (const inst of input.instruments) {
      if (!inst.data_root || input.usermap.role(input.account.personId, inst.id) === undefined) continue;
      mounts.push({ source: confineToAny(input.rawDataRoots, inst.data_root, inst.id), destination: `/data/${inst.id}`, readOnly: true, relabel: input.relabel });
    }
  }
  return { projectDir, mounts };
}

/**
 * `<root>/<username>`, exactly: being inside the root is not enough, since a symlink from one
 * user's folder to another's stays inside it. So the folder must be a real directory (not a
 * symlink) and, where uids are real, owned by the user.
 */
function projectFolder(root: string, account: LocalAccount, checkOwner: boolean): string {
  if (!fs.existsSync(root)) {
    throw new AppError(`projects_root ${root} does not exist`, { code: 'project_missing', status: 500, publicMessage: 'Project storage is not available' });
  }
  const expected = path.join(fs.realpathSync(root), account.username);
  const resolved = confinePath(root, account.username);
  const stat = fs.lstatSync(expected, { throwIfNoEntry: false });
  if (!stat) {
    throw new AppError(`the project folder ${expected} of ${account.username} does not exist`, {
      code: 'project_missing',
      status: 409,
      publicMessage: 'Your project folder has not been created yet; ask an administrator',
    });
  }
  if (stat.isSymbolicLink() || resolved !== expected || !stat.isDirectory()) {
    throw new AppError(`the project folder ${expected} of ${account.username} is a symlink or not a directory (resolves to ${resolved}); refusing to mount it`, {
      code: 'path_outside_root',
      status: 403,
      publicMessage: 'Your project folder is not a plain folder; ask an administrator',
    });
  }
  if (checkOwner && stat.uid !== account.uid) {
    throw new AppError(`the project folder ${expected} is owned by uid ${stat.uid}, not ${account.username}'s uid ${account.uid}; refusing to mount it`, {
      code: 'project_owner_mismatch',
      status: 403,
      publicMessage: 'Your project folder belongs to another account; ask an administrator',
    });
  }
  return expected;
}

function confineToAny(roots: readonly string[], candidate: string, instrument: string): string {
  if (!path.isAbsolute(candidate)) {
    throw new AppError(`instrument ${instrument}: data_root ${candidate} is not absolute`, { code: 'path_outside_root', status: 500, publicMessage: 'Instrument data is misconfigured' });
  }
  const reasons: string[] = [];
  for (const root of roots) {
    if (!fs.existsSync(root)) continue;
    try {
      return confinePath(root, candidate);
    } catch (err) {
      reasons.push((err as Error).message);
    }
  }
  throw new AppError(
    `instrument ${instrument}: data_root ${candidate} is outside launcher.raw_data_roots (${roots.join(', ') || 'none configured'})${reasons.length ? `: ${reasons.join('; ')}` : ''}`,
    { code: 'path_outside_root', status: 500, publicMessage: 'Instrument data is misconfigured; ask an administrator' },
  );
}
