import fs from 'node:fs';
import path from 'node:path';
import { createLogger } from '@cloudlet/core';
import { tempDir } from '@cloudlet/core/testing';
import { ChallengeStore, resolveCaller } from './caller';
import { UsermapStore } from './store';

const EXAMPLE = path.resolve(__dirname, '..', '..', '..', 'config', 'usermap.example.yml');
const TOKEN = 'a-long-service-token-0123456789';

function setup(): { store: ChallengeStore; map: UsermapStore['map']; dir: string } {
  const dir = tempDir('caller-');
  const file = path.join(dir, 'usermap.yml');
  fs.copyFileSync(EXAMPLE, file);
  const usermap = UsermapStore.open({ file, indexFile: path.join(dir, 'index.tsv'), oodIssuer: 'https://cilogon.org', log: createLogger({ name: 'test', level: 'silent' }) });
  return { store: new ChallengeStore(path.join(dir, 'challenges')), map: usermap.map, dir };
}

describe('ChallengeStore', () => {
  test('a challenge answered with a symlink, a hard link or a stale nonce is refused', () => {
    const { store, dir } = setup();
    const a = store.issue();
    fs.symlinkSync('/etc/passwd', a.path);
    expect(() => store.verify(a.nonce)).toThrow(/not a regular file/);
    const b = store.issue();
    const victim = path.join(dir, 'victim');
    fs.writeFileSync(victim, '');
    fs.linkSync(victim, b.path);
    expect(() => store.verify(b.nonce)).toThrow(/other links/);
    const c = store.issue();
    fs.writeFileSync(c.path, '');
    expect(store.verify(c.nonce)).toBe(process.getuid?.());
    fs.writeFileSync(c.path, '');
    expect(() => store.verify(c.nonce)).toThrow(/unknown or expired/);
    expect(() => store.verify('../../etc/passwd')).toThrow(/malformed/);
    const d = store.issue();
    expect(() => store.verify(d.nonce)).toThrow(/no proof file/);
  });

  test('the directory lets everyone create but nobody list', () => {
    const { store } = setup();
    expect(fs.statSync(store.dir).mode & 0o7777).toBe(0o1733);
  });
});

describe('resolveCaller', () => {
  test('the portal names an active person with the right token', () => {
    const { store, map } = setup();
    const who = resolveCaller({ authorization: `Bearer ${TOKEN}`, username: 'ada' }, { token: TOKEN, challenges: store, map });
    expect(who).toMatchObject({ trusted: true, person: { id: 'ada' } });
  });

  test.each([
    ['a wrong token', { authorization: 'Bearer not-the-token', username: 'ada' }, /Bad API token/, 401],
    ['a token of another length', { authorization: `Bearer ${TOKEN}x`, username: 'ada' }, /Bad API token/, 401],
    ['no username', { authorization: `Bearer ${TOKEN}` }, /username is required/, 400],
    ['a username that is not a string', { authorization: `Bearer ${TOKEN}`, username: ['ada'] }, /username is required/, 400],
    ['a retired person', { authorization: `Bearer ${TOKEN}`, username: 'gus' }, /gus is not an active cloudlet user/, 403],
    ['a stranger', { authorization: `Bearer ${TOKEN}`, username: 'mallory' }, /mallory is not an active/, 403],
    ['nothing at all', {}, /Authentication required/, 401],
  ])('refuses %s', (_what, req, message, status) => {
    const { store, map } = setup();
    let caught: unknown;
    try {
      resolveCaller(req, { token: TOKEN, challenges: store, map });
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(Error);
    expect((caught as Error).message).toMatch(message);
    expect((caught as { status?: number }).status).toBe(status);
  });

  test('a local process is the person whose uid owns the proof file, and an unmapped uid is refused', () => {
    const { store, map } = setup();
    const proof = store.issue();
    fs.writeFileSync(proof.path, '');
    fs.chownSync(proof.path, 20002, 20002); // as if rosalind's process had created it
    expect(resolveCaller({ challenge: proof.nonce }, { token: TOKEN, challenges: store, map })).toMatchObject({ trusted: false, person: { id: 'rosalind' } });

    const root = store.issue();
    fs.writeFileSync(root.path, '');
    expect(() => resolveCaller({ challenge: root.nonce }, { token: TOKEN, challenges: store, map })).toThrow(/uid 0 is not an active cloudlet user/);
    const retired = store.issue();
    fs.writeFileSync(retired.path, '');
    fs.chownSync(retired.path, 20003, 20003);
    expect(() => resolveCaller({ challenge: retired.nonce }, { token: TOKEN, challenges: store, map })).toThrow(/uid 20003 is not an active/);
  });
});
