/**
 * The real OOD user_map_cmd (bin/cloudlet-user-map, POSIX sh + look) called exactly as
 * mod_ood_proxy does: io.popen(cmd .. " '" .. r:escape(user) .. "'"), first stdout line read.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { createLogger } from '@cloudlet/core';
import { tempDir } from '@cloudlet/core/testing';
import { oodEscape } from './ood-escape';
import { writeOodIndex } from './ood-index';
import { validateUsermap, type UsermapDoc } from './schema';
import { UsermapStore } from './store';
import { UserMap } from './usermap';

const READER = path.resolve(__dirname, '..', 'bin', 'cloudlet-user-map');
const ISSUER = 'https://cilogon.org';

function people(): UsermapDoc {
  const subs = ['http://cilogon.org/serverA/users/1', 'http://cilogon.org/serverA/users/10', 'Zoë Ünïcode sub', "it's $(odd); `really`"];
  const doc = {
    version: 1 as const,
    uid_range: { min: 1000, max: 2000 },
    people: subs.map((sub, i) => ({
      id: `p${i}`,
      name: `P ${i}`,
      status: i === 2 ? ('suspended' as const) : ('active' as const),
      account: { username: `user${i}`, uid: 1000 + i, gid: 1000 + i, groups: [] },
      identities: [{ iss: ISSUER, sub }, { iss: 'https://other-issuer.example', sub: `other-${i}` }],
      clusters: [],
      instruments: {},
    })),
  };
  const result = validateUsermap(doc);
  if (!result.ok) throw new Error(result.problems.join('\n'));
  return result.doc;
}

describe('cloudlet-user-map (the OOD user_map_cmd)', () => {
  const dir = tempDir('cloudlet-umc-');
  const index = path.join(dir, 'ood-index.tsv');
  writeOodIndex(index, new UserMap(people()), ISSUER);
  const env = { ...process.env, CLOUDLET_USERMAP_INDEX: index };

  /** What OOD does: a shell command line with the escaped user in single quotes; the exit code is ignored. */
  function asOod(user: string): string {
    const out = spawnSync('/bin/sh', ['-c', `${READER} '${oodEscape(user)}'`], { env, encoding: 'utf8' }).stdout;
    return out.split('\n')[0] ?? '';
  }

  test('maps active identities of the OOD issuer to their username', () => {
    expect(asOod('http://cilogon.org/serverA/users/1')).toBe('user0');
    expect(asOod('http://cilogon.org/serverA/users/10')).toBe('user1');
    expect(asOod("it's $(odd); `really`")).toBe('user3');
  });

  test('prints nothing for unknown, suspended, other-issuer and prefix-only subjects', () => {
    expect(asOod('http://cilogon.org/serverA/users/2')).toBe('');
    expect(asOod('Zoë Ünïcode sub')).toBe(''); // suspended
    expect(asOod('other-0')).toBe('');
    expect(asOod('http://cilogon.org/serverA/users/')).toBe('');
  });

  test('shell metacharacters and odd input are inert', () => {
    const marker = path.join(dir, 'pwned');
    for (const evil of [`$(touch ${marker})`, `\`touch ${marker}\``, `x'; touch ${marker}; '`, `a;b\n.tif`, '-n', '--help', '%00']) {
      expect(asOod(evil)).toBe('');
      // And the raw string handed straight to the reader, as a careless caller might.
      const raw = spawnSync(READER, [evil], { env, encoding: 'utf8' });
      expect(raw.stdout).toBe('');
      expect(raw.status).not.toBe(0);
    }
    expect(fs.existsSync(marker)).toBe(false);
  });

  test('wrong argument counts, an empty argument and a missing index print nothing', () => {
    expect(spawnSync(READER, [], { env, encoding: 'utf8' })).toMatchObject({ stdout: '', status: 2 });
    expect(spawnSync(READER, ['a', 'b'], { env, encoding: 'utf8' })).toMatchObject({ stdout: '', status: 2 });
    expect(spawnSync(READER, [''], { env, encoding: 'utf8' })).toMatchObject({ stdout: '', status: 2 });
    expect(spawnSync(READER, ['abc'], { env: { ...env, CLOUDLET_USERMAP_INDEX: path.join(dir, 'nope') }, encoding: 'utf8' })).toMatchObject({ stdout: '', status: 2 });
  });

  test('a bad usermap edit leaves the last good index in place for OOD', () => {
    const file = path.join(dir, 'usermap.yml');
    const storeIndex = path.join(dir, 'store-index.tsv');
    fs.writeFileSync(file, JSON.stringify(people())); // JSON is YAML
    const store = UsermapStore.open({ file, indexFile: storeIndex, oodIssuer: ISSUER, log: createLogger({ name: 't', level: 'silent' }) });
    const broken = people();
    broken.people[1]!.account.uid = 1000;
    fs.writeFileSync(file, JSON.stringify(broken));
    expect(store.reload()).toBe(false);
    const out = execFileSync('/bin/sh', ['-c', `${READER} '${oodEscape('http://cilogon.org/serverA/users/10')}'`], { env: { ...env, CLOUDLET_USERMAP_INDEX: storeIndex }, encoding: 'utf8' });
    expect(out).toBe('user1\n');
    store.close();
  });
});
