// Bad inventories are refused before anything changes: each case runs site.yml in check mode
// against this machine (connection local) and must fail in the first play with its message,
// with nothing changed. The OS the checks see comes from a fact cache (smart gathering does not
// gather again), so the cases do not depend on what this machine runs.
'use strict';
const fs = require('node:fs');
const path = require('node:path');
const { REPO, run, recap, tempDir, makeCerts } = require('./helpers');

jest.setTimeout(180_000);

let dir;
let certs;
let otherCerts;

beforeAll(async () => {
  dir = tempDir('cloudlet-args-');
  certs = await makeCerts(fs.mkdtempSync(path.join(dir, 'good-')), 'cloudlet.test');
  otherCerts = await makeCerts(fs.mkdtempSync(path.join(dir, 'other-')), 'elsewhere.test');
  fs.writeFileSync(path.join(dir, 'oidc.secret'), 'not-a-real-secret\n');
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

/** A complete, valid set of variables; each case breaks one thing. */
function goodVars() {
  return {
    cloudlet_fqdn: 'cloudlet.test',
    cloudlet_release_tarball: '/nonexistent/cloudlet-0.0.0-test-linux-x64.tar.gz',
    cloudlet_front: 'portal',
    cloudlet_oidc_issuer: 'https://cilogon.org',
    cloudlet_oidc_client_id: 'cilogon:/client_id/test',
    cloudlet_oidc_client_secret_src: path.join(dir, 'oidc.secret'),
    certs_mode: 'provided',
    certs_cert_src: certs.cert,
    certs_key_src: certs.key,
    cloudlet_usermap_src: path.join(REPO, 'config/usermap.example.yml'),
    cloudlet_instruments_src: path.join(REPO, 'config/instruments.example.yml'),
    firewall_management_sources: ['192.0.2.0/24'],
    firewall_zones: [{ name: 'public', tcp: [443] }],
  };
}

const DEBIAN_12 = { distribution: 'Debian', distribution_major_version: '12', distribution_version: '12.11', os_family: 'Debian', service_mgr: 'systemd' };

async function checkRun(vars, os = DEBIAN_12) {
  const id = Math.random().toString(36).slice(2);
  const inv = path.join(dir, `inv-${id}.json`);
  const cache = fs.mkdtempSync(path.join(dir, 'facts-'));
  const hostvars = { ansible_connection: 'local', ansible_python_interpreter: '/usr/bin/python3' };
  // A JSON inventory is YAML: values keep their types (lists, booleans).
  fs.writeFileSync(inv, JSON.stringify({ all: { children: { cloudlet: { hosts: { 'cloudlet-under-test': hostvars }, vars } } } }));
  const facts = Object.fromEntries(Object.entries(os).map(([k, v]) => [`ansible_${k}`, v]));
  fs.writeFileSync(path.join(cache, 'cloudlet-under-test'), JSON.stringify({ ...facts, _ansible_facts_gathered: true, module_setup: true }));
  const env = { ANSIBLE_CACHE_PLUGIN: 'jsonfile', ANSIBLE_CACHE_PLUGIN_CONNECTION: cache, ANSIBLE_GATHERING: 'smart' };
  // --tags preflight: only the first play (tagged always), so the control case changes nothing here either.
  const r = await run(['ansible-playbook', '-i', inv, '--check', '--tags', 'preflight', 'site.yml'], { env });
  return { ...r, recap: recap(r.stdout, 'cloudlet-under-test') };
}

function expectRefused(r, message) {
  expect(r.code).not.toBe(0);
  // The YAML callback wraps long messages: compare with the line breaks folded.
  expect(r.stdout.replace(/\s+/g, ' ')).toMatch(message);
  // Refused in the first play, nothing changed, and the second play never started (it would
  // have been listed even with --tags preflight selecting none of its tasks).
  expect(r.recap).toMatchObject({ changed: 0, failed: 1 });
  expect(r.stdout).not.toMatch(/PLAY \[Cloudlet\]/);
}

test('the complete variable set passes every check (the control case)', async () => {
  const r = await checkRun(goodVars());
  expect({ code: r.code, out: r.code === 0 ? '' : r.stdout }).toEqual({ code: 0, out: '' });
  expect(r.recap).toMatchObject({ changed: 0, failed: 0 });
  // The checks ran (not skipped by the tag selection).
  expect(r.stdout).toMatch(/TASK \[cloudlet_base : Refuse contradictory or incomplete settings\]/);
  expect(r.stdout).toMatch(/TASK \[certs : Refuse a key that does not belong to the certificate\]/);
});

test('a missing required variable is refused', async () => {
  const vars = goodVars();
  delete vars.cloudlet_fqdn;
  expectRefused(await checkRun(vars), /missing required arguments: cloudlet_fqdn/);
});

test('a value outside its choices is refused', async () => {
  expectRefused(await checkRun({ ...goodVars(), cloudlet_front: 'nginx' }), /cloudlet_front must be one of: portal, ood/);
});

test('a wrongly typed variable is refused', async () => {
  expectRefused(await checkRun({ ...goodVars(), firewall_zones: 'public' }), /firewall_zones.*(list|type)/);
});

test('contradictory secrets (both inline and from a file) are refused', async () => {
  expectRefused(await checkRun({ ...goodVars(), cloudlet_oidc_client_secret: 'x' }), /Set either cloudlet_oidc_client_secret \(vault\) or cloudlet_oidc_client_secret_src/);
});

test('a detector root on the network mount that does not poll is refused', async () => {
  const vars = {
    ...goodVars(),
    instrument_mount_enabled: true,
    instrument_mount_type: 'nfs',
    instrument_mount_source: 'detector:/movies',
    instrument_mount_path: '/srv/detector',
    cloudlet_detector_roots: [{ path: '/srv/detector', mode: 'event' }],
  };
  expectRefused(await checkRun(vars), /must use mode: poll/);
});

test('turning on the unreleased launcher is refused', async () => {
  expectRefused(await checkRun({ ...goodVars(), cloudlet_launcher_enabled: true }), /launcher service is not released yet/);
});

test('a certificate for another host name is refused', async () => {
  expectRefused(await checkRun({ ...goodVars(), certs_cert_src: otherCerts.cert, certs_key_src: otherCerts.key }), /is not valid for cloudlet\.test/);
});

test('a key that does not belong to the certificate is refused', async () => {
  expectRefused(await checkRun({ ...goodVars(), certs_key_src: otherCerts.key }), /is not the key of/);
});

test.each([
  ['Ubuntu 22.04', { distribution: 'Ubuntu', distribution_major_version: '22', distribution_version: '22.04', os_family: 'Debian', service_mgr: 'systemd' }],
  ['Debian 11', { ...DEBIAN_12, distribution_major_version: '11', distribution_version: '11.9' }],
  ['Debian 12 without systemd', { ...DEBIAN_12, service_mgr: 'sysvinit' }],
])('an unsupported OS (%s) is refused', async (_name, os) => {
  expectRefused(await checkRun(goodVars(), os), /Cloudlet supports Debian 12 and Rocky\/Alma\/RHEL 8 or 9 with systemd; this host is/);
});

test('Rocky 9 passes the OS check', async () => {
  const r = await checkRun(goodVars(), { distribution: 'Rocky', distribution_major_version: '9', distribution_version: '9.4', os_family: 'RedHat', service_mgr: 'systemd' });
  expect(r.recap).toMatchObject({ changed: 0, failed: 0 });
});
