import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Instrument } from '@cloudlet/core';
import { tempDir } from '@cloudlet/core/testing';
import { UserMap, validateUsermap } from '@cloudlet/usermap';
import { type MountPolicyInput, sessionMounts } from './mount-policy';

const me = os.userInfo();
let dir: string;
let usermap: UserMap;

function instrument(id: string, dataRoot: string): Instrument {
  return { id, name: id, description: '', location: '', data_root: dataRoot, booking_required: false, bookings: [] };
}

function input(extra: Partial<MountPolicyInput> = {}): MountPolicyInput {
  const person = usermap.personByUsername('ada');
  if (!person) throw new Error('no ada');
  return {
    projectsRoot: path.join(dir, 'projects'),
    rawDataRoots: [path.join(dir, 'raw')],
    account: { personId: person.id, name: person.name, username: 'ada', uid: me.uid, gid: me.gid, groups: [] },
    usermap,
    instruments: [],
    mountInstruments: true,
    checkOwner: true,
    ...extra,
  };
}

beforeEach(() => {
  dir = tempDir('cloudlet-mounts-');
  for (const d of ['projects/ada', 'projects/bob', 'raw/krios/movies', 'raw/glacios', 'elsewhere']) fs.mkdirSync(path.join(dir, d), { recursive: true });
  const doc = validateUsermap({
    version: 1,
    uid_range: { min: 0, max: 4_000_000 },
    people: [
      { id: 'ada', name: 'Ada', account: { username: 'ada', uid: me.uid, gid: me.gid }, instruments: { krios: 'viewer', rogue: 'operator', linked: 'viewer' } },
      { id: 'bob', name: 'Bob', account: { username: 'bob', uid: me.uid + 1, gid: me.gid } },
    ],
  });
  if (!doc.ok) throw new Error(doc.problems.join('\n'));
  usermap = new UserMap(doc.doc);
});

afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

test("the project folder read-write, and only the instruments the user holds a role on, read-only", () => {
  const result = sessionMounts(input({ instruments: [instrument('krios', path.join(dir, 'raw/krios/movies')), instrument('glacios', path.join(dir, 'raw/glacios'))] }));
  expect(result.mounts).toEqual([
    { source: path.join(fs.realpathSync(dir), 'projects/ada'), destination: '/project', readOnly: false, relabel: undefined },
    { source: path.join(fs.realpathSync(dir), 'raw/krios/movies'), destination: '/data/krios', readOnly: true, relabel: undefined },
  ]);
});

test('no instrument mounts unless the app asks for them', () => {
  const result = sessionMounts(input({ mountInstruments: false, instruments: [instrument('krios', path.join(dir, 'raw/krios/movies'))] }));
  expect(result.mounts.map((m) => m.destination)).toEqual(['/project']);
});

test('a project folder that is a symlink to another user\'s folder is refused, though it stays inside the root', () => {
  fs.rmSync(path.join(dir, 'projects/ada'), { recursive: true });
  fs.symlinkSync(path.join(dir, 'projects/bob'), path.join(dir, 'projects/ada'));
  expect(() => sessionMounts(input())).toThrow(expect.objectContaining({ code: 'path_outside_root' }) as Error);
});

test('a project folder that is a symlink out of the root is refused', () => {
  fs.rmSync(path.join(dir, 'projects/ada'), { recursive: true });
  fs.symlinkSync(path.join(dir, 'elsewhere'), path.join(dir, 'projects/ada'));
  expect(() => sessionMounts(input())).toThrow(expect.objectContaining({ code: 'path_outside_root' }) as Error);
});

test('a project folder owned by another uid is refused; a missing one is named', () => {
  expect(() => sessionMounts(input({ account: { ...input().account, uid: me.uid + 7 } }))).toThrow(expect.objectContaining({ code: 'project_owner_mismatch' }) as Error);
  fs.rmSync(path.join(dir, 'projects/ada'), { recursive: true });
  expect(() => sessionMounts(input())).toThrow(expect.objectContaining({ code: 'project_missing' }) as Error);
});

test('an instrument data root outside the allowed roots is refused', () => {
  expect(() => sessionMounts(input({ instruments: [instrument('rogue', path.join(dir, 'elsewhere'))] }))).toThrow(expect.objectContaining({ code: 'path_outside_root' }) as Error);
  expect(() => sessionMounts(input({ instruments: [instrument('rogue', '/etc')] }))).toThrow(/outside launcher.raw_data_roots/);
});

test('an instrument data root through a symlink pointing out of the allowed root is refused', () => {
  fs.symlinkSync(path.join(dir, 'elsewhere'), path.join(dir, 'raw/linked'));
  expect(() => sessionMounts(input({ instruments: [instrument('linked', path.join(dir, 'raw/linked'))] }))).toThrow(expect.objectContaining({ code: 'path_outside_root' }) as Error);
  expect(() => sessionMounts(input({ instruments: [instrument('linked', path.join(dir, 'raw/../elsewhere'))] }))).toThrow(expect.objectContaining({ code: 'path_outside_root' }) as Error);
});
