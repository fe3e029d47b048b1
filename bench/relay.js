// Cloudlet's relay and Debian's websockify side by side on loopback, against the same RFB-like
// source (lib/rfb-source.js): server-to-client throughput, added latency for 16-byte messages,
// 1 MiB uploads, memory per idle connection (PSS, whole process tree), and peak memory behind
// one browser that stopped reading.
'use strict';
const { spawn } = require('node:child_process');
const fs = require('node:fs');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');
const { startSource, modePassword } = require('./lib/rfb-source.js');
const { connect, ORIGIN } = require('./lib/ws-client.js');
const { treePssKib } = require('./lib/proc.js');

const ROOT = path.resolve(__dirname, '..');
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const pct = (sorted, p) => sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
const round = (x, d = 1) => Math.round(x * 10 ** d) / 10 ** d;

async function freePort() {
  return new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

async function waitForPort(port) {
  for (let i = 0; i < 200; i++) {
    const ok = await new Promise((resolve) => {
      const s = net.connect(port, '127.0.0.1', () => { s.destroy(); resolve(true); });
      s.on('error', () => resolve(false));
    });
    if (ok) return;
    await sleep(50);
  }
  throw new Error(`port ${port} never opened`);
}

/** Our relay as its own process, with one instrument per source mode. */
async function startRelay(sourcePort) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cloudlet-bench-relay-'));
  const modes = ['idle', 'flood', 'echo', 'sink'];
  const instruments = modes.map((m) => {
    const pw = path.join(dir, `${m}.pw`);
    fs.writeFileSync(pw, modePassword(m), { mode: 0o600 });
    return `  - { id: src-${m}, name: ${m}, vnc: { host: 127.0.0.1, port: ${sourcePort}, password_file: ${pw} } }`;
  });
  fs.writeFileSync(path.join(dir, 'instruments.yml'), `version: 1\ninstruments:\n${instruments.join('\n')}\n`);
  const uid = process.getuid();
  fs.writeFileSync(path.join(dir, 'usermap.yml'), `version: 1\nuid_range: { min: 0, max: 4000000 }\npeople:\n  - id: bench\n    name: Bench\n    account: { username: bench, uid: ${uid}, gid: ${uid} }\n    instruments: { ${modes.map((m) => `src-${m}: operator`).join(', ')} }\n`);
  fs.writeFileSync(path.join(dir, 'cloudlet.yml'), [
    `site: { state_dir: ${dir}, log_level: warn }`,
    `usermap: { file: ${dir}/usermap.yml, index_file: ${dir}/idx.tsv }`,
    `instruments: { file: ${dir}/instruments.yml }`,
    `relay: { api_port: 0, api_token_file: ${dir}/token, challenge_dir: ${dir}/ch, audit_file: ${dir}/audit.jsonl, allowed_origins: ['${ORIGIN}'], max_connections_per_instrument: 1000, idle_timeout_s: 3600 }`,
  ].join('\n'));
  const child = spawn(process.execPath, [...(process.env.BENCH_NODE_FLAGS ? process.env.BENCH_NODE_FLAGS.split(' ') : []), '--expose-gc', '-r', path.join(__dirname, 'lib', 'gc-on-signal.js'), path.join(ROOT, 'services', 'instrument-relay', 'dist', 'main.js'), '--config', path.join(dir, 'cloudlet.yml'), 'serve'], { stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, CLOUDLET_SITE__LOG_LEVEL: 'info' } });
  const apiUrl = await new Promise((resolve, reject) => {
    let text = '';
    child.stdout.on('data', (d) => {
      text += d;
      const m = /"api_url":"([^"]+)"/.exec(text);
      if (m) resolve(m[1]);
    });
    child.once('exit', (code) => reject(new Error(`relay exited ${code}`)));
  });
  child.stdout.resume();
  const token = fs.readFileSync(path.join(dir, 'token'), 'utf8').trim();
  const urls = {};
  const passwords = {};
  for (const m of modes) {
    const res = await fetch(`${apiUrl}/api/sessions`, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: JSON.stringify({ username: 'bench', instrument: `src-${m}`, mode: 'control' }) });
    const s = await res.json();
    urls[m] = `ws://127.0.0.1:${s.port}/websockify`;
    passwords[m] = s.password;
  }
  return { pid: child.pid, collect: () => child.kill('SIGUSR2'), url: (m) => urls[m], password: (m) => passwords[m], stop: () => { child.kill('SIGKILL'); fs.rmSync(dir, { recursive: true, force: true }); } };
}

async function startWebsockify(sourcePort) {
  const port = await freePort();
  const child = spawn('websockify', [`127.0.0.1:${port}`, `127.0.0.1:${sourcePort}`], { stdio: 'ignore' });
  await waitForPort(port);
  return { pid: child.pid, url: () => `ws://127.0.0.1:${port}/websockify`, password: (m) => modePassword(m), stop: () => child.kill('SIGKILL') };
}

async function throughput(side, mib) {
  const { ws } = await connect(side.url('flood'), side.password('flood'));
  const target = mib * 1024 * 1024;
  let got = 0;
  const started = process.hrtime.bigint();
  await new Promise((resolve) => ws.on('message', (d) => { got += d.length; if (got >= target) resolve(); }));
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  ws.terminate();
  return got / 1024 / 1024 / seconds;
}

function echoMessage() {
  const b = Buffer.alloc(16);
  b.writeUInt8(3, 0); b.writeUInt8(1, 1); b.writeUInt16BE(64, 6); b.writeUInt16BE(64, 8); // FramebufferUpdateRequest
  b.writeUInt8(5, 10); b.writeUInt16BE(10, 12); b.writeUInt16BE(10, 14); // PointerEvent
  return b;
}

async function roundTrips(send, onData, n) {
  const times = [];
  for (let i = 0; i < n; i++) {
    const started = process.hrtime.bigint();
    await new Promise((resolve) => {
      let got = 0;
      const handler = (d) => { got += d.length; if (got >= 16) { onData.off(handler); resolve(); } };
      onData.on(handler);
      send(echoMessage());
    });
    times.push(Number(process.hrtime.bigint() - started) / 1000);
  }
  return times.sort((a, b) => a - b);
}

async function latency(side, n) {
  const { ws } = await connect(side.url('echo'), side.password('echo'));
  const listeners = new Set();
  ws.on('message', (d) => { for (const l of [...listeners]) l(d); });
  const channel = { on: (h) => listeners.add(h), off: (h) => listeners.delete(h) };
  // Steady state is what a session lives in: the first round trips (JIT warm-up) are not counted.
  await roundTrips((b) => ws.send(b), channel, 500);
  const times = await roundTrips((b) => ws.send(b), channel, n);
  ws.terminate();
  return times;
}

/** The same echo over a plain TCP connection to the source: what the relays add is measured against this. */
async function directLatency(sourcePort, n) {
  const { vncAuthResponse } = require(path.join(ROOT, 'services', 'core', 'dist', 'rfb-auth.js'));
  const socket = net.connect(sourcePort, '127.0.0.1');
  socket.setNoDelay(true);
  const listeners = new Set();
  let stage = 0;
  let buf = Buffer.alloc(0);
  await new Promise((resolve) => {
    socket.on('data', (d) => {
      if (stage === 5) { for (const l of [...listeners]) l(d); return; }
      buf = Buffer.concat([buf, d]);
      if (stage === 0 && buf.length >= 12) { buf = buf.subarray(12); socket.write('RFB 003.008\n'); stage = 1; }
      if (stage === 1 && buf.length >= 2) { buf = buf.subarray(2); socket.write(Buffer.from([2])); stage = 2; }
      if (stage === 2 && buf.length >= 16) { socket.write(vncAuthResponse(buf.subarray(0, 16), modePassword('echo'))); buf = buf.subarray(16); stage = 3; }
      if (stage === 3 && buf.length >= 4) { buf = buf.subarray(4); socket.write(Buffer.from([1])); stage = 4; }
      if (stage === 4 && buf.length >= 30) { stage = 5; resolve(); }
    });
  });
  const times = await roundTrips((b) => socket.write(b), { on: (h) => listeners.add(h), off: (h) => listeners.delete(h) }, n);
  socket.destroy();
  return times;
}

async function upload(side, source, rounds) {
  const { ws } = await connect(side.url('sink'), side.password('sink'));
  const text = 65528;
  const message = Buffer.alloc(8 + text, 0x41);
  message.writeUInt8(6, 0);
  message.writeUInt32BE(text, 4);
  const rates = [];
  for (let r = 0; r < rounds; r++) {
    const start = source.stats.received;
    const target = start + 16 * message.length;
    const started = process.hrtime.bigint();
    const done = new Promise((resolve) => { source.stats.onReceived = (n) => { if (n >= target) resolve(); }; });
    for (let i = 0; i < 16; i++) ws.send(message);
    await done;
    rates.push(1 / (Number(process.hrtime.bigint() - started) / 1e9));
  }
  source.stats.onReceived = null;
  ws.terminate();
  rates.sort((a, b) => a - b);
  return pct(rates, 50);
}

async function idlePss(side, count) {
  // One connection first so per-process set-up (code, pools) is not charged to the 200;
  // a full GC (the relay only) before each reading so both count live objects.
  const first = (await connect(side.url('idle'), side.password('idle'))).ws;
  const settle = async () => {
    if (side.collect) side.collect();
    await sleep(1000);
    return treePssKib(side.pid);
  };
  const before = await settle();
  const conns = [];
  for (let i = 0; i < count; i++) conns.push((await connect(side.url('idle'), side.password('idle'))).ws);
  const after = await settle();
  for (const ws of [first, ...conns]) ws.terminate();
  await sleep(500);
  return (after - before) / count;
}

/** Growth of the relay's memory (PSS, process tree) while one browser has stopped reading for 10 s. */
async function stalledPeak(side, seconds) {
  const before = treePssKib(side.pid);
  const { ws } = await connect(side.url('flood'), side.password('flood'));
  ws._socket.pause();
  let peak = before;
  const until = Date.now() + seconds * 1000;
  while (Date.now() < until) {
    peak = Math.max(peak, treePssKib(side.pid));
    await sleep(100);
  }
  ws.terminate();
  await sleep(1000);
  return (peak - before) / 1024;
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

async function step(name, what, fn) {
  const started = Date.now();
  const value = await fn();
  console.error(`  ${name}: ${what} ${typeof value === 'number' ? round(value) : ''} (${((Date.now() - started) / 1000).toFixed(1)} s)`);
  return value;
}

/**
 * Added latency: five rounds per side, interleaved, before any bulk traffic (a flood's
 * aftermath would land in whichever side came next); percentiles over all round trips pooled,
 * each side against the direct TCP baseline measured next to it.
 */
async function measureLatency(sides, source, rounds = 5) {
  const through = sides.map(() => []);
  const direct = sides.map(() => []);
  for (let r = 0; r < rounds; r++) {
    for (let i = 0; i < sides.length; i++) {
      direct[i].push(...(await directLatency(source.port, 2000)));
      through[i].push(...(await latency(sides[i], 2000)));
    }
  }
  return sides.map((_, i) => {
    const t = through[i].sort((a, b) => a - b);
    const d = direct[i].sort((a, b) => a - b);
    return { p50: Math.max(0, pct(t, 50) - pct(d, 50)), p99: Math.max(0, pct(t, 99) - pct(d, 99)) };
  });
}

/** Throughput and uploads three times each, interleaved with the peer by the caller; medians. */
async function measureSpeed(name, side, source) {
  return {
    throughput: await step(name, 'MiB/s', () => throughput(side, 1024)),
    upload: await step(name, 'upload MiB/s', () => upload(side, source, 20)),
  };
}

async function measureMemory(name, side) {
  return {
    idle_pss_kib_per_conn: round(await step(name, 'KiB per idle connection', () => idlePss(side, 200))),
    stalled_peak_mib: round(await step(name, 'MiB grown behind a stalled reader (10 s)', () => stalledPeak(side, 10))),
  };
}

function summarize(runs, lat) {
  return {
    throughput_mib_s: round(median(runs.map((r) => r.throughput))),
    latency_p50_us: round(lat.p50, 0),
    latency_p99_us: round(lat.p99, 0),
    upload_mib_s: round(median(runs.map((r) => r.upload))),
  };
}

async function run() {
  process.env.BENCH_FLOOD_LIMIT = String(2 * 1024 * 1024 * 1024);
  const source = await startSource();
  const ours = await startRelay(source.port);
  const peerSide = await startWebsockify(source.port);
  try {
    const [ourLatency, peerLatency] = await measureLatency([ours, peerSide], source);
    console.error(`  latency added p50/p99 us: relay ${round(ourLatency.p50, 0)}/${round(ourLatency.p99, 0)}, websockify ${round(peerLatency.p50, 0)}/${round(peerLatency.p99, 0)}`);
    const ourRuns = [];
    const peerRuns = [];
    for (let i = 0; i < 3; i++) {
      ourRuns.push(await measureSpeed('relay', ours, source));
      peerRuns.push(await measureSpeed('websockify', peerSide, source));
    }
    const relay = { ...summarize(ourRuns, ourLatency), ...(await measureMemory('relay', ours)) };
    const peer = { ...summarize(peerRuns, peerLatency), ...(await measureMemory('websockify', peerSide)) };
    console.error(`relay: ${JSON.stringify(relay)}\nwebsockify: ${JSON.stringify(peer)}`);
    return { bench: 'relay', ...relay, peer };
  } finally {
    ours.stop();
    peerSide.stop();
    source.close();
  }
}

module.exports = { run, startRelay, startWebsockify, throughput, latency, directLatency };
