import fs from 'node:fs';
import path from 'node:path';
import { tempDir } from '@cloudlet/core/testing';
import { checkHostAccount, checkSubordinateIds, subIdRanges } from './host-ids';

const account = { personId: 'ada', name: 'Ada', username: 'ada', uid: 4242, gid: 4242, groups: [] };
let dir: string;
const files = (): { subuid: string; subgid: string } => ({ subuid: path.join(dir, 'subuid'), subgid: path.join(dir, 'subgid') });

beforeEach(() => {
  dir = tempDir('cloudlet-subids-');
});
afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

test('ranges are found by user name or by uid', () => {
  fs.writeFileSync(files().subuid, 'bob:100000:65536\nada:165536:65536\n4242:300000:10\n');
  expect(subIdRanges(files().subuid, account)).toEqual([
    { start: 165536, count: 65536 },
    { start: 300000, count: 10 },
  ]);
});

test('a user with no subordinate uids or gids is refused with the file to fix', () => {
  fs.writeFileSync(files().subuid, 'ada:165536:65536\n');
  fs.writeFileSync(files().subgid, 'bob:165536:65536\n');
  expect(() => checkSubordinateIds(account, files())).toThrow(expect.objectContaining({ code: 'no_subordinate_ids' }) as Error);
  expect(() => checkSubordinateIds(account, files())).toThrow(new RegExp(`no entry in ${files().subgid}$|no entry in ${files().subgid};`));
  fs.writeFileSync(files().subgid, 'ada:165536:65536\n');
  expect(() => checkSubordinateIds(account, files())).not.toThrow();
  fs.rmSync(files().subuid);
  expect(() => checkSubordinateIds(account, files())).toThrow(expect.objectContaining({ code: 'no_subordinate_ids' }) as Error);
});

test('a host account whose uid differs from the usermap is refused; a missing one too', () => {
  expect(() => checkHostAccount({ ...account, username: 'root', uid: 1234 })).toThrow(expect.objectContaining({ code: 'uid_mismatch' }) as Error);
  expect(() => checkHostAccount({ ...account, username: 'root', uid: 0 })).not.toThrow();
  expect(() => checkHostAccount({ ...account, username: 'no-such-user-here' })).toThrow(expect.objectContaining({ code: 'no_host_account' }) as Error);
});
