// scripts/build-images on real podman: builds the base from Debian packages and the session
// image on it, skips both when nothing changed, and the session image runs the stream service's
// code with its native modules as an unprivileged user. Needs root, podman and debootstrap
// (scripts/bootstrap installs them) and Debian's mirror (reachable here and in CI).
'use strict';
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

jest.setTimeout(600_000);

const repo = path.resolve(__dirname, '../..');
const script = path.join(repo, 'scripts/build-images');
// Podman on this kind of host needs these settings (DESIGN.md section 8); CONTAINERS_CONF points
// podman at them without touching the machine's /etc/containers.
const conf = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'images-conf-')), 'containers.conf');
fs.writeFileSync(conf, '[containers]\ndefault_ulimits = []\n[engine]\ncgroup_manager = "cgroupfs"\nruntime = "runc"\n');
const env = { ...process.env, CONTAINERS_CONF: conf };

function build(...args) {
  const r = spawnSync(script, args, { cwd: repo, env, encoding: 'utf8', maxBuffer: 64 << 20 });
  return { status: r.status, out: `${r.stdout}${r.stderr}` };
}

function podman(...args) {
  return spawnSync('podman', args, { env, encoding: 'utf8' });
}

test('builds the base and the session image, then skips both when nothing changed', () => {
  const first = build();
  expect({ status: first.status, tail: first.out.slice(-2000) }).toEqual({ status: 0, tail: expect.any(String) });
  for (const image of ['localhost/cloudlet-base:bookworm', 'localhost/cloudlet-session:latest']) {
    const key = podman('image', 'inspect', '--format', '{{ index .Labels "cloudlet.build-key" }}', image);
    expect(key.status).toBe(0);
    expect(key.stdout.trim()).toMatch(/^[0-9a-f]{16}$/);
  }

  const started = Date.now();
  const again = build();
  expect(again.status).toBe(0);
  expect(again.out).toMatch(/\[base\] cloudlet-base:bookworm is up to date/);
  expect(again.out).toMatch(/\[session\] cloudlet-session:latest is up to date/);
  expect(Date.now() - started).toBeLessThan(60_000); // nothing rebuilt: seconds, not minutes
});

test('the session image runs the stream service with its native modules, as nobody, with no network', () => {
  const probe = "const db = require('/opt/cloudlet/node_modules/better-sqlite3')(':memory:'); console.log(JSON.stringify({ uid: process.getuid(), node: process.version, sqlite: db.prepare('select sqlite_version() v').get().v }))";
  const r = podman('run', '--rm', '--network=none', 'localhost/cloudlet-session:latest', 'node', '-e', probe);
  expect(r.stderr).toBe('');
  const seen = JSON.parse(r.stdout.trim());
  expect(seen).toEqual({ uid: 65534, node: process.version, sqlite: expect.stringMatching(/^3\./) });

  const help = podman('run', '--rm', '--network=none', 'localhost/cloudlet-session:latest');
  expect(help.stdout).toMatch(/usage: cloudlet-stream/);
  // Our own tests and sources are not shipped, only the compiled code.
  const tests = podman('run', '--rm', '--network=none', 'localhost/cloudlet-session:latest', 'find', '/opt/cloudlet/node_modules/@cloudlet', '-name', '*.test.js', '-o', '-name', '*.ts', '!', '-name', '*.d.ts');
  expect(tests.stdout.trim()).toBe('');
});

test('bad arguments are refused with a clear message and change nothing', () => {
  const r = build('--only', 'everything');
  expect(r.status).toBe(2);
  expect(r.out).toMatch(/--only takes base or session/);
  const u = build('--frobnicate');
  expect(u.status).toBe(2);
  expect(u.out).toMatch(/unknown argument '--frobnicate'/);
});
