import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { Queue } from './queue';
import { FollowStore, RemoteJobStore } from './remote-store';

let dir: string;
let queue: Queue;

beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cloudlet-remote-store-'));
});

afterEach(() => {
  queue?.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

const JOB = { id: 'j1', person: 'alice', cluster: 'hpc', template: 't', values: { dest: '/r' }, script: '#!/bin/sh\n', jobDir: '/r/cloudlet-job-j1', slurmName: 'cloudlet-j1' };

it('opens a database from before remote jobs, keeping its transfer jobs', () => {
  const file = path.join(dir, 'old.sqlite');
  const old = new Database(file);
  old.exec(`
    CREATE TABLE jobs (id TEXT PRIMARY KEY, person TEXT NOT NULL, cluster TEXT NOT NULL, source TEXT NOT NULL, files TEXT, dest TEXT NOT NULL, state TEXT NOT NULL, reason TEXT, created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL);
    CREATE TABLE files (job_id TEXT NOT NULL REFERENCES jobs (id), rel TEXT NOT NULL, local TEXT NOT NULL, remote TEXT NOT NULL, size INTEGER NOT NULL, state TEXT NOT NULL, bytes INTEGER NOT NULL DEFAULT 0, sha256 TEXT, attempts INTEGER NOT NULL DEFAULT 0, reason TEXT, PRIMARY KEY (job_id, rel));
    INSERT INTO jobs VALUES ('old', 'alice', 'hpc', '/src', NULL, '/dest', 'done', NULL, 1, 2);
  `);
  old.close();
  queue = new Queue(file);
  expect(queue.job('old')).toMatchObject({ id: 'old', state: 'done' });
  const store = new RemoteJobStore(queue.db);
  expect(store.add(JOB).created).toBe(true);
  expect(store.add({ ...JOB, script: 'other' })).toMatchObject({ created: false, job: { script: '#!/bin/sh\n' } });
  expect(store.list()).toHaveLength(1);
});

it('moves remote jobs along the whitelist only', () => {
  queue = new Queue(path.join(dir, 'q.sqlite'));
  const store = new RemoteJobStore(queue.db);
  store.add(JOB);
  expect(store.update('j1', { state: 'pending', slurmId: '5', slurmState: 'PENDING' })).toMatchObject({ state: 'pending', slurmId: '5' });
  expect(() => store.update('j1', { state: 'submitting' })).toThrow(/pending -> submitting is not a transition/);
  expect(store.update('j1', { state: 'completed', exitCode: '0:0' })).toMatchObject({ state: 'completed', slurmId: '5', exitCode: '0:0' });
  expect(() => store.update('j1', { state: 'running' })).toThrow(/completed -> running/);
  expect(() => store.update('nope', { state: 'running' })).toThrow(/no remote job nope/);
  expect(store.list({ states: ['completed'] }).map((j) => j.id)).toEqual(['j1']);
  expect(store.list({ states: ['pending'] })).toEqual([]);
});

it('counts arrivals once each and starts a batch every N, atomically with its job', () => {
  queue = new Queue(path.join(dir, 'q.sqlite'));
  const follows = new FollowStore(queue.db);
  follows.add({ id: 'f', person: 'alice', cluster: 'hpc', dest: '/r', rule: { every: 2, template: 't', values: {} } });
  const batches: number[] = [];
  const onBatch = (_f: unknown, batch: number): void => {
    batches.push(batch);
  };
  for (const m of [1, 2, 3]) follows.setMovie({ followId: 'f', movieId: m, source: `/s/${m}`, transferJob: `t${m}`, state: 'sending' });
  follows.arrive('f', 1, onBatch);
  follows.arrive('f', 1, onBatch);
  expect(follows.get('f')).toMatchObject({ arrived: 1, batches: 0 });
  follows.arrive('f', 2, onBatch);
  expect(batches).toEqual([1]);
  expect(follows.get('f')).toMatchObject({ arrived: 0, batches: 1 });

  // A batch whose job cannot be recorded leaves the count and the movie as they were.
  follows.setMovie({ followId: 'f', movieId: 4, source: '/s/4', transferJob: 't4', state: 'sending' });
  follows.arrive('f', 3, onBatch);
  expect(() =>
    follows.arrive('f', 4, () => {
      throw new Error('template broken');
    }),
  ).toThrow(/template broken/);
  expect(follows.get('f')).toMatchObject({ arrived: 1, batches: 1 });
  expect(follows.movie('f', 4)?.state).toBe('sending');
  follows.arrive('f', 4, onBatch);
  expect(batches).toEqual([1, 2]);
  expect(follows.byTransferJob('t4').map((m) => m.movieId)).toEqual([4]);
  expect(() => follows.setState('nope', 'stopped')).toThrow(/no follow nope/);
});
