import path from 'node:path';
import { tempDir } from '@cloudlet/core/testing';
import { Ledger } from '../ledger';
import { DEFAULT_THRESHOLDS } from './curation';
import { CurationStore } from './curation-store';

test('thresholds and marks survive a restart, beside the ledger, without touching its tables', () => {
  const file = path.join(tempDir('curation-store-'), 'ledger.db');
  const ledger = new Ledger(file);
  const tablesBefore = ledger.db.prepare("SELECT name, sql FROM sqlite_master WHERE name IN ('movies', 'seen')").all();
  let store = new CurationStore(file);
  expect(store.thresholds()).toEqual(DEFAULT_THRESHOLDS);
  store.setThresholds({ ctfFitResolution_A: { max: 4.5 } });
  store.setMark(3, 'reject');
  store.setMark(4, 'accept');
  store.setMark(4, null);
  store.close();

  store = new CurationStore(file);
  expect(store.thresholds()).toEqual({ ctfFitResolution_A: { max: 4.5 } });
  expect(store.marks()).toEqual(new Map([[3, 'reject']]));
  expect(store.mark(4)).toBeNull();
  expect(ledger.db.prepare("SELECT name, sql FROM sqlite_master WHERE name IN ('movies', 'seen')").all()).toEqual(tablesBefore);
  store.close();
  ledger.close();
});

test('a damaged stored value is an error, not silently the defaults', () => {
  const file = path.join(tempDir('curation-store-'), 'ledger.db');
  const store = new CurationStore(file);
  store.setThresholds({ ctfFitResolution_A: { max: 'x' as unknown as number } });
  expect(() => store.thresholds()).toThrow(/not valid/);
  store.close();
});
