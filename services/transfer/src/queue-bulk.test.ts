import fs from 'node:fs';
import path from 'node:path';
import { tempDir } from '@cloudlet/core/testing';
import { Queue } from './queue';

const dir = tempDir('cloudlet-transfer-queue-bulk-');
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

const spec = { person: 'alice', cluster: 'hpc', source: '/data/run2', dest: '/remote/run2' };
const files = ['a', 'b', 'c'].map((n, i) => ({ rel: `${n}.mrc`, local: `/data/run2/${n}.mrc`, size: 10 * (i + 1) }));

it('moves many files in one go, with per-file fields, and moves none when one transition is refused', () => {
  const q = new Queue(path.join(dir, 'q.sqlite'));
  const { job } = q.add(spec, files);
  const rels = files.map((f) => f.rel);
  expect(q.setFiles(job.id, rels, 'sending', { attempt: true }).map((f) => [f.state, f.attempts])).toEqual([['sending', 1], ['sending', 1], ['sending', 1]]);
  q.setFiles(job.id, rels, 'sent');
  q.setFiles(job.id, ['a.mrc'], 'verified', (rel) => ({ sha256: `sha-of-${rel}`, reason: null }));
  expect(q.file(job.id, 'a.mrc')).toMatchObject({ state: 'verified', sha256: 'sha-of-a.mrc', attempts: 1 });

  // verified -> sent is not a transition: b and c must stay where they were.
  expect(() => q.setFiles(job.id, ['b.mrc', 'c.mrc', 'a.mrc'], 'sent', { reason: 'x' })).toThrow(/a\.mrc: verified -> sent is not a transition/);
  expect(q.files(job.id).map((f) => [f.rel, f.state, f.reason])).toEqual([['a.mrc', 'verified', null], ['b.mrc', 'sent', null], ['c.mrc', 'sent', null]]);
  expect(() => q.setFiles(job.id, ['nope.mrc'], 'queued')).toThrow(/no file nope\.mrc/);
  q.close();
});
