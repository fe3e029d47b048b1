/**
 * The transfer service in this process against a real OpenSSH sshd on loopback (startSshd),
 * whose login user has a uid unlike ours. Remote files land in that user's home on this
 * machine, so the tests also look at them directly.
 */
import { execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { createLogger } from '@cloudlet/core';
import { type SshServer, startSshd, tempDir, waitFor } from '@cloudlet/core/testing';
import { UserMap, validateUsermap } from '@cloudlet/usermap';
import { createTransfer, type TransferService } from './app';
import { transferSection } from './config';
import type { Job } from './queue';
import type { TransferEvent } from './transfer';

jest.setTimeout(120_000);

const log = createLogger({ name: 'transfer-test', level: 'silent' });
let sshd: SshServer;
let dir: string;
let data: string;
let remoteRoot: string;
let usermap: UserMap;
const services: TransferService[] = [];

function makeUsermap(uid: number): UserMap {
  const result = validateUsermap({
    version: 1,
    uid_range: { min: 5000, max: 6000 },
    people: [
      {
        id: 'alice',
        name: 'Alice',
        account: { username: 'alice', uid: 5001, gid: 5001 },
        clusters: ['hpc', 'hpc-changed'].map((cluster) => ({ cluster, username: sshd.user, uid, gid: uid })),
      },
      { id: 'bob', name: 'Bob', account: { username: 'bob', uid: 5002, gid: 5002 } },
    ],
  });
  if (!result.ok) throw new Error(result.problems.join('\n'));
  return new UserMap(result.doc);
}

beforeAll(async () => {
  sshd = await startSshd();
  dir = tempDir('cloudlet-transfer-it-');
  data = path.join(dir, 'data');
  fs.mkdirSync(data);
  remoteRoot = path.join(sshd.home, `cloudlet-transfer-${crypto.randomBytes(4).toString('hex')}`);
  fs.writeFileSync(path.join(dir, 'known_hosts'), `${sshd.knownHostsLine}\n`);
  // The same server under another name whose pinned key is some other host's.
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', path.join(dir, 'other_host')]);
  const otherKey = fs.readFileSync(path.join(dir, 'other_host.pub'), 'utf8').split(' ').slice(0, 2).join(' ');
  fs.writeFileSync(path.join(dir, 'known_hosts.changed'), `[127.0.0.1]:${sshd.port} ${otherKey}\n`);
  usermap = makeUsermap(sshd.uid);
}, 60_000);

afterEach(async () => {
  for (const s of services.splice(0)) await s.stop();
});

afterAll(async () => {
  await sshd?.stop();
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
  if (remoteRoot) fs.rmSync(remoteRoot, { recursive: true, force: true });
});

async function start(overrides: Record<string, unknown> = {}, ledger = path.join(dir, `ledger-${crypto.randomBytes(4).toString('hex')}.sqlite`)): Promise<{ service: TransferService; url: string; ledger: string }> {
  const cluster = { host: sshd.host, port: sshd.port, key_file: sshd.clientKey, allowed_remote_roots: [remoteRoot] };
  const config = transferSection.parse({
    clusters: [
      { id: 'hpc', known_hosts_file: path.join(dir, 'known_hosts'), ...cluster },
      { id: 'hpc-changed', known_hosts_file: path.join(dir, 'known_hosts.changed'), ...cluster },
    ],
    local_roots: [data],
    ledger_file: ledger,
    parallel: 3,
    retry_backoff_ms: 50,
    listen_port: 0,
    ...overrides,
  });
  const service = createTransfer({ config, log, usermap: () => usermap });
  services.push(service);
  const { url } = await service.start();
  return { service, url, ledger };
}

function makeSource(name: string, files: Record<string, Buffer | string>): string {
  const src = path.join(data, name);
  for (const [rel, content] of Object.entries(files)) {
    fs.mkdirSync(path.dirname(path.join(src, rel)), { recursive: true });
    fs.writeFileSync(path.join(src, rel), content);
  }
  return src;
}

async function post(url: string, body: unknown): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

async function finished(service: TransferService, id: string): Promise<Job> {
  return waitFor(() => {
    const job = service.queue.job(id);
    return job && ['done', 'failed', 'blocked'].includes(job.state) && job;
  }, 60_000, `job ${id} to finish`);
}

const HOSTILE = ['$(touch pwned).mrc', '`touch pwned`', 'a b  c.tif', `it's "quoted"`, 'new\nline', ';touch pwned;', '-rf', 'sub dir/x:y.eer'];

it('sends a folder with hostile names byte-exact, owned by the remote uid, verified; resubmitting is a no-op', async () => {
  const { service, url } = await start();
  const src = makeSource('hostile', Object.fromEntries(HOSTILE.map((n) => [n, crypto.randomBytes(50_000 + n.length)])));
  const dest = `${remoteRoot}/hostile`;
  const events: TransferEvent[] = [];
  service.transferer.on('event', (e: TransferEvent) => events.push(e));

  const submitted = await post(`${url}/api/jobs`, { person: 'alice', cluster: 'hpc', source: src, dest });
  expect(submitted.status).toBe(201);
  const id = (submitted.body.job as { id: string }).id;
  const sse = await fetch(`${url}/api/jobs/${id}/events`);
  expect(sse.headers.get('content-type')).toBe('text/event-stream');
  const job = await finished(service, id);
  expect(job).toMatchObject({ state: 'done', reason: null });

  for (const name of HOSTILE) {
    const remote = path.join(dest, name);
    expect(fs.readFileSync(remote)).toEqual(fs.readFileSync(path.join(src, name)));
    expect(fs.statSync(remote).uid).toBe(sshd.uid);
  }
  for (const where of [sshd.home, dest, src, process.cwd()]) expect(fs.existsSync(path.join(where, 'pwned'))).toBe(false);
  const status = (await (await fetch(`${url}/api/jobs/${id}`)).json()) as { state: string; files: { rel: string; state: string; attempts: number; sha256: string }[] };
  expect(status.state).toBe('done');
  expect(status.files.map((f) => f.rel).sort()).toEqual([...HOSTILE].sort());
  for (const f of status.files) {
    expect(f).toMatchObject({ state: 'verified', attempts: 1 });
    expect(f.sha256).toBe(crypto.createHash('sha256').update(fs.readFileSync(path.join(src, f.rel))).digest('hex'));
  }

  const progress = events.filter((e) => e.type === 'progress');
  expect(progress.at(-1)).toMatchObject({ bytes: progress.at(-1)?.total_bytes, files_verified: HOSTILE.length, files_total: HOSTILE.length });
  expect(progress.some((e) => typeof e.rate_bps === 'number')).toBe(true);
  const reader = sse.body?.getReader();
  const first = new TextDecoder().decode((await reader?.read())?.value as Uint8Array | undefined);
  expect(first).toMatch(/^data: \{"type":"job"/);
  await reader?.cancel();

  const again = await post(`${url}/api/jobs`, { person: 'alice', cluster: 'hpc', source: `${src}/`, dest: `${dest}/` });
  expect(again.status).toBe(200);
  expect(again.body).toMatchObject({ created: false, job: { id, state: 'done' } });
  expect(service.transferer.active).toBeUndefined();
  expect(service.queue.files(id).map((f) => f.attempts)).toEqual(HOSTILE.map(() => 1));
});

it('finds a byte flipped on the remote side by re-verifying, and sends that file again', async () => {
  const { service, url } = await start();
  const src = makeSource('flip', { 'a.mrc': crypto.randomBytes(100_000), 'b.mrc': crypto.randomBytes(100_000) });
  const dest = `${remoteRoot}/flip`;
  const id = ((await post(`${url}/api/jobs`, { person: 'alice', cluster: 'hpc', source: src, dest })).body.job as { id: string }).id;
  expect(await finished(service, id)).toMatchObject({ state: 'done' });

  // Same size, same mtime: only a checksum tells them apart.
  const remote = path.join(dest, 'b.mrc');
  const stat = fs.statSync(remote);
  const fd = fs.openSync(remote, 'r+');
  fs.writeSync(fd, Buffer.from([(fs.readFileSync(remote)[4242] ?? 0) ^ 0x40]), 0, 1, 4242);
  fs.closeSync(fd);
  fs.utimesSync(remote, stat.atime, stat.mtime);

  const verify = await post(`${url}/api/jobs/${id}/verify`, {});
  expect(verify).toEqual({ status: 200, body: { checked: 2, mismatched: ['b.mrc'] } });
  expect(await finished(service, id)).toMatchObject({ state: 'done' });
  expect(fs.readFileSync(remote)).toEqual(fs.readFileSync(path.join(src, 'b.mrc')));
  expect(service.queue.files(id).map((f) => [f.rel, f.state, f.attempts])).toEqual([['a.mrc', 'verified', 1], ['b.mrc', 'verified', 2]]);
  await expect(post(`${url}/api/jobs/${id}/verify`, {})).resolves.toEqual({ status: 200, body: { checked: 2, mismatched: [] } });
});

it('blocks a job whose usermap uid differs from the remote account, saying what to fix', async () => {
  const { service, url } = await start();
  usermap = makeUsermap(sshd.uid + 1);
  try {
    const src = makeSource('wrong-uid', { 'a.mrc': 'a' });
    const id = ((await post(`${url}/api/jobs`, { person: 'alice', cluster: 'hpc', source: src, dest: `${remoteRoot}/wrong-uid` })).body.job as { id: string }).id;
    const job = await finished(service, id);
    expect(job.state).toBe('blocked');
    expect(job.reason).toContain(`gives ${sshd.user} uid ${sshd.uid}`);
    expect(job.reason).toContain(`usermap records ${sshd.user} uid ${sshd.uid + 1}`);
    expect(job.reason).toMatch(/Fix the clusters entry for hpc of person alice in the usermap/);
    expect(service.queue.files(id).map((f) => [f.state, f.attempts])).toEqual([['queued', 0]]);
    expect(fs.existsSync(`${remoteRoot}/wrong-uid`)).toBe(false);

    // Once the usermap is fixed, resubmitting the same job runs it.
    usermap = makeUsermap(sshd.uid);
    const again = await post(`${url}/api/jobs`, { person: 'alice', cluster: 'hpc', source: src, dest: `${remoteRoot}/wrong-uid` });
    expect(again.body).toMatchObject({ created: false, job: { id, state: 'queued' } });
    expect(await finished(service, id)).toMatchObject({ state: 'done' });
  } finally {
    usermap = makeUsermap(sshd.uid);
  }
});

it('blocks a job to a person without an account on the cluster', async () => {
  const { service, url } = await start();
  const src = makeSource('no-account', { 'a.mrc': 'a' });
  const id = ((await post(`${url}/api/jobs`, { person: 'bob', cluster: 'hpc', source: src, dest: `${remoteRoot}/no-account` })).body.job as { id: string }).id;
  const job = await finished(service, id);
  expect(job.state).toBe('blocked');
  expect(job.reason).toMatch(/person bob has no account on cluster hpc in the usermap/);
});

it('refuses a cluster whose host key changed', async () => {
  const { service, url } = await start();
  const src = makeSource('changed-key', { 'a.mrc': 'a' });
  const id = ((await post(`${url}/api/jobs`, { person: 'alice', cluster: 'hpc-changed', source: src, dest: `${remoteRoot}/changed-key` })).body.job as { id: string }).id;
  const job = await finished(service, id);
  expect(job.state).toBe('blocked');
  expect(job.reason).toMatch(/host key does not match .*known_hosts\.changed.*update known_hosts_file for cluster hpc-changed/s);
  expect(fs.existsSync(`${remoteRoot}/changed-key`)).toBe(false);
});

it('refuses paths outside the allowed roots, with "..", relative, and local symlinks pointing out', async () => {
  const { service, url } = await start();
  const src = makeSource('paths', { 'a.mrc': 'a' });
  const outside = path.join(dir, 'outside');
  fs.mkdirSync(outside, { recursive: true });
  fs.writeFileSync(path.join(outside, 'secret'), 'secret');
  const escaping = makeSource('escaping', { 'ok.mrc': 'ok' });
  fs.symlinkSync(path.join(outside, 'secret'), path.join(escaping, 'escape.mrc'));
  const base = { person: 'alice', cluster: 'hpc', source: src, dest: `${remoteRoot}/paths` };
  const cases: [Record<string, unknown>, RegExp][] = [
    [{ dest: `${remoteRoot}/../elsewhere` }, /remote path .* contains "\.\."/],
    [{ dest: '/etc/cloudlet' }, /remote path "\/etc\/cloudlet" is outside the allowed folders on the cluster/],
    [{ dest: 'relative/dir' }, /remote path "relative\/dir" must be absolute/],
    [{ source: outside }, /local path .* is outside the allowed folders/],
    [{ source: `${data}/../outside` }, /local path .* contains "\.\."/],
    [{ source: escaping }, /outside the allowed folders/],
    [{ files: ['../escaping/escape.mrc'] }, /must be relative to the source folder, without "\.\."/],
    [{ cluster: 'nowhere' }, /unknown cluster "nowhere"/],
  ];
  for (const [change, message] of cases) {
    const res = await post(`${url}/api/jobs`, { ...base, ...change });
    expect({ change, status: res.status }).toEqual({ change, status: change.cluster ? 400 : 403 });
    expect(res.body.message).toMatch(message);
  }
  expect(service.queue.jobs()).toEqual([]);
});

it('resumes after a stop mid-job without sending verified files again', async () => {
  const files = Object.fromEntries(['1.mrc', '2.mrc', '3.mrc', '4.mrc'].map((n) => [n, crypto.randomBytes(768 * 1024)]));
  const src = makeSource('restart', files);
  const dest = `${remoteRoot}/restart`;
  const first = await start({ parallel: 1, bandwidth_kibps: 1024 });
  const id = ((await post(`${first.url}/api/jobs`, { person: 'alice', cluster: 'hpc', source: src, dest })).body.job as { id: string }).id;
  await waitFor(() => first.service.queue.files(id, 'verified').length >= 1 && first.service.queue.files(id, 'sending').length === 1, 60_000, 'one file verified and the next in flight');
  await first.service.stop();
  services.splice(services.indexOf(first.service), 1);

  const second = await start({ parallel: 2 }, first.ledger);
  const job = await finished(second.service, id);
  expect(job.state).toBe('done');
  const rows = second.service.queue.files(id);
  expect(rows.every((f) => f.state === 'verified')).toBe(true);
  expect(rows.find((f) => f.rel === '1.mrc')?.attempts).toBe(1);
  for (const [name, content] of Object.entries(files)) expect(fs.readFileSync(path.join(dest, name))).toEqual(content);
  expect(fs.existsSync(path.join(dest, '.rsync-partial'))).toBe(false);
});
