import fs from 'node:fs';
import path from 'node:path';
import { AppError } from './errors';
import { confinePath, readOrCreateSecretFile, readSecretFile, withFileLock, writeFileAtomic } from './files';
import { tempDir } from './testing';

describe('writeFileAtomic', () => {
  test('replaces the file whole and leaves no temp files behind', () => {
    const dir = tempDir();
    const file = path.join(dir, 'sub', 'data.txt');
    writeFileAtomic(file, 'one');
    writeFileAtomic(file, Buffer.from('two'), 0o600);
    expect(fs.readFileSync(file, 'utf8')).toBe('two');
    expect(fs.readdirSync(path.dirname(file))).toEqual(['data.txt']);
  });
});

describe('withFileLock', () => {
  test('serializes read-modify-write across concurrent callers', async () => {
    const file = path.join(tempDir(), 'counter');
    fs.writeFileSync(file, '0');
    const bump = (): Promise<void> =>
      withFileLock(file, async () => {
        const n = Number(fs.readFileSync(file, 'utf8'));
        await new Promise((resolve) => setTimeout(resolve, 2));
        fs.writeFileSync(file, String(n + 1));
      });
    await Promise.all(Array.from({ length: 20 }, bump));
    expect(fs.readFileSync(file, 'utf8')).toBe('20');
    expect(fs.existsSync(`${file}.lock`)).toBe(false);
  });

  test('takes over a stale lock left by a crashed process', async () => {
    const file = path.join(tempDir(), 'f');
    fs.writeFileSync(`${file}.lock`, '99999\n');
    const old = new Date(Date.now() - 60_000);
    fs.utimesSync(`${file}.lock`, old, old);
    await expect(withFileLock(file, () => 'ran')).resolves.toBe('ran');
  });
});

describe('confinePath', () => {
  const root = tempDir();
  fs.mkdirSync(path.join(root, 'data', 'inner'), { recursive: true });
  const outside = tempDir();
  fs.symlinkSync(outside, path.join(root, 'data', 'escape'));
  fs.symlinkSync(path.join(root, 'data', 'inner'), path.join(root, 'data', 'ok-link'));

  test('accepts paths inside the root, existing or not', () => {
    expect(confinePath(root, 'data/inner')).toBe(path.join(fs.realpathSync(root), 'data', 'inner'));
    expect(confinePath(root, 'data/new/file.mrc')).toBe(path.join(fs.realpathSync(root), 'data', 'new', 'file.mrc'));
    expect(confinePath(root, 'data/ok-link/x')).toBe(path.join(fs.realpathSync(root), 'data', 'inner', 'x'));
  });

  test.each([['../etc/passwd'], ['data/../../x'], ['/etc/passwd'], ['data/escape'], ['data/escape/new-file']])('refuses %s', (candidate) => {
    expect(() => confinePath(root, candidate)).toThrow(AppError);
    try {
      confinePath(root, candidate);
    } catch (err) {
      expect((err as AppError).code).toBe('path_outside_root');
      expect((err as AppError).status).toBe(403);
    }
  });
});

describe('secret files', () => {
  test('are created with mode 600 and read back', () => {
    const file = path.join(tempDir(), 'secrets', 'k');
    const value = readOrCreateSecretFile(file);
    expect(value.length).toBeGreaterThanOrEqual(40);
    expect(fs.statSync(file).mode & 0o777).toBe(0o600);
    expect(readOrCreateSecretFile(file)).toBe(value);
  });

  test('a secret readable by others is refused', () => {
    const file = path.join(tempDir(), 'k');
    fs.writeFileSync(file, 'hunter2', { mode: 0o644 });
    fs.chmodSync(file, 0o644);
    expect(() => readSecretFile(file)).toThrow(/readable by group or others/);
  });

  test('an empty or missing secret is refused', () => {
    const file = path.join(tempDir(), 'k');
    fs.writeFileSync(file, '\n', { mode: 0o600 });
    expect(() => readSecretFile(file)).toThrow(/empty/);
    expect(() => readSecretFile(`${file}-missing`)).toThrow(/not readable/);
  });
});
