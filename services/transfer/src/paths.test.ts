import fs from 'node:fs';
import path from 'node:path';
import { tempDir } from '@cloudlet/core/testing';
import { confineLocal, confineRemote, listSource } from './paths';
import { jobId } from './queue';

describe('confineRemote', () => {
  const roots = ['/ocean/projects/abc', '/scratch/'];

  it('accepts and normalizes paths under an allowed root', () => {
    expect(confineRemote(roots, '/ocean/projects/abc')).toBe('/ocean/projects/abc');
    expect(confineRemote(roots, '/ocean/projects/abc/run1/')).toBe('/ocean/projects/abc/run1');
    expect(confineRemote(roots, '/scratch//a/./b')).toBe('/scratch/a/b');
  });

  it.each([
    ['/ocean/projects/abc/../xyz', /contains "\.\."/],
    ['/ocean/projects/abc/..', /contains "\.\."/],
    ['ocean/projects/abc', /must be absolute/],
    ['~/data', /must be absolute/],
    ['/ocean/projects/abcd', /outside the allowed folders/],
    ['/etc', /outside the allowed folders/],
    ['/ocean/projects/abc/a\nb', /control character/],
  ])('refuses %j', (dest, message) => {
    expect(() => confineRemote(roots, dest)).toThrow(message);
  });
});

describe('local confinement', () => {
  const dir = tempDir('cloudlet-transfer-paths-');
  const root = path.join(dir, 'root');
  const outside = path.join(dir, 'outside');
  fs.mkdirSync(path.join(root, 'run', 'sub'), { recursive: true });
  fs.mkdirSync(outside);
  fs.writeFileSync(path.join(root, 'run', 'a.mrc'), 'a');
  fs.writeFileSync(path.join(root, 'run', 'sub', 'b.mrc'), 'bb');
  fs.writeFileSync(path.join(outside, 'secret'), 's');
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('lists the files of a folder under a root', () => {
    const { base, files } = listSource([root], path.join(root, 'run'));
    expect(base).toBe(fs.realpathSync(path.join(root, 'run')));
    expect(files.map((f) => [f.rel, f.size])).toEqual([['a.mrc', 1], ['sub/b.mrc', 2]]);
    expect(listSource([root], path.join(root, 'run'), ['sub/b.mrc']).files.map((f) => f.rel)).toEqual(['sub/b.mrc']);
  });

  it('refuses folders outside the roots, "..", relative paths and escaping names', () => {
    expect(() => confineLocal([root], outside)).toThrow(/outside the allowed folders/);
    expect(() => confineLocal([root], `${root}/run/../../outside`)).toThrow(/contains "\.\."/);
    expect(() => confineLocal([root], 'run')).toThrow(/must be absolute/);
    expect(() => listSource([root], path.join(root, 'run'), ['../../outside/secret'])).toThrow(/without "\.\."/);
  });

  it('refuses a symlink inside the folder that points out', () => {
    const linked = path.join(root, 'linked');
    fs.mkdirSync(linked);
    fs.writeFileSync(path.join(linked, 'ok.mrc'), 'ok');
    fs.symlinkSync(path.join(outside, 'secret'), path.join(linked, 'escape.mrc'));
    expect(() => listSource([root], linked)).toThrow(/outside the allowed folders/);
    fs.symlinkSync(outside, path.join(root, 'out-dir'));
    expect(() => listSource([root], path.join(root, 'out-dir'))).toThrow(/outside the allowed folders/);
  });
});

describe('jobId', () => {
  const spec = { person: 'alice', cluster: 'bridges2', source: '/data/run1', dest: '/ocean/a', files: ['b', 'a'] };

  it('is stable and ignores the order of named files', () => {
    expect(jobId(spec)).toBe(jobId({ ...spec }));
    expect(jobId(spec)).toBe(jobId({ ...spec, files: ['a', 'b'] }));
    expect(jobId(spec)).toMatch(/^[0-9a-f]{24}$/);
  });

  it('differs when anything the job asks for differs', () => {
    const ids = new Set([
      jobId(spec),
      jobId({ ...spec, person: 'bob' }),
      jobId({ ...spec, cluster: 'other' }),
      jobId({ ...spec, source: '/data/run2' }),
      jobId({ ...spec, dest: '/ocean/b' }),
      jobId({ ...spec, files: ['a'] }),
      jobId({ ...spec, files: undefined }),
    ]);
    expect(ids.size).toBe(7);
  });
});
