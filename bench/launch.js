// Time to ready for 20 sessions started at once: through the launcher (its API, podman backend,
// rootful, the libpod REST API) against plain `podman run -d` from a shell loop, in the same run,
// on the same podman store, the same image and the same container settings. Readiness is the same
// check on both sides: the container's State.Running through the REST API (the launcher makes it
// before answering; for the peer the bench makes it as soon as each `podman run -d` returns).
// Every container either side made is removed at the end.
'use strict';
const { execFileSync, spawn, spawnSync } = require('node:child_process');
const fs = require('node:fs');
const http = require('node:http');
const os = require('node:os');
const path = require('node:path');

const ROOT = path.resolve(__dirname, '..');
const IMAGE = 'localhost/cloudlet-base:bookworm';
const pct = (sorted, p) => sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
const round = (x, d = 3) => Math.round(x * 10 ** d) / 10 ** d;
const now = () => Number(process.hrtime.bigint()) / 1e9;

function request(socketPath, method, p) {
  return new Promise((resolve, reject) => {
    const req = http.request({ socketPath, method, path: `/v4.0.0/libpod${p}`, agent: false }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode, body: Buffer.concat(chunks).toString() }));
    });
    req.on('error', reject);
    req.end();
  });
}

/** The readiness check both sides share: inspect until State.Running, polled every 50 ms. */
async function running(socketPath, name, deadline) {
  for (;;) {
    const res = await request(socketPath, 'GET', `/containers/${encodeURIComponent(name)}/json`);
    if (res.status === 200 && JSON.parse(res.body).State.Running) return;
    if (now() > deadline) throw new Error(`${name} never running`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function startPodmanService(dir, env) {
  const socket = path.join(dir, 'podman.sock');
  const log = fs.openSync(path.join(dir, 'podman-service.log'), 'w');
  const child = spawn('podman', ['system', 'service', '--time=0', `unix://${socket}`], { env, stdio: ['ignore', log, log], detached: true });
  fs.closeSync(log);
  for (let i = 0; i < 300; i++) {
    const ok = await request(socket, 'GET', '/_ping').then((r) => r.status === 200, () => false);
    if (ok) return { socket, stop: () => process.kill(-child.pid, 'SIGTERM') };
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error('podman system service did not answer');
}

function startLauncher(dir, env, socket, n) {
  const projects = path.join(dir, 'projects');
  fs.mkdirSync(path.join(projects, 'bench'), { recursive: true });
  fs.writeFileSync(path.join(dir, 'usermap.yml'), 'version: 1\nuid_range: { min: 0, max: 4000000 }\npeople:\n  - id: bench\n    name: Bench\n    account: { username: bench, uid: 0, gid: 0 }\n');
  fs.writeFileSync(path.join(dir, 'instruments.yml'), 'version: 1\ninstruments: []\n');
  const config = {
    site: { state_dir: dir, log_level: 'warn' },
    usermap: { file: path.join(dir, 'usermap.yml'), index_file: path.join(dir, 'idx.tsv') },
    instruments: { file: path.join(dir, 'instruments.yml') },
    launcher: {
      backend: 'podman',
      instance: 'bench',
      podman: { mode: 'rootful', socket, relabel: 'none', stop_timeout_s: 0 },
      apps: [{ id: 'bench', image: IMAGE, command: ['sleep', 'infinity'], readiness: { type: 'running' }, network: 'none', ready_timeout_ms: 120000 }],
      projects_root: projects,
      max_sessions_per_user: n,
      max_sessions_total: n,
      database_file: path.join(dir, 'launcher.sqlite'),
      state_dir: path.join(dir, 'launcher'),
      token_file: path.join(dir, 'token'),
      listen_port: 0,
    },
  };
  fs.writeFileSync(path.join(dir, 'cloudlet.yml'), JSON.stringify(config));
  const child = spawn(process.execPath, [path.join(ROOT, 'services', 'launcher', 'dist', 'main.js'), '--config', path.join(dir, 'cloudlet.yml'), 'serve'], {
    stdio: ['ignore', 'pipe', 'inherit'],
    env: { ...env, CLOUDLET_SITE__LOG_LEVEL: 'info' },
  });
  return new Promise((resolve, reject) => {
    let text = '';
    child.stdout.on('data', (d) => {
      text += d;
      const m = /"msg":"launcher ready"/.test(text) && /"url":"(http:[^"]+)"/.exec(text);
      if (m) {
        child.stdout.removeAllListeners('data');
        child.stdout.resume();
        resolve({ url: m[1], token: fs.readFileSync(path.join(dir, 'token'), 'utf8').trim(), stop: () => new Promise((r) => { child.once('exit', r); child.kill('SIGTERM'); }) });
      }
    });
    child.once('exit', (code) => reject(new Error(`launcher exited ${code}: ${text.slice(-2000)}`)));
  });
}

async function launcherSide(launcher, n) {
  const auth = { authorization: `Bearer ${launcher.token}`, 'content-type': 'application/json' };
  const t0 = now();
  const times = await Promise.all(
    Array.from({ length: n }, async (_, i) => {
      const res = await fetch(`${launcher.url}/api/sessions`, { method: 'POST', headers: auth, body: JSON.stringify({ user: 'bench', app: 'bench', session: `l${i}` }) });
      if (res.status !== 201) throw new Error(`launcher start ${i}: ${res.status} ${await res.text()}`);
      return now() - t0;
    }),
  );
  await Promise.all(Array.from({ length: n }, (_, i) => fetch(`${launcher.url}/api/sessions/l${i}`, { method: 'DELETE', headers: auth })));
  return times.sort((a, b) => a - b);
}

/** The same container the launcher creates (user, network, mount, capabilities, labels), by the CLI. */
async function plainSide(dir, env, socket, n, prefix) {
  const project = path.join(dir, 'projects', 'bench');
  const script = `for i in $(seq 0 ${n - 1}); do
  ( podman run -d --name ${prefix}$i --user 0:0 --network none --cap-drop ALL --security-opt no-new-privileges \\
      --label cloudlet.bench=${prefix} --workdir /project -e HOME=/project -v ${project}:/project:rw \\
      ${IMAGE} sleep infinity >/dev/null && echo ${prefix}$i ) &
done
wait`;
  const t0 = now();
  const child = spawn('sh', ['-c', script], { env, stdio: ['ignore', 'pipe', 'inherit'] });
  const checks = [];
  let buffered = '';
  child.stdout.on('data', (d) => {
    buffered += d;
    let nl;
    while ((nl = buffered.indexOf('\n')) !== -1) {
      const name = buffered.slice(0, nl).trim();
      buffered = buffered.slice(nl + 1);
      checks.push(running(socket, name, now() + 120).then(() => now() - t0));
    }
  });
  await new Promise((r) => child.once('exit', r));
  const times = await Promise.all(checks);
  if (times.length !== n) throw new Error(`only ${times.length} of ${n} plain podman runs succeeded`);
  return times.sort((a, b) => a - b);
}

function removeAll(env, prefix) {
  const ids = [`label=cloudlet.bench=${prefix}`, 'label=cloudlet.launcher=bench'].flatMap((filter) =>
    spawnSync('podman', ['ps', '-aq', '--filter', filter], { env, encoding: 'utf8' }).stdout.split('\n').filter(Boolean),
  );
  if (ids.length > 0) spawnSync('podman', ['rm', '-f', '-t', '0', ...new Set(ids)], { env, stdio: 'ignore' });
}

async function run(args = []) {
  const n = Number(args[0] ?? 20);
  if (process.getuid() !== 0) throw new Error('bench launch needs root (rootful podman)');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cloudlet-bench-launch-'));
  fs.writeFileSync(path.join(dir, 'containers.conf'), '[containers]\ndefault_ulimits = []\n\n[engine]\ncgroup_manager = "cgroupfs"\nruntime = "runc"\n');
  const env = { ...process.env, CONTAINERS_CONF: path.join(dir, 'containers.conf') };
  const prefix = `bench-plain-${process.pid}-`;
  execFileSync(path.join(ROOT, 'scripts', 'build-images'), ['--only', 'base'], { env, stdio: ['ignore', 'ignore', 'inherit'] });
  const service = await startPodmanService(dir, env);
  let launcher;
  try {
    launcher = await startLauncher(dir, env, service.socket, n);
    // One container each way first, so neither side pays for a cold cache alone.
    spawnSync('podman', ['run', '--rm', '--network', 'none', IMAGE, 'true'], { env, stdio: 'ignore' });
    const ours = await launcherSide(launcher, n);
    removeAll(env, prefix);
    const peer = await plainSide(dir, env, service.socket, n, prefix);
    const result = {
      bench: 'launch',
      sessions: n,
      ready_p50_s: round(pct(ours, 50)),
      ready_p95_s: round(pct(ours, 95)),
      peer: { ready_p50_s: round(pct(peer, 50)), ready_p95_s: round(pct(peer, 95)) },
      ratio: round(pct(ours, 95) / pct(peer, 95), 2),
    };
    return result;
  } finally {
    if (launcher) await launcher.stop();
    removeAll(env, prefix);
    service.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

module.exports = { run };
