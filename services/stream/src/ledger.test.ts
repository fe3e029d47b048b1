import path from 'node:path';
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
});
