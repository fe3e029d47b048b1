/**
 * The live dashboard a researcher watches during a session: one page (ejs) with browser
 * modules from static/, a JSON API, and an event stream (SSE) that pushes every change of a
 * movie, every re-judgement and the headline numbers, so the page never reloads.
 *
 * Every route is relative to where the router is mounted, and the page uses relative links
 * only: behind OOD's /rnode/<host>/<port>/ proxy the app does not know its own prefix. The
 * router assumes a session gate (core sessionGate) in front of it; the event stream is a plain
 * GET, so the gate's cookie check covers it like any page.
 */
import fs from 'node:fs';
import path from 'node:path';
import ejs from 'ejs';
import express, { type Request, type Response, type Router } from 'express';
import { AppError, confinePath, type Logger } from '@cloudlet/core';
import type { AlarmState } from './alarms';
import { JUDGED_METRIC_NAMES, JUDGED_METRICS, type Manual, parseThresholds, type Thresholds } from './curation';
import type { CurationStore } from './curation-store';
import { type DashboardMovie, ExposureIndex, type ExposureRow, THUMBNAILS } from './exposure-index';
import { coordinatesStar, type ExportOptics, type ExportRow, metricsCsv, micrographsStar } from './exports';
import { hostVitals } from './host-vitals';
import { STAGE_NAMES } from '../preprocess/stage-types';

/** The ledger as the dashboard reads it: the real Ledger fits, and so does a test's fake. */
export interface MovieReader<M extends DashboardMovie> {
  all(limit?: number): M[];
  get(id: number): M | undefined;
  counts(): Record<string, number>;
}

export interface DashboardDeps<M extends DashboardMovie> {
  ledger: MovieReader<M>;
  /** The movie's output folder (the runner's outputDir): thumbnails and exports are found there. */
  outputDir(movie: M): string;
  store: CurationStore;
  optics: ExportOptics;
  /** The file system whose free space the headline shows. */
  outputRoot: string;
  log: Logger;
  alarms?: { current(): readonly AlarmState[] };
  /** The pipeline's step names, for each exposure's progress; default the built-in stages. */
  steps?: readonly string[];
  /** Shown in the title: the instrument or session name. */
  title?: string;
  /** How often the headline is pushed; default 3 s. */
  summaryIntervalMs?: number;
  /** Comment lines that keep proxies from closing an idle stream; default 15 s. */
  heartbeatMs?: number;
}

export interface Dashboard<M extends DashboardMovie> {
  router: Router;
  /** Tell the dashboard a movie changed (every runner 'movie' event, and a new movie queued). */
  onMovie(movie: M): void;
  close(): void;
}

const STATIC_DIR = path.join(__dirname, '..', '..', 'static');
const VIEWS_DIR = path.join(__dirname, '..', '..', 'views');
const UPLOT = { js: require.resolve('uplot/dist/uPlot.esm.js'), css: require.resolve('uplot/dist/uPlot.min.css') };
/** The most rows the dashboard holds; a session beyond this is several sessions. */
const MAX_ROWS = 200_000;

export type Summary = ReturnType<typeof summaryOf>;

function summaryOf(index: ExposureIndex, counts: Record<string, number>, outputRoot: string, steps: readonly string[], alarms: readonly AlarmState[]) {
  const now = Date.now();
  const s = index.stats(now);
  return {
    at: now,
    found: s.exposures,
    done: counts.done ?? 0,
    accepted: s.accepted,
    rejected: s.rejected,
    pending: s.pending,
    failed: (counts.failed ?? 0) + (counts.rejected ?? 0),
    queued: counts.queued ?? 0,
    running: counts.running ?? 0,
    acquiredPerHour: s.acquiredPerHour,
    processedPerHour: s.processedPerHour,
    lagNowS: s.lagNowS,
    lagP95S: s.lagP95S,
    reduction: s.reduction,
    lastAcquired: s.lastAcquired,
    host: hostVitals(outputRoot),
    steps,
    thresholds: index.currentThresholds(),
    alarms: alarms.map((a) => ({ name: a.name, active: a.active, since: a.since, message: a.message })),
  };
}

function parseId(raw: unknown): number {
  const id = typeof raw === 'string' && /^\d{1,15}$/.test(raw) ? Number(raw) : NaN;
  if (!Number.isSafeInteger(id)) throw new AppError(`bad exposure id ${String(raw)}`, { code: 'bad_request', status: 400, publicMessage: 'The exposure id must be a number' });
  return id;
}

function parseManual(body: unknown): Manual {
  const manual = (body as { manual?: unknown } | undefined)?.manual;
  if (manual === 'accept' || manual === 'reject' || manual === null) return manual;
  throw new AppError('bad manual mark', { code: 'bad_request', status: 400, publicMessage: 'manual: expected "accept", "reject" or null' });
}

export function createDashboard<M extends DashboardMovie>(deps: DashboardDeps<M>): Dashboard<M> {
  const { ledger, store, log } = deps;
  const steps = deps.steps ?? STAGE_NAMES;
  const index = new ExposureIndex(ledger.all(MAX_ROWS), store.thresholds(), store.marks());
  const page = ejs.compile(fs.readFileSync(path.join(VIEWS_DIR, 'dashboard.ejs'), 'utf8'), { filename: path.join(VIEWS_DIR, 'dashboard.ejs') });

  // Derived once per change of the index, not once per request: a page and its event stream reconnecting after sleep both want these.
  let rowsJson: { version: number; text: string } | undefined;
  let summaryCache: { version: number; at: number; value: Summary } | undefined;
  const summary = (): Summary => {
    const now = Date.now();
    if (summaryCache && summaryCache.version === index.version && now - summaryCache.at < 1000) return summaryCache.value;
    const value = summaryOf(index, ledger.counts(), deps.outputRoot, steps, deps.alarms?.current() ?? []);
    summaryCache = { version: index.version, at: now, value };
    return value;
  };

  const clients = new Set<Response>();
  const send = (res: Response, event: string, data: unknown): void => {
    res.write(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
  };
  const broadcast = (event: string, data: unknown): void => {
    if (clients.size === 0) return;
    const frame = `event: ${event}\ndata: ${JSON.stringify(data)}\n\n`;
    for (const res of clients) res.write(frame);
  };
  const summaryTimer = setInterval(() => {
    if (clients.size > 0) broadcast('summary', summary());
  }, deps.summaryIntervalMs ?? 3000);
  const heartbeatTimer = setInterval(() => {
    for (const res of clients) res.write(': heartbeat\n\n');
  }, deps.heartbeatMs ?? 15_000);
  summaryTimer.unref();
  heartbeatTimer.unref();

  const router = express.Router();
  const json = express.json({ limit: '64kb' });

  router.get('/', (req, res) => {
    // Without the slash the page's relative links would resolve one folder too high.
    const [pathname, query] = req.originalUrl.split('?', 2) as [string, string | undefined];
    if (!pathname.endsWith('/')) {
      res.redirect(308, `${pathname.slice(pathname.lastIndexOf('/') + 1)}/${query ? `?${query}` : ''}`);
      return;
    }
    const metrics = JUDGED_METRIC_NAMES.map((k) => ({ key: k, label: JUDGED_METRICS[k].label, unit: JUDGED_METRICS[k].unit }));
    res.setHeader('Cache-Control', 'no-store');
    res.type('html').send(page({ title: deps.title ?? 'Live processing', summary: summary(), metrics, thresholds: index.currentThresholds() }));
  });
  router.use('/static', express.static(STATIC_DIR, { index: false, maxAge: 0 }));
  router.get('/vendor/uPlot.esm.js', (_req, res) => res.type('text/javascript').sendFile(UPLOT.js, { maxAge: '1h' }));
  router.get('/vendor/uPlot.min.css', (_req, res) => res.type('text/css').sendFile(UPLOT.css, { maxAge: '1h' }));

  router.get('/api/summary', (_req, res) => {
    res.json(summary());
  });

  router.get('/api/exposures', (_req, res) => {
    if (rowsJson?.version !== index.version) rowsJson = { version: index.version, text: JSON.stringify({ steps, thresholds: index.currentThresholds(), rows: index.rows() }) };
    res.setHeader('Cache-Control', 'no-store');
    res.type('json').send(rowsJson.text);
  });

  router.get('/api/events', (req, res) => {
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-store', 'x-accel-buffering': 'no' });
    // A browser that lost the stream (sleep, network change) retries after this; the page then refetches the rows it missed.
    res.write('retry: 3000\n\n');
    send(res, 'summary', summary());
    clients.add(res);
    req.on('close', () => clients.delete(res));
  });

  router.post('/api/thresholds', json, (req, res) => {
    const thresholds: Thresholds = parseThresholds(req.body);
    store.setThresholds(thresholds);
    index.setThresholds(thresholds);
    log.info({ thresholds }, 'curation thresholds changed');
    broadcast('verdicts', { thresholds, verdicts: index.verdicts() });
    broadcast('summary', summary());
    res.json({ thresholds, summary: summary() });
  });

  router.post('/api/exposures/:id/mark', json, (req, res) => {
    const id = parseId(req.params.id);
    const manual = parseManual(req.body);
    if (!index.get(id)) throw new AppError(`no exposure ${id}`, { code: 'not_found', status: 404, publicMessage: `No exposure ${id}` });
    store.setMark(id, manual);
    const row = index.setMark(id, manual) as ExposureRow;
    broadcast('exposure', row);
    res.json(row);
  });

  router.get('/files/:id/:name', (req, res) => {
    const id = parseId(req.params.id);
    const name = req.params.name;
    if (!(THUMBNAILS as readonly string[]).includes(name)) throw new AppError(`file ${name} is not served`, { code: 'not_found', status: 404, publicMessage: 'No such file' });
    const movie = ledger.get(id);
    if (!movie) throw new AppError(`no exposure ${id}`, { code: 'not_found', status: 404, publicMessage: `No exposure ${id}` });
    // Resolved with symlinks followed: a link in the output folder pointing elsewhere is refused, not served.
    let file: string;
    try {
      file = confinePath(deps.outputDir(movie), name);
    } catch (err) {
      // No output folder yet: the movie is still queued.
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new AppError(`exposure ${id} has no output yet`, { code: 'not_found', status: 404, publicMessage: 'No such file' });
      throw err;
    }
    res.sendFile(file, { maxAge: 0, headers: { 'Cache-Control': 'no-cache' } }, (err) => {
      if (err && !res.headersSent) res.status(404).json({ error: 'not_found', message: 'No such file' });
    });
  });

  const exportRows = (): ExportRow[] =>
    ledger.all(MAX_ROWS).map((m) => {
      const dir = deps.outputDir(m);
      const files = m.metrics.files ?? {};
      const at = (name: string | undefined): string | null => (name === undefined ? null : path.join(dir, name));
      const judgement = index.judgement(m.id) ?? { verdict: 'pending', reasons: [], manual: null };
      return { id: m.id, movie: m.path, micrograph: at(files.sum), ctfImage: at(files.spectrumData), picks: at(files.picks), state: m.state, acquiredMs: m.mtimeMs, doneMs: m.times.done ?? null, metrics: m.metrics, judgement };
    });
  const attachment = (res: Response, name: string, type: string, body: string, skipped?: number): void => {
    res.setHeader('Content-Disposition', `attachment; filename="${name}"`);
    res.setHeader('Cache-Control', 'no-store');
    if (skipped !== undefined) res.setHeader('X-Cloudlet-Skipped', String(skipped));
    res.type(type).send(body);
  };
  router.get('/export/micrographs.star', (_req, res) => {
    const out = micrographsStar(exportRows(), deps.optics);
    attachment(res, 'micrographs_ctf.star', 'text/plain', out.text, out.skipped.length);
  });
  router.get('/export/coordinates.star', (_req, res) => {
    const out = coordinatesStar(exportRows());
    attachment(res, 'coordinates.star', 'text/plain', out.text, out.skipped.length);
  });
  router.get('/export/metrics.csv', (_req: Request, res) => {
    attachment(res, 'metrics.csv', 'text/csv', metricsCsv(exportRows()));
  });

  return {
    router,
    onMovie(movie) {
      broadcast('exposure', index.upsert(movie));
    },
    close() {
      clearInterval(summaryTimer);
      clearInterval(heartbeatTimer);
      for (const res of clients) res.end();
      clients.clear();
    },
  };
}
