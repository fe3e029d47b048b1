import fs from 'node:fs';
import path from 'node:path';
import { createLogger } from '@cloudlet/core';
import { tempDir, waitFor } from '@cloudlet/core/testing';
import { UsermapStore } from './store';

const EXAMPLE = path.resolve(__dirname, '..', '..', '..', 'config', 'usermap.example.yml');

describe('UsermapStore', () => {
  const log = createLogger({ name: 'test', level: 'silent' });

  function open(): { store: UsermapStore; file: string; index: string } {
    const dir = tempDir();
    const file = path.join(dir, 'usermap.yml');
    const index = path.join(dir, 'index.tsv');
    fs.copyFileSync(EXAMPLE, file);
    return { store: UsermapStore.open({ file, indexFile: index, oodIssuer: 'https://cilogon.org', log }), file, index };
  }

  test('a bad edit keeps the last good map and index, and lists every problem', () => {
    const { store, file, index } = open();
    const goodIndex = fs.readFileSync(index, 'utf8');
    fs.writeFileSync(file, fs.readFileSync(file, 'utf8').replace('uid: 20002', 'uid: 20001').replace('username: rosalind', 'username: ada'));
    expect(store.reload()).toBe(false);
    expect(store.problems).toHaveLength(4); // two clashes, two changes of immutable fields
    expect(store.map.lookupIdentity('https://cilogon.org', 'http://cilogon.org/serverE/users/200002')).toMatchObject({ status: 'active', account: { username: 'rosalind' } });
    expect(fs.readFileSync(index, 'utf8')).toBe(goodIndex);
    fs.writeFileSync(file, 'version: [');
    expect(store.reload()).toBe(false);
    expect(store.problems[0]).toMatch(/not valid YAML/);
    expect(store.map.size).toBe(3);
    store.close();
  });

  test('deleting a person by hand is refused on reload', () => {
    const { store, file } = open();
    const text = fs.readFileSync(file, 'utf8');
    fs.writeFileSync(file, text.slice(0, text.indexOf('  - id: gus')));
    expect(store.reload()).toBe(false);
    expect(store.problems[0]).toMatch(/person gus .* was removed/);
    store.close();
  });

  test('watch picks up a good edit and notifies', async () => {
    const { store, file, index } = open();
    const seen: number[] = [];
    store.onChange((map) => seen.push(map.size));
    store.watch(50);
    fs.writeFileSync(file, fs.readFileSync(file, 'utf8').replace("instruments: { krios-sim: viewer }", 'instruments: { krios-sim: operator }'));
    await waitFor(() => seen.length > 0, 5000, 'reload');
    expect(store.map.role('rosalind', 'krios-sim')).toBe('operator');
    expect(fs.existsSync(index)).toBe(true);
    store.close();
  });

  test('an invalid file at start is refused outright (there is no last good map)', () => {
    const dir = tempDir();
    const file = path.join(dir, 'u.yml');
    fs.writeFileSync(file, 'version: 1\nuid_range: {min: 5, max: 1}\n');
    expect(() => UsermapStore.open({ file, log })).toThrow(/uid_range: min must not exceed max/);
    expect(() => UsermapStore.open({ file: path.join(dir, 'missing.yml'), log })).toThrow(/cannot read the usermap/);
  });
});
