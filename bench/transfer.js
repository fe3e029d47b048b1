// The transfer service against plain OpenSSH tools, same run, same data, same sshd: 8 x 512 MiB
// files and 20,000 x 64 KiB files sent over loopback to a real sshd (started here, with its own
// host key), through the service (which verifies every file by sha256 on both ends) and through
// `rsync -a -e ssh`, `scp -r` and ssh2's SFTP fastPut (none of which verify). Every tool gets
// the same ssh options and OpenSSH's default cipher. With a 50 ms round trip added by a
// userspace proxy (netem is missing here), a smaller set is timed again for the service and
// plain rsync (the proxy buffers without limit, so this adds latency, not a window limit).
//
//   npm run bench -- transfer [--quick]     (--quick: 2 x 64 MiB and 2,000 files, for a smoke run)
'use strict';
const { spawn } = require('node:child_process');
const { randomBytes, randomFillSync } = require('node:crypto');
const fs = require('node:fs');
const net = require('node:net');
const path = require('node:path');

const ROOT = path.resolve(__dirname, '..');
const core = require(path.join(ROOT, 'services', 'core', 'dist', 'index.js'));
const { freePort, startProcess, startSshd, tempDir, waitFor } = require(path.join(ROOT, 'services', 'core', 'dist', 'testing.js'));
const transfer = require(path.join(ROOT, 'services', 'transfer', 'dist', 'index.js'));
const { UserMap, validateUsermap } = require(path.join(ROOT, 'services', 'usermap', 'dist', 'index.js'));
const { Client } = require(require.resolve('ssh2', { paths: [path.join(ROOT, 'services', 'transfer')] }));
const { startDelayProxy } = require('./lib/delay-proxy');

const MiB = 1024 * 1024;
const round = (x, d = 2) => Math.round(x * 10 ** d) / 10 ** d;
const say = (msg) => process.stderr.write(`transfer: ${msg}\n`);

/** Random content (not compressible, not repeated across files), written once and reused by later runs. */
function makeSet(dir, count, size, perDir) {
  const stamp = `${dir}.complete`; // beside the set, not in it: the service sends whole folders
  if (fs.existsSync(stamp) && fs.readFileSync(stamp, 'utf8') === `${count}x${size}`) return;
  fs.rmSync(dir, { recursive: true, force: true });
  const chunk = Buffer.alloc(Math.min(size, 4 * MiB));
  for (let i = 0; i < count; i++) {
    const sub = perDir ? path.join(dir, `d${String(Math.floor(i / perDir)).padStart(3, '0')}`) : dir;
    fs.mkdirSync(sub, { recursive: true });
    const fd = fs.openSync(path.join(sub, `f${String(i).padStart(5, '0')}.bin`), 'w');
    for (let left = size; left > 0; left -= chunk.length) fs.writeSync(fd, randomFillSync(chunk), 0, Math.min(left, chunk.length));
    fs.closeSync(fd);
  }
  fs.writeFileSync(stamp, `${count}x${size}`);
}

function listFiles(dir) {
  const out = [];
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) out.push(...listFiles(p));
    else if (e.isFile()) out.push(p);
  }
  return out;
}

function run(cmd, args) {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    child.stderr.on('data', (d) => (err += d));
    child.once('error', reject);
    child.once('close', (code) => (code === 0 ? resolve() : reject(new Error(`${cmd} exited ${code}: ${err.trim().slice(-500)}`))));
  });
}

async function timed(fn) {
  const t0 = process.hrtime.bigint();
  await fn();
  return Number(process.hrtime.bigint() - t0) / 1e9;
}

/** The service in this process, one job per set; resolves when the job is done with every file verified. */
async function viaService(ctx, port, src, dest, count) {
  const config = transfer.transferSection.parse({
    clusters: [{ id: 'bench', host: '127.0.0.1', port, known_hosts_file: ctx.knownHosts(port), key_file: ctx.sshd.clientKey, allowed_remote_roots: [ctx.remoteRoot] }],
    local_roots: [ctx.data],
    ledger_file: path.join(ctx.work, `ledger-${randomBytes(4).toString('hex')}.sqlite`),
    listen_port: 0,
  });
  const service = transfer.createTransfer({ config, log: ctx.log, usermap: () => ctx.usermap });
  await service.start();
  try {
    let last = 0;
    const done = new Promise((resolve) => {
      service.transferer.on('event', (e) => {
        if (e.type === 'progress' && Date.now() - last > 2000) {
          last = Date.now();
          say(`  service ${e.files_verified}/${e.files_total} verified, ${round(e.bytes / MiB, 0)} MiB, ${round(e.rate_bps / MiB, 0)} MiB/s, eta ${e.eta_s ?? '?'} s`);
        }
        if (e.type === 'job' && ['done', 'failed', 'blocked'].includes(e.state)) resolve(e);
      });
    });
    const seconds = await timed(async () => {
      service.transferer.submit({ person: 'bench', cluster: 'bench', source: src, dest });
      const end = await done;
      if (end.state !== 'done') throw new Error(`service job ended ${end.state}: ${end.reason}`);
    });
    const job = service.queue.jobs()[0];
    const counts = service.queue.counts(job.id);
    if (counts.verified !== count) throw new Error(`service verified ${counts.verified} of ${count} files`);
    return seconds;
  } finally {
    await service.stop();
  }
}

function viaRsync(ctx, port, src, dest) {
  return timed(() => run('rsync', ['-a', '-e', core.rsyncShell(ctx.target(port)), '--', `${src}/`, `127.0.0.1:${dest}/`]));
}

function viaScp(ctx, port, src, dest) {
  // sshArgs minus its port and user flags, which scp spells differently.
  const ssh = core.sshArgs(ctx.target(port)).slice(0, -4);
  // -O: the classic scp protocol; scp's SFTP mode is what the sftp peer measures.
  return timed(() => run('scp', ['-O', '-r', '-q', ...ssh, '-P', String(port), '--', src, `${ctx.sshd.user}@127.0.0.1:${dest}`]));
}

/** ssh2 SFTP, one session, fastPut with 8 files in flight (each with its own read-ahead). */
async function viaSftp(ctx, port, src, dest) {
  const conn = new Client();
  const expected = Buffer.from(ctx.sshd.hostKeyPublic.split(' ')[1], 'base64');
  await new Promise((resolve, reject) => {
    conn.once('ready', resolve).once('error', reject);
    conn.connect({ host: '127.0.0.1', port, username: ctx.sshd.user, privateKey: fs.readFileSync(ctx.sshd.clientKey), hostVerifier: (key) => Buffer.compare(key, expected) === 0 });
  });
  try {
    const sftp = await new Promise((resolve, reject) => conn.sftp((err, s) => (err ? reject(err) : resolve(s))));
    const call = (fn, ...args) => new Promise((resolve, reject) => fn.call(sftp, ...args, (err) => (err ? reject(err) : resolve())));
    return await timed(async () => {
      const files = listFiles(src);
      const dirs = [...new Set(files.map((f) => path.dirname(path.relative(src, f))))].sort();
      await call(sftp.mkdir, dest);
      for (const d of dirs) if (d !== '.') await call(sftp.mkdir, path.posix.join(dest, d));
      let next = 0;
      const worker = async () => {
        while (next < files.length) {
          const f = files[next++];
          await call(sftp.fastPut, f, path.posix.join(dest, path.relative(src, f)), {});
        }
      };
      await Promise.all(Array.from({ length: 8 }, worker));
    });
  } finally {
    conn.end();
  }
}

/**
 * core's startSshd makes the remote user, the keys and a config, but offers no SFTP subsystem;
 * a second sshd on that config plus `Subsystem sftp internal-sftp` serves every tool here alike.
 */
async function withSftp(sshd, work) {
  const port = await freePort();
  const config = path.join(work, 'sshd_config');
  const base = fs.readFileSync(path.join(path.dirname(sshd.hostKeyFile), 'sshd_config'), 'utf8');
  fs.writeFileSync(config, `${base.replace(/^Port \d+$/m, `Port ${port}`).replace(/^PidFile .*$/m, `PidFile ${path.join(work, 'sshd.pid')}`)}Subsystem sftp internal-sftp\n`);
  const daemon = startProcess('/usr/sbin/sshd', ['-D', '-e', '-f', config]);
  const accepts = () => new Promise((resolve) => net.connect(port, '127.0.0.1').once('connect', function () { this.destroy(); resolve(true); }).once('error', () => resolve(false)));
  await waitFor(accepts, 20_000, `sshd with sftp on ${port}`);
  return { port, stop: () => daemon.stop() };
}

async function setup() {
  const sshd = await startSshd();
  const work = tempDir('cloudlet-bench-transfer-');
  const server = await withSftp(sshd, work);
  const remoteRoot = path.join(sshd.home, `bench-transfer-${randomBytes(4).toString('hex')}`);
  // scp and plain rsync make only the last component of a destination.
  fs.mkdirSync(remoteRoot);
  fs.chownSync(remoteRoot, sshd.uid, sshd.uid);
  const doc = validateUsermap({
    version: 1,
    uid_range: { min: 5000, max: 6000 },
    people: [{ id: 'bench', name: 'Bench', account: { username: 'bench', uid: 5001, gid: 5001 }, clusters: [{ cluster: 'bench', username: sshd.user, uid: sshd.uid, gid: sshd.uid }] }],
  });
  if (!doc.ok) throw new Error(doc.problems.join('\n'));
  const ctx = {
    sshd,
    server,
    work,
    remoteRoot,
    data: path.join(ROOT, 'var', 'bench', 'transfer'),
    usermap: new UserMap(doc.doc),
    log: core.createLogger({ name: 'bench', level: 'silent' }),
    knownHosts(port) {
      const file = path.join(work, `known_hosts-${port}`);
      fs.writeFileSync(file, `[127.0.0.1]:${port} ${sshd.hostKeyPublic}\n`);
      return file;
    },
    target: (port) => ({ host: '127.0.0.1', port, user: sshd.user, keyFile: sshd.clientKey, knownHostsFile: ctx.knownHosts(port) }),
  };
  return ctx;
}

/** Times each tool on one set; the remote copy is removed after each so every tool starts from nothing. */
async function measure(ctx, port, set, tools) {
  const out = {};
  for (const [name, fn] of Object.entries(tools)) {
    const dest = path.join(ctx.remoteRoot, `${name}-${set.name}`);
    fs.rmSync(dest, { recursive: true, force: true });
    say(`${name}: ${set.name} (${set.count} x ${set.size / 1024} KiB)...`);
    const seconds = await fn(ctx, port, set.dir, dest, set.count);
    fs.rmSync(dest, { recursive: true, force: true });
    out[name] = set.name === 'large' ? (set.count * set.size) / MiB / seconds : set.count / seconds;
    say(`${name}: ${set.name} in ${round(seconds)} s: ${round(out[name], 1)} ${set.name === 'large' ? 'MiB/s' : 'files/s'}`);
  }
  return out;
}

async function main(args) {
  const quick = args.includes('--quick');
  const ctx = await setup();
  const sets = [
    { name: 'large', count: quick ? 2 : 8, size: quick ? 64 * MiB : 512 * MiB, perDir: 0 },
    { name: 'small', count: quick ? 2000 : 20_000, size: 64 * 1024, perDir: 200 },
  ].map((s) => ({ ...s, dir: path.join(ctx.data, `${s.name}-${s.count}`) }));
  try {
    for (const s of sets) {
      say(`generating ${s.count} x ${s.size / 1024} KiB in ${s.dir} (kept for later runs)`);
      makeSet(s.dir, s.count, s.size, s.perDir);
    }
    const tools = { service: viaService, rsync: viaRsync, scp: viaScp, sftp: viaSftp };
    const large = await measure(ctx, ctx.server.port, sets[0], tools);
    const small = await measure(ctx, ctx.server.port, sets[1], tools);

    // 50 ms more round trip on a smaller set: what per-login and per-check round trips cost.
    const proxy = await startDelayProxy(ctx.server.port, 25);
    let delay;
    try {
      const delayed = [
        { name: 'large', count: 1, size: 256 * MiB, dir: path.join(ctx.data, 'large-1') },
        { name: 'small', count: 2000, size: 64 * 1024, dir: path.join(ctx.data, 'small-2000') },
      ];
      for (const s of delayed) makeSet(s.dir, s.count, s.size, s.name === 'small' ? 200 : 0);
      const dl = await measure(ctx, proxy.port, delayed[0], { service: viaService, rsync: viaRsync });
      const ds = await measure(ctx, proxy.port, delayed[1], { service: viaService, rsync: viaRsync });
      delay = {
        rtt_added_ms: 50,
        large_mib_s: round(dl.service, 1),
        small_files_per_s: round(ds.service, 0),
        peer: { rsync: { large_mib_s: round(dl.rsync, 1), small_files_per_s: round(ds.rsync, 0) } },
        sets: '1 x 256 MiB, 2,000 x 64 KiB',
      };
    } finally {
      await proxy.stop();
    }
    const peer = (name) => ({ large_mib_s: round(large[name], 1), small_files_per_s: round(small[name], 0) });
    return {
      bench: 'transfer',
      large_mib_s: round(large.service, 1),
      small_files_per_s: round(small.service, 0),
      peer: { rsync: peer('rsync'), scp: peer('scp'), sftp: peer('sftp') },
      ratio_large: round(large.service / large.rsync, 2),
      ratio_small: round(small.service / small.rsync, 2),
      delay_50ms: delay,
    };
  } finally {
    fs.rmSync(ctx.remoteRoot, { recursive: true, force: true });
    fs.rmSync(ctx.work, { recursive: true, force: true });
    await ctx.server.stop();
    await ctx.sshd.stop();
  }
}

module.exports = { run: main };
