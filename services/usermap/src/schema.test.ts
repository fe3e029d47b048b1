import fs from 'node:fs';
import path from 'node:path';
import yaml from 'js-yaml';
import { validateUsermap, type UsermapDoc } from './schema';
import { UserMap } from './usermap';

const EXAMPLE = path.resolve(__dirname, '..', '..', '..', 'config', 'usermap.example.yml');

function base(): UsermapDoc {
  return yaml.load(fs.readFileSync(EXAMPLE, 'utf8'), { schema: yaml.CORE_SCHEMA }) as UsermapDoc;
}

function problems(doc: unknown, previous?: UsermapDoc): string[] {
  const result = validateUsermap(doc, previous);
  return result.ok ? [] : result.problems;
}

describe('usermap validation', () => {
  test('the shipped example is valid', () => {
    expect(problems(base())).toEqual([]);
  });

  test('every conflict is reported, each with its path', () => {
    const doc = base() as unknown as { people: Record<string, unknown>[] };
    const ada = structuredClone(doc.people[0]) as { id: string; account: { username: string; uid: number }; identities: unknown[] };
    doc.people.push(ada); // same id, username, uid and identities as people[0]
    const found = problems(doc);
    expect(found).toEqual(
      expect.arrayContaining([
        'people[3].id: person id ada is already used by people[0] (ada)',
        'people[3].account.username: username ada is already used by people[0] (ada)',
        'people[3].account.uid: uid 20001 is already used by people[0] (ada)',
        expect.stringMatching(/^people\[3\]\.identities\[0\]: identity \(http:\/\/127\.0\.0\.1:8080\/dev-idp, demo-ada\) is already used by people\[0\]/),
        expect.stringMatching(/^people\[3\]\.identities\[1\]: identity/),
      ]),
    );
  });

  test('a uid outside the range, bad names and unknown keys are all reported', () => {
    const doc = base() as unknown as { people: Record<string, unknown>[] };
    (doc.people[0] as { account: { uid: number } }).account.uid = 10;
    (doc.people[1] as { account: { username: string } }).account.username = 'Not A Name';
    (doc.people[1] as Record<string, unknown>).shoe_size = 42;
    const found = problems(doc);
    expect(found).toEqual(expect.arrayContaining([expect.stringMatching(/^people\[1\]\.account\.username: /), 'people[1].shoe_size: unknown key']));
    // Structural errors come first; fix them and the range rule speaks.
    delete (doc.people[1] as Record<string, unknown>).shoe_size;
    (doc.people[1] as { account: { username: string } }).account.username = 'rosalind';
    expect(problems(doc)).toEqual(['people[0].account.uid: uid 10 is outside uid_range 20000-29999']);
  });

  test('people are retired, not deleted, and their uid and username never change', () => {
    const previous = base();
    const removed = base();
    removed.people = removed.people.filter((p) => p.id !== 'gus');
    expect(problems(removed, previous)).toEqual([expect.stringMatching(/^people: person gus \(uid 20003\) was removed/)]);
    const changed = base();
    changed.people[0]!.account.uid = 20010;
    changed.people[1]!.account.username = 'rfranklin';
    expect(problems(changed, previous)).toEqual([
      'people[0].account.uid: changed from 20001; a person\'s uid never changes (files on disk carry it)',
      'people[1].account.username: changed from rosalind; usernames are immutable',
    ]);
  });

  test('a retired person keeps their uid and identities reserved', () => {
    const doc = base();
    doc.people.push({ ...structuredClone(doc.people[0]!), id: 'newbie', account: { username: 'newbie', uid: 20003, gid: 20003, groups: [] }, identities: [{ iss: 'https://cilogon.org', sub: 'http://cilogon.org/serverA/users/300003' }] });
    expect(problems(doc)).toEqual([
      'people[3].account.uid: uid 20003 is already used by people[2] (gus)',
      expect.stringMatching(/^people\[3\]\.identities\[0\]: identity .* is already used by people\[2\] \(gus\)/),
    ]);
  });

  test('a wrong version or a non-document is refused', () => {
    expect(problems({ ...base(), version: 2 })[0]).toMatch(/^version: /);
    expect(problems('people: []')[0]).toMatch(/expected object/);
  });
});

describe('UserMap lookups', () => {
  const result = validateUsermap(base());
  if (!result.ok) throw new Error(result.problems.join('\n'));
  const map = new UserMap(result.doc);

  test('authorizes on (issuer, subject) only', () => {
    const found = map.lookupIdentity('https://cilogon.org', 'http://cilogon.org/serverA/users/100001');
    expect(found).toMatchObject({ status: 'active', account: { username: 'ada', uid: 20001 } });
    // Same subject under another issuer is somebody else.
    expect(map.lookupIdentity('https://other.example', 'http://cilogon.org/serverA/users/100001')).toBeUndefined();
  });

  test('retired people map to no account', () => {
    expect(map.lookupIdentity('https://cilogon.org', 'http://cilogon.org/serverA/users/300003')).toMatchObject({ status: 'retired' });
  });

  test('roles are per instrument and only for active people', () => {
    expect(map.role('ada', 'krios-sim')).toBe('operator');
    expect(map.role('rosalind', 'krios-sim')).toBe('viewer');
    expect(map.role('ada', 'glacios')).toBeUndefined();
    expect(map.role('gus', 'krios-sim')).toBeUndefined();
  });

  test('the next free uid skips retired people', () => {
    expect(map.nextFreeUid()).toBe(20000);
  });
});
