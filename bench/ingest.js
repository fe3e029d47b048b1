// The stream service's detection and orchestration: detection delay (last write -> queued,
// minus the settle time) in event and in polling mode; CPU seconds per polling cycle over trees
// of 10,000 and 100,000 existing files, next to a naive poller that lists and stats everything
// every cycle; and movies per second through no-op steps.
'use strict';
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const ROOT = path.resolve(__dirname, '..');
const stream = require(path.join(ROOT, 'services', 'stream', 'dist', 'index.js'));
const { createLogger } = require(path.join(ROOT, 'services', 'core', 'dist', 'index.js'));
const { writeMovie } = require(path.join(ROOT, 'services', 'stream', 'dist', 'testing', 'tiny-movies.js'));

const log = createLogger({ name: 'bench', level: 'silent' });
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const pct = (s, p) => s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)];
const round = (x, d = 1) => Math.round(x * 10 ** d) / 10 ** d;
const POLL_INTERVAL_MS = 500;
const SETTLE_MS = 1000;

function config(dir, mode, extra = {}) {
  return stream.streamSection.parse({
    roots: [{ path: path.join(dir, 'data'), mode }],
    settle_ms: SETTLE_MS,
    poll_interval_ms: POLL_INTERVAL_MS,
    ledger_file: path.join(dir, 'ledger.sqlite'),
    output_dir: path.join(dir, 'out'),
    listen_port: 0,
    ...extra,
  });
}

async function delays(mode, count) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `cloudlet-bench-ingest-${mode}-`));
  const s = stream.createStream({ config: config(dir, mode), log });
  await s.start();
  for (let i = 0; i < count; i++) {
    writeMovie(path.join(dir, 'data', `m${i}.mrc`), 64, 64, 4);
    await sleep(37); // movies arrive one by one, not in a burst
  }
  while (s.ledger.counts().done < count) await sleep(50);
  const d = s.ledger.all().map((m) => m.times.queued - m.mtimeMs - SETTLE_MS).sort((a, b) => a - b);
  await s.stop();
  fs.rmSync(dir, { recursive: true, force: true });
  return { p50: round(pct(d, 50), 0), p99: round(pct(d, 99), 0) };
}

function makeTree(dir, files) {
  const perDir = 100;
  for (let d = 0; d < files / perDir; d++) {
    const sub = path.join(dir, `grid${Math.floor(d / 50)}`, `square${d}`);
    fs.mkdirSync(sub, { recursive: true });
    for (let f = 0; f < perDir; f++) fs.writeFileSync(path.join(sub, `FoilHole_${f}.mrc`), '');
  }
  // Make every directory look settled to the 2-second rule, as on a share written long ago.
  const old = new Date(Date.now() - 60_000);
  const walk = (p) => {
    for (const e of fs.readdirSync(p, { withFileTypes: true })) if (e.isDirectory()) walk(path.join(p, e.name));
    fs.utimesSync(p, old, old);
  };
  walk(dir);
}

function cpuSeconds(fn, cycles) {
  const before = process.cpuUsage();
  for (let i = 0; i < cycles; i++) fn();
  const used = process.cpuUsage(before);
  return (used.user + used.system) / 1e6 / cycles;
}

/** The naive poller: list every directory and stat every file, every cycle. */
function naiveCycle(root) {
  const stack = [root];
  while (stack.length > 0) {
    const dir = stack.pop();
    for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
      const p = path.join(dir, e.name);
      if (e.isDirectory()) stack.push(p);
      else fs.statSync(p);
    }
  }
}

function pollCost(files) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cloudlet-bench-tree-'));
  makeTree(dir, files);
  const watcher = new stream.Watcher({
    roots: [{ path: dir, mode: 'poll', include: ['**/*.mrc'] }],
    settleMs: SETTLE_MS,
    pollIntervalMs: 3_600_000,
    partialTimeoutMs: 600_000,
    check: async () => ({ complete: false, retry: false, reason: 'bench' }),
    alreadyHandled: () => true, // a restarted service whose ledger knows every file
    onSettled: () => undefined,
    onPassedOver: () => undefined,
    log,
  });
  watcher.start();
  const ours = cpuSeconds(() => watcher.tick(true), 20);
  const naive = cpuSeconds(() => naiveCycle(dir), 5);
  void watcher.stop();
  fs.rmSync(dir, { recursive: true, force: true });
  return { ours, naive };
}

async function noopThroughput(count) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cloudlet-bench-noop-'));
  fs.mkdirSync(path.join(dir, 'data'));
  for (let i = 0; i < count; i++) writeMovie(path.join(dir, 'data', `m${i}.mrc`), 16, 16, 2);
  const s = stream.createStream({ config: config(dir, 'event', { settle_ms: 0, workers: 4 }), log });
  const started = Date.now();
  await s.start();
  while (s.ledger.counts().done < count) await sleep(20);
  const seconds = (Date.now() - started) / 1000;
  await s.stop();
  fs.rmSync(dir, { recursive: true, force: true });
  return count / seconds;
}

async function run() {
  const event = await delays('event', 100);
  console.error(`ingest: event delay p50 ${event.p50} ms, p99 ${event.p99} ms`);
  const poll = await delays('poll', 100);
  console.error(`ingest: poll delay p50 ${poll.p50} ms, p99 ${poll.p99} ms (interval ${POLL_INTERVAL_MS} ms)`);
  const t10 = pollCost(10_000);
  const t100 = pollCost(100_000);
  console.error(`ingest: CPU per poll cycle: 10k ${t10.ours.toFixed(4)} s (naive ${t10.naive.toFixed(4)}), 100k ${t100.ours.toFixed(4)} s (naive ${t100.naive.toFixed(4)})`);
  const noop = await noopThroughput(2000);
  console.error(`ingest: ${noop.toFixed(0)} movies/s through a no-op step`);
  return {
    bench: 'ingest',
    event_delay_p50_ms: event.p50,
    event_delay_p99_ms: event.p99,
    poll_delay_p50_ms: poll.p50,
    poll_delay_p99_ms: poll.p99,
    poll_cpu_s_10k: round(t10.ours, 4),
    poll_cpu_s_100k: round(t100.ours, 4),
    poll_interval_s: POLL_INTERVAL_MS / 1000,
    noop_movies_per_s: round(noop, 0),
    peer: { poll_cpu_s_10k: round(t10.naive, 4), poll_cpu_s_100k: round(t100.naive, 4) },
  };
}

module.exports = { run };
