/**
 * The dashboard's routes over loopback HTTP, with a real Ledger on a temp file filled through
 * its public API, and the curation store on the same file: re-judging writes no movie, bad input
 * is refused with the field named, the thumbnail route serves only its allow-list from inside
 * the movie's folder, the exports parse, and the event stream carries what changed.
 */
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import express from 'express';
import { closeServer, createLogger, errorHandler, listen } from '@cloudlet/core';
import { tempDir } from '@cloudlet/core/testing';
import { Ledger, type Movie } from '../ledger';
import { CurationStore } from './curation-store';
import { createDashboard, type Dashboard } from './dashboard';
import type { ExposureRow } from './exposure-index';
import { addExposure, fillLedger, outputDirIn, random } from './testing-exposures';

const log = createLogger({ name: 'test', level: 'silent' });
const OPTICS = { pixelSize_A: 0.83, voltage_kV: 300, cs_mm: 2.7, amplitudeContrast: 0.07 };

let dir: string;
let ledger: Ledger;
let store: CurationStore;
let dashboard: Dashboard<Movie>;
let server: http.Server;
let base: string;
let outputDir: (m: { id: number; path: string }) => string;
let movies: Movie[];

beforeAll(async () => {
  dir = tempDir('dashboard-');
  const file = path.join(dir, 'ledger.db');
  ledger = new Ledger(file);
  store = new CurationStore(file);
  outputDir = outputDirIn(path.join(dir, 'out'));
  movies = fillLedger(ledger, { count: 60, endMs: Date.now() - 5000, intervalMs: 11_000, thumbnails: 5, inFlight: 3, outputDir });
  dashboard = createDashboard({ ledger, outputDir, store, optics: OPTICS, outputRoot: dir, log, summaryIntervalMs: 200, alarms: { current: () => [{ rule: 0, name: 'CTF fit worse than 6 A for 3 movies in a row', active: true, since: Date.now(), message: 'x: CTF fit 9.1 A' }] } });
  const app = express();
  // Mounted under a prefix, as behind OOD's /rnode/<host>/<port>/, to prove nothing assumes the root.
  app.use('/rnode/node1/8080', dashboard.router);
  app.use(errorHandler(log));
  server = http.createServer(app);
  const address = await listen(server, '127.0.0.1', 0);
  base = `http://127.0.0.1:${address.port}/rnode/node1/8080/`;
});

afterAll(async () => {
  dashboard.close();
  await closeServer(server);
  store.close();
  ledger.close();
});

async function getJson<T>(url: string): Promise<T> {
  const res = await fetch(base + url);
  expect(res.status).toBe(200);
  return (await res.json()) as T;
}

async function post(url: string, body: unknown): Promise<Response> {
  return fetch(base + url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
}

const rowsNow = async (): Promise<ExposureRow[]> => (await getJson<{ rows: ExposureRow[] }>('api/exposures')).rows;

/** Everything the pipeline owns about each movie: a re-judgement must leave all of it as it was. */
const ledgerSnapshot = (): string => JSON.stringify(ledger.all().map((m) => ({ id: m.id, state: m.state, step: m.step, stepIndex: m.stepIndex, times: m.times, metrics: m.metrics, attempts: m.attempts })));

/** Reads an SSE stream until `until` says it has what it wants. */
function readEvents(url: string, until: (events: { event: string; data: unknown }[]) => boolean, timeoutMs = 5000): Promise<{ event: string; data: unknown }[]> {
  return new Promise((resolve, reject) => {
    const events: { event: string; data: unknown }[] = [];
    let buffer = '';
    const req = http.get(base + url, (res) => {
      expect(res.headers['content-type']).toBe('text/event-stream');
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        buffer += chunk;
        let end: number;
        while ((end = buffer.indexOf('\n\n')) >= 0) {
          const frame = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          const event = /^event: (.*)$/m.exec(frame)?.[1];
          const data = /^data: (.*)$/m.exec(frame)?.[1];
          if (event && data) events.push({ event, data: JSON.parse(data) as unknown });
        }
        if (until(events)) {
          clearTimeout(timer);
          req.destroy();
          resolve(events);
        }
      });
    });
    req.on('error', (err) => {
      if (!req.destroyed) reject(err);
    });
    const timer = setTimeout(() => {
      req.destroy();
      reject(new Error(`timed out; got ${events.map((e) => e.event).join(',')}`));
    }, timeoutMs);
  });
}

test('the page is served with relative addresses only and no inline script or style', async () => {
  const res = await fetch(base);
  expect(res.status).toBe(200);
  const html = await res.text();
  expect(html).toContain('static/dashboard.js');
  expect(html).not.toMatch(/(src|href|action)="\//);
  expect(html).not.toMatch(/<script(?![^>]*\bsrc=)[^>]*>/);
  expect(html).not.toMatch(/\sstyle=|<style/);
  // The headline is there before any script runs.
  expect(html).toMatch(/data-key="found"><div class="v"><span class="n">60</);
  expect(html).toContain('CTF fit worse than 6 A');
  for (const asset of ['static/dashboard.js', 'static/table.js', 'vendor/uPlot.esm.js', 'vendor/uPlot.min.css', 'static/dashboard.css']) {
    const a = await fetch(base + asset);
    expect([asset, a.status]).toEqual([asset, 200]);
  }
});

test('without the trailing slash the page redirects to it, relative to where it is mounted', async () => {
  const res = await fetch(base.slice(0, -1), { redirect: 'manual' });
  expect(res.status).toBe(308);
  expect(res.headers.get('location')).toBe('8080/');
});

test('exposures come as compact judged rows; the summary adds up', async () => {
  const rows = await rowsNow();
  expect(rows).toHaveLength(60);
  const done = rows.filter((r) => r.state === 'done');
  expect(done.length).toBeGreaterThan(50);
  const r = done[0] as ExposureRow;
  expect(r.name).toMatch(/^FoilHole_.*\.tiff$/);
  expect(typeof r.defocus_um).toBe('number');
  expect(['accepted', 'rejected']).toContain(r.verdict);
  expect(rows.find((x) => x.state === 'queued')?.verdict).toBe('pending');
  const s = await getJson<Record<string, number | null>>('api/summary');
  expect(s.found).toBe(60);
  expect(s.done).toBe(done.length);
  expect((s.accepted as number) + (s.rejected as number) + (s.pending as number) + (s.failed as number)).toBeGreaterThanOrEqual(60 - (s.failed as number));
  // Lags were generated between 14 and ~50 s; data reduction about 55x.
  expect(s.lagP95S).toBeGreaterThan(14);
  expect(s.lagP95S).toBeLessThan(80);
  expect(s.reduction).toBeGreaterThan(50);
  expect(s.reduction).toBeLessThan(60);
  expect(s.queued).toBe(1);
});

test('a threshold edit flips verdicts at once and changes nothing the pipeline recorded', async () => {
  const before = await rowsNow();
  const snapshot = ledgerSnapshot();
  const ctfs = before.filter((r) => r.state === 'done' && r.ctfFitResolution_A !== undefined).map((r) => r.ctfFitResolution_A as number).sort((a, b) => a - b);
  const median = ctfs[Math.floor(ctfs.length / 2)] as number;
  const events = readEvents('api/events', (ev) => ev.some((e) => e.event === 'verdicts'));
  await new Promise((r) => setTimeout(r, 100)); // the stream is open before the edit (its first frame is sent at once)
  const res = await post('api/thresholds', { ctfFitResolution_A: { max: String(median) }, defocus_um: { min: '0.3', max: '' } });
  expect(res.status).toBe(200);
  const after = await rowsNow();
  const flipped = after.filter((r) => before.find((b) => b.id === r.id)?.verdict !== r.verdict);
  expect(flipped.length).toBeGreaterThan(5);
  for (const r of after.filter((x) => x.state === 'done' && (x.ctfFitResolution_A as number) > median)) {
    expect(r.verdict).toBe('rejected');
    expect(r.reasons.join()).toMatch(/CTF fit resolution .* > /);
  }
  expect(ledgerSnapshot()).toBe(snapshot);
  const verdicts = (await events).find((e) => e.event === 'verdicts')?.data as { verdicts: [number, string, string[]][] };
  expect(verdicts.verdicts).toHaveLength(60);
  expect(new Map(verdicts.verdicts.map(([id, v]) => [id, v]))).toEqual(new Map(after.map((r) => [r.id, r.verdict])));
  // Kept for the next start: a second store on the same file reads the same thresholds.
  const again = new CurationStore(path.join(dir, 'ledger.db'));
  expect(again.thresholds()).toEqual({ ctfFitResolution_A: { max: median }, defocus_um: { min: 0.3 } });
  again.close();
});

test('bad thresholds are refused with the field named, and nothing changes', async () => {
  const before = store.thresholds();
  for (const [body, field] of [
    [{ ctfFitResolution_A: { max: 'five' } }, 'ctfFitResolution_A.max'],
    [{ defocus_um: { min: 3, max: 1 } }, 'defocus_um'],
    [{ bogus: { max: 1 } }, 'bogus'],
    [{ totalMotion_px: { max: '1e999' } }, 'totalMotion_px.max'],
  ] as const) {
    const res = await post('api/thresholds', body);
    expect(res.status).toBe(400);
    expect(((await res.json()) as { message: string }).message).toContain(field);
  }
  const notJson = await fetch(`${base}api/thresholds`, { method: 'POST', headers: { 'content-type': 'text/plain' }, body: 'ctf=5' });
  expect(notJson.status).toBe(400);
  expect(store.thresholds()).toEqual(before);
});

test('a manual mark wins over the thresholds, is kept, and can be taken back', async () => {
  const rejected = (await rowsNow()).find((r) => r.verdict === 'rejected' && r.manual === null) as ExposureRow;
  let res = await post(`api/exposures/${rejected.id}/mark`, { manual: 'accept' });
  expect(res.status).toBe(200);
  expect(await res.json()).toMatchObject({ id: rejected.id, verdict: 'accepted', manual: 'accept', reasons: ['accepted by hand'] });
  expect(store.mark(rejected.id)).toBe('accept');
  res = await post(`api/exposures/${rejected.id}/mark`, { manual: null });
  expect(await res.json()).toMatchObject({ verdict: 'rejected', manual: null });
  expect(store.mark(rejected.id)).toBeNull();
  expect((await post(`api/exposures/${rejected.id}/mark`, { manual: 'maybe' })).status).toBe(400);
  expect((await post('api/exposures/99999/mark', { manual: 'reject' })).status).toBe(404);
  expect((await post('api/exposures/abc/mark', { manual: 'reject' })).status).toBe(400);
});

test('thumbnails: only the allow-list, only from inside the movie folder', async () => {
  const newestDone = [...movies].reverse().find((m) => m.state === 'done') as Movie;
  const ok = await fetch(`${base}files/${newestDone.id}/sum.png`);
  expect(ok.status).toBe(200);
  expect(ok.headers.get('content-type')).toBe('image/png');
  expect(Buffer.from(await ok.arrayBuffer()).subarray(0, 8)).toEqual(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]));

  const secret = path.join(dir, 'secret.png');
  fs.writeFileSync(secret, 'not for the browser');
  const folder = outputDir(newestDone);
  fs.writeFileSync(path.join(folder, 'motion.json'), '{}');
  // A link planted in the output folder that points out of it.
  fs.rmSync(path.join(folder, 'spectrum.png'));
  fs.symlinkSync(secret, path.join(folder, 'spectrum.png'));

  const raw = (p: string): Promise<number> =>
    new Promise((resolve, reject) => {
      // http.get sends the path as written: fetch would normalise the dots away before they reach us.
      http.get(new URL(base).origin + new URL(base).pathname + p, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      }).on('error', reject);
    });
  expect(await raw(`files/${newestDone.id}/spectrum.png`)).toBe(403);
  expect(await raw(`files/${newestDone.id}/motion.json`)).toBe(404);
  expect(await raw(`files/${newestDone.id}/..%2F..%2Fsecret.png`)).toBe(404);
  expect(await raw(`files/${newestDone.id}/../../secret.png`)).toBe(404);
  expect(await raw(`files/${newestDone.id}/%2E%2E`)).toBe(404);
  expect(await raw(`files/..%2F${newestDone.id}/sum.png`)).toBe(400);
  expect(await raw('files/99999/sum.png')).toBe(404);
  // An allowed name the steps have not written yet.
  const queued = movies.find((m) => m.state === 'queued') as Movie;
  expect(await raw(`files/${queued.id}/sum.png`)).toBe(404);
});

test('exports: RELION micrographs STAR of the accepted, coordinates STAR, metrics CSV', async () => {
  const rows = await rowsNow();
  const accepted = rows.filter((r) => r.verdict === 'accepted');
  expect(accepted.length).toBeGreaterThan(3);

  const star = await fetch(`${base}export/micrographs.star`);
  expect(star.headers.get('content-disposition')).toBe('attachment; filename="micrographs_ctf.star"');
  const text = await star.text();
  const loop = text.slice(text.indexOf('data_micrographs'));
  const labels = loop.split('\n').filter((l) => l.startsWith('_rln')).map((l) => l.split(' ')[0]);
  expect(labels.slice(0, 4)).toEqual(['_rlnMicrographName', '_rlnOpticsGroup', '_rlnCtfImage', '_rlnDefocusU']);
  const dataLines = loop.split('\n').filter((l) => l.trim() !== '' && !l.startsWith('_') && !l.startsWith('data_') && !l.startsWith('loop_') && !l.startsWith('#'));
  expect(dataLines).toHaveLength(accepted.length);
  for (const line of dataLines) {
    const cols = line.split(/\s+/);
    expect(cols).toHaveLength(labels.length);
    expect(cols[0]).toMatch(new RegExp(`^${path.join(dir, 'out')}/\\d{6}_FoilHole_.*/sum\\.mrc$`));
    expect(Number(cols[3])).toBeGreaterThan(5000);
  }
  expect(text).toMatch(/opticsGroup1 1 0\.830000 300\.000000 2\.700000 0\.070000/);

  const coords = await (await fetch(`${base}export/coordinates.star`)).text();
  expect(coords.split('\n').filter((l) => /picks\.star$/.test(l))).toHaveLength(accepted.length);

  const csvRes = await fetch(`${base}export/metrics.csv`);
  expect(csvRes.headers.get('content-type')).toMatch(/^text\/csv/);
  expect(csvRes.headers.get('content-disposition')).toContain('attachment');
  const lines = (await csvRes.text()).trimEnd().split('\r\n');
  expect(lines).toHaveLength(61);
  const header = (lines[0] as string).split(',');
  expect(header.slice(0, 4)).toEqual(['id', 'movie', 'state', 'verdict']);
  for (const line of lines.slice(1)) expect(line.split(',').length).toBeGreaterThanOrEqual(header.length);
});

test('a movie that changes reaches the event stream as its new row, and the summary follows', async () => {
  const rand = random(99);
  const summaryAfterExposure = (ev: { event: string }[]): boolean => ev.slice(ev.findIndex((e) => e.event === 'exposure') + 1).some((e) => e.event === 'summary');
  const events = readEvents('api/events', (ev) => ev.some((e) => e.event === 'exposure') && summaryAfterExposure(ev));
  await new Promise((r) => setTimeout(r, 100));
  const movie = addExposure(ledger, { index: 5000, acquiredMs: Date.now(), rand, stage: 'queued', thumbnails: false, outputDir });
  dashboard.onMovie(movie);
  const got = await events;
  const row = got.find((e) => e.event === 'exposure')?.data as ExposureRow;
  expect(row).toMatchObject({ id: movie.id, state: 'queued', verdict: 'pending' });
  const last = got.filter((e) => e.event === 'summary').pop()?.data as { found: number; queued: number };
  expect(last.found).toBe(61);
  expect((await rowsNow()).map((r) => r.id)).toContain(movie.id);
});
