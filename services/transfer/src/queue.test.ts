import fs from 'node:fs';
import path from 'node:path';
import { tempDir } from '@cloudlet/core/testing';
import { Queue } from './queue';

const dir = tempDir('cloudlet-transfer-queue-');
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

const spec = { person: 'alice', cluster: 'hpc', source: '/data/run1', dest: '/remote/run1' };
const files = [{ rel: 'a.mrc', local: '/data/run1/a.mrc', size: 10 }, { rel: 'x y/$(b).mrc', local: '/data/run1/x y/$(b).mrc', size: 20 }];

it('adds a job once, keeps state across reopening, and recovers what was in flight', () => {
  const file = path.join(dir, 'q.sqlite');
  let q = new Queue(file);
  const first = q.add(spec, files);
  expect(first.created).toBe(true);
  expect(q.add(spec, files)).toEqual({ job: first.job, created: false });
  expect(q.files(first.job.id).map((f) => f.remote)).toEqual(['/remote/run1/a.mrc', '/remote/run1/x y/$(b).mrc']);
  q.setJob(first.job.id, 'running');
  q.setFile(first.job.id, 'a.mrc', 'sending', { attempt: true });
  q.setFile(first.job.id, 'a.mrc', 'sent');
  q.setFile(first.job.id, 'a.mrc', 'verified', { sha256: 'f'.repeat(64) });
  q.setFile(first.job.id, 'x y/$(b).mrc', 'sending', { attempt: true });
  q.close();

  q = new Queue(file);
  q.recover();
  expect(q.job(first.job.id)?.state).toBe('queued');
  expect(q.files(first.job.id).map((f) => [f.state, f.attempts])).toEqual([['verified', 1], ['queued', 1]]);
  expect(q.counts(first.job.id)).toMatchObject({ verified: 1, queued: 1, bytes: 10, totalBytes: 30 });
  q.close();
});

it('refuses transitions outside the state machine', () => {
  const q = new Queue(path.join(dir, 'q2.sqlite'));
  const { job } = q.add(spec, files);
  expect(() => q.setFile(job.id, 'a.mrc', 'verified')).toThrow(/queued -> verified is not a transition/);
  expect(() => q.setJob(job.id, 'done')).toThrow(/queued -> done is not a transition/);
  q.close();
});
