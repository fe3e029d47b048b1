/**
 * The dashboard in headless Chromium, served as app.ts would (security headers with the strict
 * CSP, under an OOD-like /rnode prefix) from a real Ledger filled with generated exposures and
 * real PNG thumbnails: the strip and plots appear, a threshold edit in the form flips marks in
 * the table without touching the ledger, a bad value is pointed at, a new movie arrives without
 * a reload, and the page stays quick at 10,000 exposures. Screenshots go to test-artifacts/.
 */
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import express from 'express';
import type { Browser, Page } from 'playwright-core';
import { closeServer, createLogger, errorHandler, listen, securityHeaders } from '@cloudlet/core';
import { launchChromium } from '@cloudlet/core/browser';
import { tempDir } from '@cloudlet/core/testing';
import { Ledger, type Movie } from '../ledger';
import { CurationStore } from './curation-store';
import { createDashboard, type Dashboard } from './dashboard';
import { addExposure, fillLedger, outputDirIn, random } from './testing-exposures';

jest.setTimeout(180_000);

const REPO_ROOT = path.resolve(__dirname, '..', '..', '..', '..');
const ARTIFACTS = path.join(REPO_ROOT, 'test-artifacts');
const PREFIX = '/rnode/node1/8443/';
const log = createLogger({ name: 'test', level: 'silent' });

// The page's globals, typed only as far as these checks use them: the service's tsconfig has no
// DOM library, and adding one would let server code call browser APIs unnoticed.
interface PageElement {
  textContent: string | null;
  dataset: Record<string, string | undefined>;
  querySelector(selector: string): PageElement | null;
  complete: boolean;
  naturalWidth: number;
  scrollTop: number;
  scrollHeight: number;
}
declare const document: { querySelector(selector: string): PageElement; querySelectorAll(selector: string): ArrayLike<PageElement> & Iterable<PageElement> };
declare const window: { scrollTo(x: number, y: number): void; __sameDocument?: boolean };
declare function requestAnimationFrame(callback: () => void): number;

interface Session {
  ledger: Ledger;
  store: CurationStore;
  dashboard: Dashboard<Movie>;
  server: http.Server;
  url: string;
  outputDir: (m: Movie) => string;
  close(): Promise<void>;
}

async function startSession(count: number): Promise<Session> {
  const dir = tempDir('dashboard-e2e-');
  const file = path.join(dir, 'ledger.db');
  const ledger = new Ledger(file);
  const store = new CurationStore(file);
  const outputDir = outputDirIn(path.join(dir, 'out'));
  // About 320 movies an hour, the newest just now.
  fillLedger(ledger, { count, endMs: Date.now() - 20_000, intervalMs: 11_250, thumbnails: 16, inFlight: 3, outputDir });
  const dashboard = createDashboard({
    ledger,
    outputDir,
    store,
    optics: { pixelSize_A: 0.83, voltage_kV: 300, cs_mm: 2.7, amplitudeContrast: 0.07 },
    outputRoot: dir,
    log,
    title: 'Krios G4 · session 2024-05-14 apoferritin',
    alarms: {
      current: () => [
        { rule: 0, name: 'CTF fit worse than 6 A for 3 movies in a row', active: false, since: null, message: null },
        { rule: 1, name: 'defocus outside 0.5-3 um', active: true, since: Date.now() - 95_000, message: 'FoilHole_3101655_Data_3_09933_fractions.tiff: defocus 4.12 um' },
        { rule: 2, name: 'no new movie for 10 min', active: false, since: null, message: null },
      ],
    },
  });
  const app = express();
  app.use(securityHeaders());
  app.use(PREFIX, dashboard.router);
  app.use(errorHandler(log));
  const server = http.createServer(app);
  const address = await listen(server, '127.0.0.1', 0);
  return {
    ledger,
    store,
    dashboard,
    server,
    outputDir,
    url: `http://127.0.0.1:${address.port}${PREFIX}`,
    async close() {
      dashboard.close();
      await closeServer(server);
      store.close();
      ledger.close();
    },
  };
}

let browser: Browser;

beforeAll(async () => {
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  browser = await launchChromium();
});

afterAll(async () => {
  await browser?.close();
});

/** A page that records script errors and CSP refusals, so a test can insist there were none. */
async function openPage(): Promise<{ page: Page; problems: string[] }> {
  const page = await browser.newPage({ viewport: { width: 1680, height: 1050 }, deviceScaleFactor: 1 });
  const problems: string[] = [];
  page.on('pageerror', (err) => problems.push(`pageerror: ${err.message}`));
  page.on('response', (res) => {
    if (res.status() >= 400) problems.push(`${res.status()} ${res.url()}`);
  });
  page.on('console', (msg) => {
    if (msg.type() === 'error') problems.push(`console: ${msg.text()}`);
  });
  return { page, problems };
}

const tableVerdict = (page: Page, id: number): Promise<string | null> =>
  page.evaluate((id) => {
    for (const row of document.querySelectorAll('.vt-row:not([hidden])')) {
      if (row.querySelector('.c')?.textContent === String(id)) return row.dataset.verdict ?? null;
    }
    return null;
  }, id);

test('20 exposures: strip, plots, a threshold edit that flips marks, a bad value, a new movie live', async () => {
  const s = await startSession(20);
  const { page, problems } = await openPage();
  try {
    await page.goto(s.url);
    await page.waitForSelector('body[data-ready="true"]', { timeout: 15_000 });
    await page.waitForSelector('#live[data-state="open"]');

    // The strip: the newest twelve, thumbnails decoded (real PNGs through the confined file route).
    await page.waitForFunction(() => document.querySelectorAll('#strip .card').length === 12);
    await page.waitForFunction(() => Array.from(document.querySelectorAll('#strip img:not([hidden])')).filter((i) => i.complete && i.naturalWidth === 128).length >= 16);
    expect(await page.locator('#strip .card').first().locator('.step').textContent()).toBe('queued');
    // Plots: a series and a histogram canvas for each of the six metrics.
    expect(await page.locator('#plots .plot').count()).toBe(6);
    expect(await page.locator('#plots canvas').count()).toBe(12);
    expect(await page.locator('#table .vt-row:not([hidden])').count()).toBe(20);

    // Tighten the CTF threshold to the median of the finished exposures: about half flip to rejected.
    const rows = s.ledger.all().filter((m) => m.state === 'done');
    const ctf = rows.map((m) => m.metrics.ctfFitResolution_A as number).sort((a, b) => a - b);
    const median = ctf[Math.floor(ctf.length / 2)] as number;
    const flips = rows.filter((m) => (m.metrics.ctfFitResolution_A as number) > median && (m.metrics.ctfFitResolution_A as number) <= 6);
    expect(flips.length).toBeGreaterThan(2);
    const sample = flips[0] as Movie;
    expect(await tableVerdict(page, sample.id)).toBe('accepted');
    const before = JSON.stringify(s.ledger.all());
    await page.evaluate(() => Object.assign(window, { __sameDocument: true }));

    await page.fill('input[name="ctfFitResolution_A.max"]', String(median));
    await page.click('#thresholds button[type="submit"]');
    await page.waitForFunction((id) => Array.from(document.querySelectorAll('.vt-row')).some((r) => r.querySelector('.c')?.textContent === String(id) && r.dataset.verdict === 'rejected'), sample.id);
    for (const m of flips) expect(await tableVerdict(page, m.id)).toBe('rejected');
    // The strip shows the same marks as the table.
    const mismatches = await page.evaluate(() => {
      const table = new Map(Array.from(document.querySelectorAll('.vt-row:not([hidden])')).map((r) => [r.querySelector('.c')?.textContent, r.dataset.verdict]));
      return Array.from(document.querySelectorAll('#strip .card')).filter((c) => table.get(c.dataset.id) !== c.dataset.verdict).map((c) => c.dataset.id);
    });
    expect(mismatches).toEqual([]);
    expect(await page.textContent('#thresholds-status')).toBe('Applied.');
    // Nothing about any movie changed in the ledger: no stamp, no state, no metric.
    expect(JSON.stringify(s.ledger.all())).toBe(before);

    // A value that is not a number: refused by the server, the field pointed at, nothing changed.
    await page.fill('input[name="defocus_um.max"]', '4 um');
    await page.click('#thresholds button[type="submit"]');
    await page.waitForSelector('input[name="defocus_um.max"].invalid');
    expect(await page.textContent('#thresholds-status')).toContain('defocus_um.max');
    expect(s.store.thresholds().ctfFitResolution_A).toEqual({ max: median });
    await page.fill('input[name="defocus_um.max"]', '4');

    // A mark by hand from the strip.
    const card = page.locator('#strip .card[data-verdict="rejected"]').first();
    const markedId = Number(await card.getAttribute('data-id'));
    await card.locator('button[data-mark="accept"]').click();
    await page.waitForSelector(`#strip .card[data-id="${markedId}"][data-manual="accept"]`);
    expect(s.store.mark(markedId)).toBe('accept');
    await page.waitForFunction((id) => Array.from(document.querySelectorAll('.vt-row')).some((r) => r.querySelector('.c')?.textContent === String(id) && r.dataset.verdict === 'accepted'), markedId);

    // A new movie: into the ledger, announced as the runner would; it appears with no reload.
    const movie = addExposure(s.ledger, { index: 20, acquiredMs: Date.now() - 2000, rand: random(5), stage: 'done', thumbnails: true, outputDir: s.outputDir });
    s.dashboard.onMovie(movie);
    await page.waitForSelector(`#strip .card[data-id="${movie.id}"]`);
    await page.waitForFunction((id) => Array.from(document.querySelectorAll('.vt-row .c:first-child')).some((c) => c.textContent === String(id)), movie.id);
    expect(await page.locator('#strip .card').first().getAttribute('data-id')).toBe(String(movie.id));
    await page.waitForFunction(() => document.querySelector('.tile[data-key="found"] .n')?.textContent === '21');
    expect(await page.evaluate(() => window.__sameDocument)).toBe(true);

    await page.waitForFunction((id) => {
      const img = document.querySelector(`#strip .card[data-id="${id}"] img.sum`);
      return img !== null && img.complete && img.naturalWidth > 0;
    }, movie.id);
    await page.screenshot({ path: path.join(ARTIFACTS, 'dashboard-20.png'), fullPage: true });
    // The one refusal asked for above (the bad threshold) is expected; nothing else may fail.
    expect(problems.filter((p) => !/api\/thresholds|status of 400/.test(p))).toEqual([]);
  } finally {
    await page.close();
    await s.close();
  }
});

test('10,000 exposures: ready in seconds, the table scrolls and sorts, plots hold every point', async () => {
  const s = await startSession(10_000);
  const { page, problems } = await openPage();
  try {
    const started = Date.now();
    await page.goto(s.url);
    await page.waitForSelector('body[data-ready="true"]', { timeout: 20_000 });
    const readyMs = Date.now() - started;
    console.log(`dashboard with 10,000 exposures ready in ${readyMs} ms`);
    expect(readyMs).toBeLessThan(8000);
    expect(await page.textContent('#table-count')).toBe('10000 exposures');
    // Only what is in view exists in the DOM.
    expect(await page.locator('#table .vt-row').count()).toBeLessThan(60);

    // Scroll to the middle: the rows there are drawn.
    await page.evaluate(() => {
      const sc = document.querySelector('.vt-scroll');
      sc.scrollTop = sc.scrollHeight / 2;
    });
    await page.waitForFunction(() => {
      const first = document.querySelector('.vt-row:not([hidden]) .c')?.textContent;
      return first !== undefined && Number(first) < 5200 && Number(first) > 4800;
    });

    // Sort by CTF fit, worst first, and filter to the rejected: quick, and in order.
    const t0 = Date.now();
    await page.click('.vt-head [data-sort="ctfFitResolution_A"]');
    const sorted = await page.evaluate(() => {
      (document.querySelector('.vt-scroll')).scrollTop = 0;
      return new Promise<string[]>((resolve) => requestAnimationFrame(() => resolve(Array.from(document.querySelectorAll('.vt-row:not([hidden]) .c:nth-child(7)')).slice(0, 10).map((c) => c.textContent ?? ''))));
    });
    const values = sorted.map(Number);
    expect(values).toEqual([...values].sort((a, b) => b - a));
    await page.selectOption('#filter-verdict', 'rejected');
    await page.waitForFunction(() => /^\d+ of 10000 exposures$/.test(document.querySelector('#table-count')?.textContent ?? ''));
    console.log(`sort + filter over 10,000 rows: ${Date.now() - t0} ms`);
    await page.selectOption('#filter-verdict', '');
    await page.click('.vt-head [data-sort="id"]');

    await page.evaluate(() => {
      (document.querySelector('.vt-scroll')).scrollTop = 0;
      window.scrollTo(0, 0);
    });
    await page.waitForFunction(() => Array.from(document.querySelectorAll('#strip img:not([hidden])')).every((i) => i.complete && i.naturalWidth > 0));
    await page.screenshot({ path: path.join(ARTIFACTS, 'dashboard-10000.png'), fullPage: true });
    expect(problems).toEqual([]);
  } finally {
    await page.close();
    await s.close();
  }
});
