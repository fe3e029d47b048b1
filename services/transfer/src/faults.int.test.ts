/**
 * Transfers under faults, against real sshds: a link cut for real in the middle of a big file
 * (sshd in a network namespace behind a veth pair), a remote copy corrupted between copy and
 * check, a remote filesystem that fills up (a 20 MiB tmpfs), and a remote account that does
 * not exist. Namespaces and mounts are removed in finally blocks, whatever the outcome.
 */
import { execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { createLogger } from '@cloudlet/core';
import { type SshServer, startSshd, tempDir, waitFor } from '@cloudlet/core/testing';
import { UserMap, validateUsermap } from '@cloudlet/usermap';
import { transferSection } from './config';
import { type FileRow, type Job, Queue } from './queue';
import { startNetnsSshd } from './testing/netns-sshd';
import { Transferer, type TransferEvent } from './transfer';

jest.setTimeout(180_000);

const log = createLogger({ name: 'transfer-faults', level: 'silent' });
const MiB = 1024 * 1024;
let dir: string;
let data: string;
let sshd: SshServer;
const cleanups: (() => Promise<void> | void)[] = [];

beforeAll(async () => {
  dir = tempDir('cloudlet-transfer-faults-');
  data = path.join(dir, 'data');
  fs.mkdirSync(data);
  sshd = await startSshd();
});

afterEach(async () => {
  for (const fn of cleanups.splice(0).reverse()) await fn();
});

afterAll(async () => {
  await sshd?.stop();
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

interface Remote {
  host: string;
  port: number;
  knownHostsLine: string;
  user: string;
  uid: number;
  clientKey: string;
}

function usermap(remote: Remote, username = remote.user, uid = remote.uid): UserMap {
  const result = validateUsermap({
    version: 1,
    uid_range: { min: 5000, max: 6000 },
    people: [{ id: 'alice', name: 'Alice', account: { username: 'alice', uid: 5001, gid: 5001 }, clusters: [{ cluster: 'hpc', username, uid, gid: uid }] }],
  });
  if (!result.ok) throw new Error(result.problems.join('\n'));
  return new UserMap(result.doc);
}

/** A Transferer on its own queue (no HTTP: these tests drive it directly), stopped after the test. */
function runner(remote: Remote, remoteRoot: string, overrides: Record<string, unknown> = {}, extra: { afterSend?: (files: readonly FileRow[]) => void; map?: UserMap } = {}): { t: Transferer; queue: Queue; events: TransferEvent[] } {
  const knownHosts = path.join(dir, `known_hosts-${crypto.randomBytes(3).toString('hex')}`);
  fs.writeFileSync(knownHosts, `${remote.knownHostsLine}\n`);
  const config = transferSection.parse({
    clusters: [{ id: 'hpc', host: remote.host, port: remote.port, known_hosts_file: knownHosts, key_file: remote.clientKey, allowed_remote_roots: [remoteRoot] }],
    local_roots: [data],
    ledger_file: path.join(dir, `ledger-${crypto.randomBytes(4).toString('hex')}.sqlite`),
    parallel: 2,
    retry_backoff_ms: 100,
    ...overrides,
  });
  const queue = new Queue(config.ledger_file);
  const map = extra.map ?? usermap(remote);
  const t = new Transferer({ config, queue, usermap: () => map, log, ...(extra.afterSend ? { afterSend: extra.afterSend } : {}) });
  const events: TransferEvent[] = [];
  t.on('event', (e: TransferEvent) => events.push(e));
  t.start();
  cleanups.push(async () => {
    await t.stop();
    queue.close();
  });
  return { t, queue, events };
}

function makeSource(name: string, files: Record<string, Buffer>): string {
  const src = path.join(data, name);
  for (const [rel, content] of Object.entries(files)) {
    fs.mkdirSync(path.dirname(path.join(src, rel)), { recursive: true });
    fs.writeFileSync(path.join(src, rel), content);
  }
  return src;
}

function remoteDir(home: string, name: string, uid: number): string {
  const where = path.join(home, `cloudlet-faults-${name}-${crypto.randomBytes(3).toString('hex')}`);
  fs.mkdirSync(where);
  fs.chownSync(where, uid, uid);
  cleanups.push(() => fs.rmSync(where, { recursive: true, force: true }));
  return where;
}

async function finished(queue: Queue, id: string, timeoutMs = 120_000): Promise<Job> {
  return waitFor(() => {
    const job = queue.job(id);
    return job && ['done', 'failed', 'blocked'].includes(job.state) && job;
  }, timeoutMs, `job ${id} to finish`);
}

const sha256 = (b: Buffer): string => crypto.createHash('sha256').update(b).digest('hex');

it('resumes a big file after the link is cut mid-file, sending less than the file again, and verifies it', async () => {
  const remote = await startNetnsSshd();
  cleanups.push(() => remote.stop());
  const root = remoteDir(remote.home, 'cut', remote.uid);
  const big = crypto.randomBytes(48 * MiB);
  const src = makeSource('cut', { 'big.mrc': big });
  // 8 MiB/s so the cut lands mid-file; a 3 s idle timeout so the cut is noticed quickly.
  const { t, queue, events } = runner(remote, root, { parallel: 1, bandwidth_kibps: 8192, io_timeout_s: 3, retries: 8, retry_backoff_ms: 8000 });
  const { job } = t.submit({ person: 'alice', cluster: 'hpc', source: src, dest: `${root}/run` });

  const atCut = await waitFor(() => {
    const p = events.filter((e) => e.type === 'progress').at(-1);
    return p && (p.bytes as number) >= 20 * MiB && (p.bytes as number);
  }, 60_000, '20 MiB of the file sent');
  await remote.cut();
  try {
    // Down past the idle timeout, so the send really fails.
    await waitFor(() => queue.file(job.id, 'big.mrc')?.reason?.startsWith('send failed') && true, 30_000, 'the send to fail on the cut link');
  } finally {
    await remote.restore();
  }
  // The remote rsync keeps what it got only once its connection ends, which with the link back
  // is at the next retransmission (answered by a reset); the 8 s backoff leaves it that time.
  // A retry before then would find nothing to resume from: still verified, but sent whole.
  await waitFor(() => fs.existsSync(`${root}/run/.rsync-partial/big.mrc`), 30_000, 'the remote side to keep the partial file');
  expect(queue.file(job.id, 'big.mrc')?.state).toBe('queued');
  const end = await finished(queue, job.id);
  expect(end).toMatchObject({ state: 'done', reason: null });

  const row = queue.file(job.id, 'big.mrc');
  expect(row).toMatchObject({ state: 'verified', sha256: sha256(big) });
  expect(row?.attempts).toBeGreaterThanOrEqual(2);
  expect(fs.readFileSync(`${root}/run/big.mrc`).equals(big)).toBe(true);
  // The run that finished reused what the cut one left: less than the file went over the wire again.
  const batches = events.filter((e) => e.type === 'batch');
  expect(batches).toHaveLength(1);
  // (The sender counts bytes that were still in socket buffers when the link went, hence the slack.)
  expect(atCut).toBeLessThan(big.length);
  expect(batches[0]?.literal_bytes as number).toBeLessThan(big.length - 4 * MiB);
  expect(batches[0]?.matched_bytes as number).toBeGreaterThan(4 * MiB);
  expect(fs.existsSync(`${root}/run/.rsync-partial`)).toBe(false);
});

it('finds a byte flipped on the remote copy between copy and check, sends that file again, then verifies it', async () => {
  const root = remoteDir(sshd.home, 'flip', sshd.uid);
  const files = { 'a.mrc': crypto.randomBytes(300_000), 'b.mrc': crypto.randomBytes(300_000), 'c.mrc': crypto.randomBytes(300_000) };
  const src = makeSource('flip', files);
  let flipped = 0;
  const afterSend = (sent: readonly FileRow[]): void => {
    const b = sent.find((f) => f.rel === 'b.mrc');
    if (!b || flipped > 0) return;
    // Same size and mtime: only a checksum tells the copies apart.
    const stat = fs.statSync(b.remote);
    const fd = fs.openSync(b.remote, 'r+');
    const byte = Buffer.alloc(1);
    fs.readSync(fd, byte, 0, 1, 1234);
    fs.writeSync(fd, Buffer.from([(byte[0] ?? 0) ^ 0x01]), 0, 1, 1234);
    fs.closeSync(fd);
    fs.utimesSync(b.remote, stat.atime, stat.mtime);
    flipped += 1;
  };
  const { t, queue } = runner(sshd, root, {}, { afterSend });
  const { job } = t.submit({ person: 'alice', cluster: 'hpc', source: src, dest: `${root}/run` });
  expect(await finished(queue, job.id)).toMatchObject({ state: 'done' });
  expect(flipped).toBe(1);
  expect(queue.files(job.id).map((f) => [f.rel, f.state, f.attempts])).toEqual([['a.mrc', 'verified', 1], ['b.mrc', 'verified', 2], ['c.mrc', 'verified', 1]]);
  for (const [rel, content] of Object.entries(files)) expect(fs.readFileSync(`${root}/run/${rel}`).equals(content)).toBe(true);
});

it('stops with "remote disk full" when the remote filesystem fills, marks only whole copies verified, and after space is freed sends only the rest', async () => {
  const root = remoteDir(sshd.home, 'full', sshd.uid);
  const mount = path.join(root, 'small');
  fs.mkdirSync(mount);
  execFileSync('mount', ['-t', 'tmpfs', '-o', `size=20m,uid=${sshd.uid},gid=${sshd.uid},mode=755`, 'cloudlet-test', mount]);
  cleanups.push(() => {
    execFileSync('umount', ['-l', mount]);
  });
  const files = Object.fromEntries(['f1', 'f2', 'f3', 'f4', 'f5', 'f6'].map((n) => [`${n}.mrc`, crypto.randomBytes(6 * MiB)]));
  const src = makeSource('full', files);
  const { t, queue } = runner(sshd, root, { parallel: 1 });
  const req = { person: 'alice', cluster: 'hpc', source: src, dest: `${mount}/run` };
  const { job } = t.submit(req);

  const end = await finished(queue, job.id);
  expect(end.state).toBe('failed');
  expect(end.reason).toMatch(/remote disk full under 127\.0\.0\.1:.*small\/run.*file\(s\) not sent\. Free space on the cluster and resubmit/);
  const verified = queue.files(job.id, 'verified');
  expect(verified.length).toBeGreaterThanOrEqual(1);
  expect(verified.length).toBeLessThan(6);
  // Nothing is marked verified that is not whole and right on the remote side.
  for (const f of verified) expect(sha256(fs.readFileSync(f.remote))).toBe(sha256(files[f.rel] as Buffer));
  expect(queue.files(job.id).filter((f) => f.state !== 'verified').every((f) => f.state === 'failed' && /remote disk full/.test(f.reason ?? ''))).toBe(true);
  const inodes = new Map(verified.map((f) => [f.rel, fs.statSync(f.remote).ino]));

  execFileSync('mount', ['-o', 'remount,size=64m', mount]);
  const again = t.submit(req);
  expect(again).toMatchObject({ created: false, job: { id: job.id, state: 'queued' } });
  expect(await finished(queue, job.id)).toMatchObject({ state: 'done', reason: null });
  for (const [rel, content] of Object.entries(files)) expect(fs.readFileSync(`${mount}/run/${rel}`).equals(content)).toBe(true);
  // Verified files were neither sent nor rewritten again.
  for (const f of verified) {
    expect(queue.file(job.id, f.rel)?.attempts).toBe(1);
    expect(fs.statSync(f.remote).ino).toBe(inodes.get(f.rel));
  }
});

it('blocks a job whose remote account does not exist, saying so', async () => {
  const root = remoteDir(sshd.home, 'nobody', sshd.uid);
  const src = makeSource('nobody', { 'a.mrc': Buffer.from('a') });
  const { t, queue } = runner(sshd, root, {}, { map: usermap(sshd, 'cloudlet-nobody', 3999) });
  const { job } = t.submit({ person: 'alice', cluster: 'hpc', source: src, dest: `${root}/run` });
  const end = await finished(queue, job.id);
  expect(end.state).toBe('blocked');
  expect(end.reason).toMatch(/cannot log in to cluster hpc as cloudlet-nobody: the account does not exist there or does not accept the service's key/);
  expect(queue.files(job.id).map((f) => [f.state, f.attempts])).toEqual([['queued', 0]]);
});

it('holds a job to its bandwidth cap with several runs in flight', async () => {
  const root = remoteDir(sshd.home, 'cap', sshd.uid);
  const src = makeSource('cap', Object.fromEntries(['a', 'b', 'c', 'd'].map((n) => [`${n}.mrc`, crypto.randomBytes(2 * MiB)])));
  // 1 MiB/s for the job, split over its four rsyncs: 8 MiB takes about 8 s, not the 2 s that a
  // cap per rsync would allow.
  const { t, queue } = runner(sshd, root, { parallel: 4, bandwidth_kibps: 1024 });
  const started = Date.now();
  const { job } = t.submit({ person: 'alice', cluster: 'hpc', source: src, dest: `${root}/run` });
  expect(await finished(queue, job.id)).toMatchObject({ state: 'done' });
  expect(Date.now() - started).toBeGreaterThan(6000);
  expect(queue.files(job.id).map((f) => f.attempts)).toEqual([1, 1, 1, 1]);
});
