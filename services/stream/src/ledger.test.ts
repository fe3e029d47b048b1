import path from 'node:path';
import Database from 'better-sqlite3';
import { tempDir } from '@cloudlet/core/testing';
import { Ledger, type NewMovie } from './ledger';

function movie(fp: string, relPath: string): NewMovie {
  return { fingerprint: fp, root: '/data', path: relPath, size: 100, mtimeMs: 1000, format: 'mrc', frames: 4, width: 16, height: 16, foundAt: 1, settledAt: 2 };
}

describe('Ledger', () => {
  test('one row per movie: a rename or a second sighting updates the name, never duplicates', () => {
    const ledger = new Ledger(path.join(tempDir(), 'l.sqlite'));
    const a = ledger.ingest(movie('fp1', 'a.mrc'));
    expect(a.created).toBe(true);
    expect(a.movie).toMatchObject({ state: 'queued', path: 'a.mrc', times: { found: 1, settled: 2 } });
    const renamed = ledger.ingest(movie('fp1', 'sub/renamed.mrc'));
    expect(renamed.created).toBe(false);
    expect(ledger.all()).toHaveLength(1);
    expect(ledger.get(a.movie.id)?.path).toBe('sub/renamed.mrc');
    ledger.close();
  });

  test('state changes follow the whitelist and keep a timestamp per stage', () => {
    const ledger = new Ledger(path.join(tempDir(), 'l.sqlite'));
    const { movie: m } = ledger.ingest(movie('fp2', 'b.mrc'));
    expect(() => ledger.transition(m.id, 'done')).toThrow(/queued -> done is not a transition/);
    const running = ledger.transition(m.id, 'running', { step: 'motion', stamps: { 'motion.start': 5 } });
    expect(running).toMatchObject({ state: 'running', step: 'motion', times: { 'motion.start': 5 } });
    const done = ledger.transition(m.id, 'done');
    expect(done.times.done).toBeGreaterThan(0);
    expect(() => ledger.transition(m.id, 'failed')).toThrow(/not a transition/);
    expect(ledger.counts()).toMatchObject({ done: 1, queued: 0 });
    ledger.close();
  });

  test('survives a reopen, and orders the queue oldest- or newest-first', () => {
    const file = path.join(tempDir(), 'l.sqlite');
    const ledger = new Ledger(file);
    for (let i = 0; i < 5; i++) ledger.ingest({ ...movie(`fp${i}`, `m${i}.mrc`), mtimeMs: 1000 + i });
    ledger.close();
    const again = new Ledger(file);
    expect(again.nextQueued(2, 'oldest', new Set()).map((m) => m.path)).toEqual(['m0.mrc', 'm1.mrc']);
    expect(again.nextQueued(2, 'newest', new Set()).map((m) => m.path)).toEqual(['m4.mrc', 'm3.mrc']);
    const skip = new Set([again.nextQueued(1, 'newest', new Set())[0]?.id ?? 0]);
    expect(again.nextQueued(1, 'newest', skip).map((m) => m.path)).toEqual(['m3.mrc']);
    again.close();
  });

  test('files passed over are recorded with their reason', () => {
    const ledger = new Ledger(path.join(tempDir(), 'l.sqlite'));
    ledger.markSeen('/data', 'half.mrc', 'rejected', 'stayed incomplete: truncated', 10, null, 5, 77);
    expect(ledger.handled('/data', 'half.mrc', 10, 77)).toBe(true);
    expect(ledger.handled('/data', 'half.mrc', 11, 77)).toBe(false);
    expect(ledger.passedOver()).toEqual([{ root: '/data', path: 'half.mrc', status: 'rejected', reason: 'stayed incomplete: truncated' }]);
    ledger.close();
  });

  test('metrics merge step by step, commit with the step, and come back from every read', () => {
    const ledger = new Ledger(path.join(tempDir(), 'l.sqlite'));
    const { movie: m } = ledger.ingest(movie('fp3', 'c.mrc'));
    expect(m.metrics).toEqual({});
    ledger.transition(m.id, 'running');
    ledger.transition(m.id, 'running', { stepIndex: 1, metrics: { engines: { motion: 'builtin' }, frames: 8, totalMotion_px: 3, files: { sum: 'a.mrc' } } });
    const after = ledger.mergeMetrics(m.id, { engines: { ctf: 'ctffind4' }, defocusU_A: 12000, totalMotion_px: 4, files: { spectrum: 'b.png' } });
    const expected = { engines: { motion: 'builtin', ctf: 'ctffind4' }, frames: 8, totalMotion_px: 4, defocusU_A: 12000, files: { sum: 'a.mrc', spectrum: 'b.png' } };
    expect(after.metrics).toEqual(expected);
    expect(ledger.get(m.id)?.metrics).toEqual(expected);
    expect(ledger.all()[0]?.metrics).toEqual(expected);
    expect(ledger.inState('running')[0]?.metrics).toEqual(expected);
    // A refused transition leaves the metrics it carried out too.
    ledger.transition(m.id, 'queued', { metrics: { particles: 5 } });
    expect(() => ledger.transition(m.id, 'done', { metrics: { particles: 9 } })).toThrow(/queued -> done is not a transition/);
    expect(ledger.get(m.id)?.metrics.particles).toBe(5);
    expect(() => ledger.mergeMetrics(999, {})).toThrow(/no movie 999/);
    ledger.close();
  });

  test('a ledger from before the metrics column opens, keeps its rows, and takes metrics', () => {
    const file = path.join(tempDir(), 'old.sqlite');
    const old = new Database(file);
    old.exec(`CREATE TABLE movies (id INTEGER PRIMARY KEY, fingerprint TEXT NOT NULL UNIQUE, root TEXT NOT NULL, path TEXT NOT NULL, size INTEGER NOT NULL,
      mtime_ms INTEGER NOT NULL, format TEXT NOT NULL, frames INTEGER NOT NULL, width INTEGER NOT NULL, height INTEGER NOT NULL, state TEXT NOT NULL,
      step_index INTEGER NOT NULL DEFAULT 0, step TEXT, attempts INTEGER NOT NULL DEFAULT 0, reason TEXT, times TEXT NOT NULL DEFAULT '{}')`);
    old.prepare(`INSERT INTO movies (fingerprint, root, path, size, mtime_ms, format, frames, width, height, state, times) VALUES ('fpold', '/data', 'old.mrc', 1, 1, 'mrc', 4, 16, 16, 'done', '{"done":7}')`).run();
    old.close();
    const ledger = new Ledger(file);
    expect(ledger.all()).toEqual([expect.objectContaining({ path: 'old.mrc', state: 'done', times: { done: 7 }, metrics: {} })]);
    expect(ledger.mergeMetrics(1, { iceRatio: 1.1 }).metrics).toEqual({ iceRatio: 1.1 });
    ledger.close();
    // Opening it again (the column is there now) changes nothing.
    const again = new Ledger(file);
    expect(again.get(1)?.metrics).toEqual({ iceRatio: 1.1 });
    again.close();
  });
});
