/**
 * ssh.ts against a real OpenSSH sshd on loopback (startSshd) logging in a remote user whose uid
 * is not ours. Remote files land in that user's home on this machine, so the tests also look at
 * them directly.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { remoteId, rsyncFiles, sshExec, type SshTarget, verifyRemote } from './ssh';
import { type SshServer, startSshd, tempDir, waitFor } from './testing';

jest.setTimeout(120_000);

let sshd: SshServer;
let dir: string;
let target: SshTarget;
let remoteRoot: string;

beforeAll(async () => {
  sshd = await startSshd();
  dir = tempDir('cloudlet-ssh-test-');
  target = { host: sshd.host, port: sshd.port, user: sshd.user, keyFile: sshd.clientKey, knownHostsFile: knownHosts('trusted', sshd.knownHostsLine) };
  remoteRoot = `cloudlet-ssh-test-${crypto.randomBytes(4).toString('hex')}`;
}, 60_000);

afterAll(async () => {
  await sshd?.stop();
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
  if (sshd && remoteRoot) fs.rmSync(path.join(sshd.home, remoteRoot), { recursive: true, force: true });
});

function knownHosts(name: string, content: string): string {
  const file = path.join(dir, `known_hosts.${name}`);
  fs.writeFileSync(file, content ? `${content}\n` : '');
  return file;
}

function onRemote(remote: string): string {
  return path.join(sshd.home, remote);
}

function writeRandom(file: string, bytes: number): void {
  const fd = fs.openSync(file, 'w');
  for (let left = bytes; left > 0; left -= 1 << 20) fs.writeSync(fd, crypto.randomBytes(Math.min(left, 1 << 20)));
  fs.closeSync(fd);
}

it('runs commands as the remote user, whose uid is not ours', async () => {
  const id = await remoteId(target);
  expect(id).toEqual(expect.objectContaining({ uid: sshd.uid, user: sshd.user }));
  expect(id.uid).not.toBe(process.getuid?.());
  const { code, stdout } = await sshExec(target, ['sh', '-c', 'exit 7; echo no']);
  expect({ code, stdout }).toEqual({ code: 7, stdout: '' });
});

it('gives up on a remote command that outlives its timeout', async () => {
  const started = Date.now();
  await expect(sshExec(target, ['sleep', '5'], { timeoutMs: 300 })).rejects.toMatchObject({ code: 'ssh_timeout' });
  expect(Date.now() - started).toBeLessThan(4_000);
});

describe('host key pinning', () => {
  let other: SshServer;
  beforeAll(async () => {
    other = await startSshd();
  }, 60_000);
  afterAll(async () => {
    await other?.stop();
  });

  it('refuses a host whose key changed', async () => {
    // known_hosts says [127.0.0.1]:<other port> has the first server's key: the key "changed".
    const pinned = { ...target, port: other.port, knownHostsFile: knownHosts('changed', `[127.0.0.1]:${other.port} ${sshd.hostKeyPublic}`) };
    const refused = sshExec(pinned, ['touch', 'changed-key-ran']);
    await expect(refused).rejects.toMatchObject({ code: 'ssh_host_key' });
    await expect(refused).rejects.toThrow(/host key does not match/);
    const file = path.join(dir, 'refused.bin');
    writeRandom(file, 1024);
    await expect(rsyncFiles(pinned, [{ local: file, remote: `${remoteRoot}/refused.bin` }])).rejects.toMatchObject({ code: 'ssh_host_key' });
    expect(fs.existsSync(onRemote('changed-key-ran'))).toBe(false);
    expect(fs.existsSync(onRemote(`${remoteRoot}/refused.bin`))).toBe(false);
  });

  it('refuses a host whose key is unknown', async () => {
    const unknown = { ...target, knownHostsFile: knownHosts('empty', '') };
    await expect(sshExec(unknown, ['true'])).rejects.toMatchObject({ code: 'ssh_host_key' });
    // Nothing was learned: strict checking never writes the key it was offered.
    expect(fs.readFileSync(unknown.knownHostsFile, 'utf8')).toBe('');
  });

  it('still accepts the right key on the same server', async () => {
    const right = { ...target, port: other.port, knownHostsFile: knownHosts('other', other.knownHostsLine), keyFile: other.clientKey };
    await expect(remoteId(right)).resolves.toMatchObject({ uid: other.uid });
  });
});

it('copies hostile file names byte-exact and runs nothing on either side', async () => {
  const names = ['$(touch pwned)', '`touch pwned`', 'a b  c', `it's "quoted"`, 'new\nline', ';touch pwned;', '-rf', 'back\\slash', 'x:y'];
  const local = path.join(dir, 'hostile');
  fs.mkdirSync(local);
  const files = names.map((name) => {
    fs.writeFileSync(path.join(local, name), `content of ${name}\n${crypto.randomBytes(64).toString('hex')}`);
    return { local: path.join(local, name), remote: `${remoteRoot}/hostile/${name}` };
  });
  await rsyncFiles(target, files);
  for (const f of files) {
    expect(fs.readFileSync(onRemote(f.remote))).toEqual(fs.readFileSync(f.local));
    expect(fs.statSync(onRemote(f.remote)).uid).toBe(sshd.uid);
  }
  await expect(verifyRemote(target, files)).resolves.toEqual({ ok: true, mismatches: [] });
  const { stdout } = await sshExec(target, ['cat', '--', `${remoteRoot}/hostile/$(touch pwned)`]);
  expect(stdout).toBe(fs.readFileSync(path.join(local, '$(touch pwned)'), 'utf8'));
  for (const where of [sshd.home, onRemote(remoteRoot), onRemote(`${remoteRoot}/hostile`), local, process.cwd()]) {
    expect(fs.existsSync(path.join(where, 'pwned'))).toBe(false);
  }
  expect(fs.readdirSync(onRemote(`${remoteRoot}/hostile`)).sort()).toEqual([...names].sort());
});

it('copies a large file, resumes one cut mid-way, and verifies both', async () => {
  const size = 64 * 1024 * 1024;
  const first = { local: path.join(dir, 'first.bin'), remote: `${remoteRoot}/large/first.bin` };
  const second = { local: path.join(dir, 'second.bin'), remote: `${remoteRoot}/large/second.bin` };
  writeRandom(first.local, size);
  writeRandom(second.local, size);
  const copied = await rsyncFiles(target, [first]);
  expect(copied.files).toBe(1);

  // Throttled so the cut lands mid-file; the abort kills rsync, and with it the connection.
  const abort = new AbortController();
  let seen = 0;
  const cut = rsyncFiles(target, [second], {
    bandwidthKiBps: 8 * 1024,
    signal: abort.signal,
    onProgress: (bytes) => {
      seen = bytes;
      if (bytes >= 8 * 1024 * 1024) abort.abort();
    },
  });
  await expect(cut).rejects.toMatchObject({ code: 'ssh_aborted' });
  expect(seen).toBeLessThan(size);
  const partial = onRemote(`${remoteRoot}/large/.rsync-partial/second.bin`);
  // The remote rsync notices the cut on its own schedule and then files the partial away.
  const kept = await waitFor(() => fs.existsSync(partial) && fs.statSync(partial).size, 30_000, 'the partial file');
  expect(kept).toBeGreaterThan(0);
  expect(kept).toBeLessThan(size);
  expect(fs.existsSync(onRemote(second.remote))).toBe(false);

  const resumed = await rsyncFiles(target, [first, second]);
  expect(fs.existsSync(partial)).toBe(false);
  // The first file was already there, and the partial was reused rather than sent again (all
  // but its last, incomplete block: rsync matches whole blocks).
  expect(resumed.matchedBytes).toBeGreaterThanOrEqual(kept - 64 * 1024);
  expect(resumed.literalBytes).toBeLessThanOrEqual(size - kept + 1024 * 1024);
  await expect(verifyRemote(target, [first, second])).resolves.toEqual({ ok: true, mismatches: [] });
});

it('detects a byte flipped on the remote copy, and a missing one', async () => {
  const file = { local: path.join(dir, 'flip.bin'), remote: `${remoteRoot}/flip/flip.bin` };
  const missing = { local: file.local, remote: `${remoteRoot}/flip/never-sent.bin` };
  writeRandom(file.local, 100_000);
  await rsyncFiles(target, [file]);
  await expect(verifyRemote(target, [file])).resolves.toMatchObject({ ok: true });

  const fd = fs.openSync(onRemote(file.remote), 'r+');
  const byte = Buffer.alloc(1);
  fs.readSync(fd, byte, 0, 1, 54_321);
  fs.writeSync(fd, Buffer.from([(byte[0] ?? 0) ^ 0x01]), 0, 1, 54_321);
  fs.closeSync(fd);

  const result = await verifyRemote(target, [file, missing]);
  expect(result.ok).toBe(false);
  expect(result.mismatches.map((m) => m.remote)).toEqual([file.remote, missing.remote]);
  expect(result.mismatches[0]?.remoteSha256).toMatch(/^[0-9a-f]{64}$/);
  expect(result.mismatches[0]?.remoteSha256).not.toBe(result.mismatches[0]?.localSha256);
  expect(result.mismatches[1]?.remoteSha256).toBeUndefined();

  // Same size and mtime: only a checksum comparison sees the difference and repairs it.
  await rsyncFiles(target, [file], { checksum: true });
  await expect(verifyRemote(target, [file])).resolves.toMatchObject({ ok: true });
});
