// Shared by the deployment tests: run a command to completion, and an inventory for localhost.
'use strict';
const { spawn } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const ANSIBLE_DIR = path.resolve(__dirname, '..');
const REPO = path.resolve(ANSIBLE_DIR, '..');

/** Runs argv (opts.input goes to its stdin); resolves {code, stdout, stderr} whatever the exit code. */
function run(argv, opts = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(argv[0], argv.slice(1), {
      cwd: opts.cwd ?? ANSIBLE_DIR,
      env: { ...process.env, ANSIBLE_NOCOLOR: '1', ANSIBLE_FORCE_COLOR: '0', ...(opts.env ?? {}) },
      stdio: [opts.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
    });
    if (opts.input !== undefined) child.stdin.end(opts.input);
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

/** The PLAY RECAP counters of one host, e.g. {ok: 63, changed: 0, failed: 0}. */
function recap(stdout, host) {
  const line = stdout.split('\n').reverse().find((l) => l.startsWith(`${host} `) && l.includes('changed='));
  if (!line) return undefined;
  return Object.fromEntries([...line.matchAll(/(\w+)=(\d+)/g)].map((m) => [m[1], Number(m[2])]));
}

function tempDir(prefix) {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

/** A self-signed CA and a certificate for `name` signed by it, in dir. */
async function makeCerts(dir, name) {
  const sh = (argv) => run(argv, { cwd: dir }).then((r) => {
    if (r.code !== 0) throw new Error(`${argv.join(' ')}: ${r.stderr}`);
  });
  await sh(['openssl', 'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '30', '-subj', '/CN=Cloudlet test CA']);
  await sh(['openssl', 'req', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'key.pem', '-out', 'req.csr', '-subj', `/CN=${name}`]);
  fs.writeFileSync(path.join(dir, 'ext'), `subjectAltName=DNS:${name}\n`);
  await sh(['openssl', 'x509', '-req', '-in', 'req.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'cert.pem', '-days', '30', '-extfile', 'ext']);
  return { ca: path.join(dir, 'ca.pem'), cert: path.join(dir, 'cert.pem'), key: path.join(dir, 'key.pem') };
}

module.exports = { ANSIBLE_DIR, REPO, run, recap, tempDir, makeCerts };
