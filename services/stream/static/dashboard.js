// The live dashboard: loads every exposure once, then follows the event stream. Nothing here
// reloads the page; after a lost stream (a laptop asleep, a proxy restart) it reconnects and
// refetches the rows, so what it shows is never older than the last reconnect.
import { bytes, num } from './format.js';
import { Plots } from './plots.js';
import { Strip } from './strip.js';
import { VirtualTable } from './table.js';

const STRIP_SIZE = 12;
/** The server pushes the headline every few seconds; this much silence means the stream is dead even if the socket is not. */
const STALE_MS = 20_000;

const state = {
  byId: new Map(),
  steps: [],
  thresholds: {},
  dirty: { strip: false, bulk: false },
};

const $ = (sel) => document.querySelector(sel);
const strip = new Strip($('#strip'), mark, STRIP_SIZE);
const plots = new Plots($('#plots'), () => state.thresholds);
const table = new VirtualTable($('#table'), mark, (shown, total) => {
  $('#table-count').textContent = shown === total ? `${total} exposures` : `${shown} of ${total} exposures`;
});

async function getJson(url, init) {
  const res = await fetch(url, { cache: 'no-store', credentials: 'same-origin', ...init });
  const body = await res.json().catch(() => ({}));
  if (!res.ok) throw Object.assign(new Error(body.message || `${res.status} ${res.statusText}`), { status: res.status });
  return body;
}

// Rows are loaded each time the stream (re)opens. Events that arrive while the load is in
// flight may be newer than the snapshot, so they are held and replayed on top of it, in order.
let loading = null;
let held = [];

function loadRows() {
  if (loading) return loading;
  held = [];
  loading = getJson('api/exposures')
    .then((data) => {
      state.steps = data.steps;
      state.thresholds = data.thresholds;
      state.byId = new Map(data.rows.map((r) => [r.id, r]));
      fillThresholdForm(data.thresholds);
      for (const apply of held) apply();
      schedule(true);
    })
    .finally(() => {
      loading = null;
      held = [];
    });
  return loading;
}

function whenLoaded(apply) {
  if (loading) held.push(apply);
  else apply();
}

// Redraws are batched: a burst of events (a restart re-announcing many movies) costs one
// render of the strip per frame and one sort of the table and plots per half second.
let frame = 0;
let bulkTimer = 0;
let lastBulk = 0;
function schedule(bulk) {
  state.dirty.strip = true;
  if (bulk) state.dirty.bulk = true;
  if (!frame) frame = requestAnimationFrame(render);
}

function render() {
  frame = 0;
  const rows = Array.from(state.byId.values());
  if (state.dirty.strip) {
    state.dirty.strip = false;
    const newest = rows.slice(-STRIP_SIZE * 3).sort((a, b) => b.acquired - a.acquired || b.id - a.id).slice(0, STRIP_SIZE);
    strip.render(newest, state.steps);
  }
  if (!state.dirty.bulk) return;
  const wait = lastBulk + 500 - performance.now();
  if (wait > 0) {
    if (!bulkTimer) bulkTimer = setTimeout(() => ((bulkTimer = 0), render()), wait);
    return;
  }
  state.dirty.bulk = false;
  lastBulk = performance.now();
  table.setRows(rows, state.steps);
  plots.update(rows.slice().sort((a, b) => a.acquired - b.acquired || a.id - b.id));
  document.body.dataset.ready = 'true';
}

function upsert(row) {
  state.byId.set(row.id, row);
  schedule(true);
}

async function mark(id, manual) {
  try {
    upsert(await getJson(`api/exposures/${id}/mark`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ manual }) }));
  } catch (err) {
    showStatus(`Could not mark exposure ${id}: ${err.message}`, true);
  }
}

// ---- headline and alarms

function setTile(key, text, detail = '') {
  const tile = document.querySelector(`.tile[data-key="${key}"]`);
  if (!tile) return;
  const v = tile.querySelector('.n');
  const d = tile.querySelector('.d');
  if (v.textContent !== text) v.textContent = text;
  if (d && d.textContent !== detail) d.textContent = detail;
}

const pct = (a, b) => (b > 0 ? `${Math.round((100 * a) / b)}%` : '–');

function showSummary(s) {
  const h = s.host;
  setTile('found', String(s.found));
  setTile('done', String(s.done));
  setTile('accepted', String(s.accepted), pct(s.accepted, s.done));
  setTile('rejected', String(s.rejected), pct(s.rejected, s.done));
  setTile('failed', String(s.failed));
  setTile('acquiredPerHour', String(s.acquiredPerHour), `done ${s.processedPerHour}/h`);
  setTile('lagNowS', s.lagNowS === null ? '–' : `${num(s.lagNowS, 1)} s`);
  setTile('lagP95S', s.lagP95S === null ? '–' : `${num(s.lagP95S, 1)} s`);
  setTile('reduction', s.reduction === null ? '–' : `${num(s.reduction, 0)}×`);
  setTile('queue', String(s.queued), `${s.running} running`);
  setTile('cpu', num(h.load1, 1), `${h.cores} cores`);
  setTile('memory', pct(h.memUsedBytes, h.memTotalBytes), `of ${bytes(h.memTotalBytes)}`);
  setTile('disk', h.disk ? bytes(h.disk.freeBytes) : '–', h.disk ? pct(h.disk.freeBytes, h.disk.totalBytes) : '');
  const disk = document.querySelector('.tile[data-key="disk"]');
  if (disk) disk.classList.toggle('bad', !!h.disk && h.disk.freeBytes / h.disk.totalBytes < 0.1);
  showAlarms(s.alarms);
}

function showAlarms(alarms) {
  const list = $('#alarms');
  const items = alarms.map((a) => {
    const li = document.createElement('li');
    li.className = a.active ? 'on' : 'off';
    const dot = document.createElement('span');
    dot.className = 'dot';
    const name = document.createElement('span');
    name.textContent = a.name;
    li.append(dot, name);
    if (a.active && a.message) {
      const msg = document.createElement('span');
      msg.className = 'msg';
      msg.textContent = `${a.message}${a.since ? ` · since ${new Date(a.since).toLocaleTimeString()}` : ''}`;
      li.append(msg);
    }
    return li;
  });
  if (items.length === 0) {
    const li = document.createElement('li');
    li.className = 'muted';
    li.textContent = 'No alarm rules set for this session.';
    items.push(li);
  }
  list.replaceChildren(...items);
}

// ---- thresholds

const form = $('#thresholds');

function fillThresholdForm(t) {
  for (const input of form.querySelectorAll('input[name]')) {
    if (document.activeElement === input) continue; // never overwrite what a person is typing
    const [key, side] = input.name.split('.');
    const v = t[key]?.[side];
    input.value = v === undefined ? '' : String(v);
    input.classList.remove('invalid');
  }
}

function showStatus(text, error = false) {
  const status = $('#thresholds-status');
  status.textContent = text;
  status.classList.toggle('error', error);
}

form.addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const body = {};
  for (const input of form.querySelectorAll('input[name]')) {
    input.classList.remove('invalid');
    const [key, side] = input.name.split('.');
    if (input.value.trim() === '') continue;
    (body[key] ??= {})[side] = input.value.trim();
  }
  try {
    const out = await getJson('api/thresholds', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
    state.thresholds = out.thresholds;
    showStatus('Applied.');
    showSummary(out.summary);
    // The stream brings every verdict; without it, fetch them.
    if (!stream.open) await loadRows();
    plots.redraw();
  } catch (err) {
    showStatus(err.message, true);
    // The server names the field ("ctfFitResolution_A.max: ..."): point at it.
    for (const input of form.querySelectorAll('input[name]')) {
      const [key] = input.name.split('.');
      if (err.message.includes(`${input.name}:`) || err.message.includes(`${key}:`)) input.classList.add('invalid');
    }
  }
});

// ---- the event stream

const stream = { source: null, open: false, lastEvent: 0, everOpened: false };

function setLive(s) {
  const live = $('#live');
  live.dataset.state = s;
  live.textContent = s === 'open' ? 'live' : s;
}

function connect() {
  stream.source?.close();
  const source = new EventSource('api/events');
  stream.source = source;
  stream.lastEvent = Date.now();
  source.addEventListener('open', () => {
    stream.open = true;
    setLive('open');
    // Anything that changed while we were away is in the rows, not in events we missed.
    stream.everOpened = true;
    loadRows().catch((err) => showStatus(`Could not load exposures: ${err.message}`, true));
  });
  source.addEventListener('error', () => {
    stream.open = false;
    setLive('reconnecting');
    // A stream that never opened (a proxy that buffers, a refused cookie) still gets the rows once.
    if (!stream.everOpened && state.byId.size === 0 && !loading) loadRows().catch((err) => showStatus(`Could not load exposures: ${err.message}`, true));
  });
  const on = (name, fn) =>
    source.addEventListener(name, (ev) => {
      stream.lastEvent = Date.now();
      fn(JSON.parse(ev.data));
    });
  on('summary', (s) => {
    showSummary(s);
    if (JSON.stringify(s.thresholds) !== JSON.stringify(state.thresholds)) {
      state.thresholds = s.thresholds;
      fillThresholdForm(s.thresholds);
    }
  });
  on('exposure', (row) => whenLoaded(() => upsert(row)));
  on('verdicts', (v) => whenLoaded(() => applyVerdicts(v)));
}

function applyVerdicts(v) {
  state.thresholds = v.thresholds;
  fillThresholdForm(v.thresholds);
  for (const [id, verdict, reasons] of v.verdicts) {
    const row = state.byId.get(id);
    if (row) {
      row.verdict = verdict;
      row.reasons = reasons;
    }
  }
  schedule(true);
}

function checkStale() {
  if (Date.now() - stream.lastEvent > STALE_MS) {
    setLive('reconnecting');
    connect();
  }
}
setInterval(checkStale, 5000);
document.addEventListener('visibilitychange', () => {
  if (document.visibilityState === 'visible') checkStale();
});
window.addEventListener('online', () => connect());

// ---- table filters

const filterText = $('#filter-text');
const filterVerdict = $('#filter-verdict');
let filterTimer = 0;
const applyFilter = () => table.setFilter({ text: filterText.value, verdict: filterVerdict.value });
filterText.addEventListener('input', () => {
  clearTimeout(filterTimer);
  filterTimer = setTimeout(applyFilter, 120);
});
filterVerdict.addEventListener('change', applyFilter);

connect();
