// Converges site.yml into a Debian 12 systemd container built from Debian packages (debootstrap,
// podman import; no registry), runs it again and asserts nothing changed, then checks from
// outside: the services are active, the portal answers over HTTPS with the configured
// certificate, user_map_cmd maps a known identity, ood_portal.yml equals the fixture, the
// nftables table is loaded, and a usermap that fails validation stops a re-run before the
// services are touched. OOD itself is not installed (its repository is not reachable here).
// Needs root, podman, runc, debootstrap, openssl and a built tree (npm run build).
'use strict';
const { createHash, X509Certificate } = require('node:crypto');
const fs = require('node:fs');
const https = require('node:https');
const os = require('node:os');
const path = require('node:path');
const { REPO, run, recap, tempDir, makeCerts } = require('./helpers');

const CACHE = '/var/cache/cloudlet/ansible-target';
// What the image holds beyond debootstrap's minbase: what Ansible and the roles need, so a
// converge does not spend its time in apt (the roles still install anything missing).
const PACKAGES = ['systemd', 'systemd-sysv', 'dbus', 'python3', 'python3-apt', 'ca-certificates', 'nftables', 'apache2', 'ssl-cert',
  'bsdextrautils', 'acl', 'iproute2', 'curl', 'procps', 'sudo', 'locales', 'rsync', 'openssh-client', 'openssl'];
const IMAGE_KEY = createHash('sha256').update(`bookworm\n${PACKAGES.join(',')}`).digest('hex').slice(0, 12);
const IMAGE = `localhost/cloudlet-ansible-target:${IMAGE_KEY}`;
const CONTAINER = `cloudlet-ansible-converge-${process.pid}`;
const FQDN = 'cloudlet.test';
const ADA_SUB = 'http%3A%2F%2Fcilogon.org%2FserverA%2Fusers%2F100001';

const why = (() => {
  if (process.getuid?.() !== 0) return 'needs root (rootful podman)';
  for (const bin of ['podman', 'debootstrap', 'ansible-playbook', 'openssl']) {
    if (!['/usr/bin', '/usr/sbin'].some((d) => fs.existsSync(path.join(d, bin)))) return `needs ${bin}`;
  }
  if (!fs.existsSync(path.join(REPO, 'services/usermap/dist/main.js'))) return 'needs a built tree (npm run build)';
  return undefined;
})();
if (why) process.stderr.write(`converge.int.test.js skipped: ${why}\n`);
const describeIf = why ? describe.skip : describe;

const sh = async (argv, opts) => {
  const r = await run(argv, opts);
  if (r.code !== 0) throw new Error(`${argv.join(' ')} exited ${r.code}: ${r.stderr.slice(-2000)}`);
  return r.stdout;
};
const inContainer = (...argv) => run(['podman', 'exec', CONTAINER, ...argv]);

/**
 * podman as root on this host needs these settings (DESIGN.md section 8). A machine's own
 * /etc/containers/containers.conf is used as it is; without one, CONTAINERS_CONF points this
 * test's podman at a private copy, so the machine is left as it was.
 */
function ensureContainersConf() {
  if (fs.existsSync('/etc/containers/containers.conf') || process.env.CONTAINERS_CONF) return;
  const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'converge-conf-')), 'containers.conf');
  fs.writeFileSync(file, '[containers]\ndefault_ulimits = []\n\n[engine]\ncgroup_manager = "cgroupfs"\nruntime = "runc"\n');
  process.env.CONTAINERS_CONF = file;
}

async function ensureImage() {
  if ((await run(['podman', 'image', 'exists', IMAGE])).code === 0) return;
  const rootfs = path.join(CACHE, `rootfs-${IMAGE_KEY}`);
  if (!fs.existsSync(path.join(rootfs, '.complete'))) {
    fs.rmSync(rootfs, { recursive: true, force: true });
    fs.mkdirSync(CACHE, { recursive: true });
    await sh(['debootstrap', '--variant=minbase', `--include=${PACKAGES.join(',')}`, 'bookworm', rootfs, 'http://deb.debian.org/debian']);
    fs.writeFileSync(path.join(rootfs, '.complete'), '');
  }
  await sh(['sh', '-c', `tar --numeric-owner --exclude=./.complete -C "${rootfs}" -c . | podman import --change 'CMD ["/sbin/init"]' - ${IMAGE}`]);
}

let dir;
let certs;
let port;
let inventory;
const runs = [];

async function converge(extraVars, ...flags) {
  const argv = ['ansible-playbook', '-i', inventory, ...flags, 'site.yml'];
  if (extraVars) argv.push('-e', JSON.stringify(extraVars));
  const r = await run(argv);
  const result = { ...r, recap: recap(r.stdout, CONTAINER) };
  runs.push(result);
  return result;
}

describeIf('site.yml converged into a Debian 12 systemd container', () => {
  beforeAll(async () => {
    dir = tempDir('cloudlet-converge-');
    ensureContainersConf();
    await ensureImage();
    const release = (await sh([path.join(REPO, 'scripts/build-release'), '--out', dir])).trim().split('\n').pop();
    certs = await makeCerts(dir, FQDN);
    fs.writeFileSync(path.join(dir, 'oidc.secret'), 'converge-test-client-secret\n');
    // SYS_ADMIN: the units' sandboxing sets up mount namespaces; NET_ADMIN: nftables.
    await sh(['podman', 'run', '-d', '--name', CONTAINER, '--hostname', FQDN, '--systemd=always',
      '--cap-add', 'SYS_ADMIN,NET_ADMIN', '-p', '127.0.0.1::8443', IMAGE, '/sbin/init']);
    port = Number((await sh(['podman', 'port', CONTAINER, '8443/tcp'])).trim().split(':').pop());
    const vars = {
      cloudlet_fqdn: FQDN,
      cloudlet_site_name: 'Converge test',
      cloudlet_release_tarball: release,
      cloudlet_front: 'ood',
      cloudlet_oidc_issuer: 'https://cilogon.org',
      cloudlet_oidc_client_id: 'cilogon:/client_id/converge-test',
      cloudlet_oidc_client_secret_src: path.join(dir, 'oidc.secret'),
      certs_mode: 'provided',
      certs_cert_src: certs.cert,
      certs_key_src: certs.key,
      cloudlet_usermap_src: path.join(REPO, 'config/usermap.example.yml'),
      cloudlet_instruments_src: path.join(REPO, 'config/instruments.example.yml'),
      cloudlet_detector_roots: [{ path: '/srv/detector', mode: 'poll' }],
      firewall_management_sources: ['10.0.0.0/8'],
      firewall_zones: [{ name: 'public', tcp: [443, 8443] }],
    };
    inventory = path.join(dir, 'inventory.json');
    fs.writeFileSync(inventory, JSON.stringify({ all: { children: { cloudlet: { hosts: { [CONTAINER]: { ansible_connection: 'containers.podman.podman' } }, vars } } } }));
  }, 30 * 60_000);

  afterAll(async () => {
    if (runs.some((r) => r.code !== 0)) {
      const last = runs.filter((r) => r.code !== 0).pop();
      process.stderr.write(`last failed ansible-playbook run:\n${last.stdout.slice(-6000)}\n`);
    }
    await run(['podman', 'rm', '-f', '-t', '5', CONTAINER]);
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  }, 120_000);

  test('check mode on the fresh host reports the changes and makes none', async () => {
    const r = await converge(undefined, '--check', '--diff');
    expect(r.recap).toMatchObject({ failed: 0, unreachable: 0 });
    expect(r.recap.changed).toBeGreaterThan(0);
    expect(r.stdout).toMatch(/Would unpack cloudlet-/);
    expect((await inContainer('test', '-e', '/opt/cloudlet')).code).not.toBe(0);
    expect((await inContainer('test', '-e', '/etc/systemd/system/cloudlet-portal.service')).code).not.toBe(0);
  }, 20 * 60_000);

  test('the first run converges', async () => {
    const r = await converge();
    expect(r.recap).toMatchObject({ failed: 0, unreachable: 0 });
    expect(r.recap.changed).toBeGreaterThan(0);
  }, 20 * 60_000);

  test('the second run changes nothing (and so restarts nothing)', async () => {
    const before = await inContainer('systemctl', 'show', '-p', 'MainPID', '--value', 'cloudlet-portal', 'cloudlet-relay', 'apache2');
    const r = await converge();
    expect(r.recap).toMatchObject({ failed: 0, changed: 0 });
    const after = await inContainer('systemctl', 'show', '-p', 'MainPID', '--value', 'cloudlet-portal', 'cloudlet-relay', 'apache2');
    expect(after.stdout).toBe(before.stdout);
  }, 20 * 60_000);

  test('check mode on the converged host has nothing to change', async () => {
    const r = await converge(undefined, '--check', '--diff');
    expect(r.recap).toMatchObject({ failed: 0, changed: 0 });
  }, 20 * 60_000);

  test('the services are active (and stay up)', async () => {
    const units = ['cloudlet-portal', 'cloudlet-relay', 'cloudlet-stream', 'cloudlet-transfer', 'cloudlet-usermap-watch', 'apache2'];
    // A unit that crashes at start flips between activating and failed: ask twice, RestartSec
    // (5 s) apart, and both answers must be active.
    const states = async () => (await inContainer('systemctl', 'is-active', ...units)).stdout.trim().split('\n');
    const first = await states();
    await new Promise((resolve) => setTimeout(resolve, 6000));
    const second = await states();
    const down = units.filter((_, i) => first[i] !== 'active' || second[i] !== 'active');
    for (const unit of down) {
      const log = await inContainer('journalctl', '-u', unit, '-n', '15', '--no-pager', '-o', 'cat');
      process.stderr.write(`${unit} is not active; its journal:\n${log.stdout.slice(-3000)}\n`);
    }
    expect(down).toEqual([]);
  }, 60_000);

  test('the units are sandboxed', async () => {
    const r = await inContainer('systemctl', 'show', '-p', 'NoNewPrivileges,ProtectSystem,ProtectHome,PrivateTmp,CapabilityBoundingSet,User', 'cloudlet-portal');
    expect(r.stdout).toMatch(/NoNewPrivileges=yes/);
    expect(r.stdout).toMatch(/ProtectSystem=strict/);
    expect(r.stdout).toMatch(/ProtectHome=yes/);
    expect(r.stdout).toMatch(/PrivateTmp=yes/);
    expect(r.stdout).toMatch(/CapabilityBoundingSet=\n/);
    expect(r.stdout).toMatch(/User=cloudlet/);
  }, 60_000);

  test('the portal answers over HTTPS with the configured certificate', async () => {
    const { status, body, peer } = await new Promise((resolve, reject) => {
      const req = https.get({ host: '127.0.0.1', port, servername: FQDN, path: '/healthz', ca: fs.readFileSync(certs.ca), headers: { host: `${FQDN}:${port}` }, agent: false }, (res) => {
        // Read the certificate now: the socket is gone by the end of the response.
        const peer = res.socket.getPeerCertificate();
        let text = '';
        res.on('data', (d) => (text += d));
        res.on('end', () => resolve({ status: res.statusCode, body: text, peer }));
        res.on('error', reject);
      });
      req.setTimeout(20_000, () => req.destroy(new Error('no answer within 20 s')));
      req.on('error', reject);
    });
    expect({ status, body: status === 200 ? '' : body }).toEqual({ status: 200, body: '' });
    expect(JSON.parse(body)).toEqual(expect.any(Object));
    const configured = new X509Certificate(fs.readFileSync(certs.cert));
    expect(peer.fingerprint256).toBe(configured.fingerprint256);
  }, 60_000);

  test("OOD's user_map_cmd maps a known identity and nothing for an unknown one", async () => {
    const known = await inContainer('/opt/cloudlet/bin/cloudlet-user-map', ADA_SUB);
    expect(known.stdout).toBe('ada\n');
    const unknown = await inContainer('/opt/cloudlet/bin/cloudlet-user-map', 'http%3A%2F%2Fcilogon.org%2FserverZ%2Fusers%2F999');
    expect(unknown.stdout).toBe('');
  }, 60_000);

  test('the rendered ood_portal.yml equals the fixture', async () => {
    const r = await inContainer('cat', '/etc/ood/config/ood_portal.yml');
    expect(r.stdout).toBe(fs.readFileSync(path.join(__dirname, 'fixtures/ood_portal.yml'), 'utf8'));
    const mode = await inContainer('stat', '-c', '%a %U', '/etc/ood/config/ood_portal.yml');
    expect(mode.stdout.trim()).toBe('600 root');
  }, 60_000);

  test('the OOD app is installed as a system app from the release', async () => {
    const r = await inContainer('test', '-f', '/var/www/ood/apps/sys/microscope/manifest.yml');
    expect(r.code).toBe(0);
  }, 60_000);

  test('the nftables table is loaded: inbound dropped but for the zones, /rnode confined to the relay ports', async () => {
    const r = await inContainer('nft', 'list', 'table', 'inet', 'cloudlet');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/hook input priority filter; policy drop;/);
    expect(r.stdout).toMatch(/tcp dport \{ 443, 8443 \} counter packets \d+ bytes \d+ accept comment "public"/);
    expect(r.stdout).toMatch(/ip daddr 127\.0\.0\.2 meta skuid 33 tcp dport != 45000-45999 .*reject/);
  }, 60_000);

  test('a usermap that fails validation stops a re-run before the services are touched', async () => {
    const usermap = '/var/lib/cloudlet/usermap/usermap.yml';
    const good = (await inContainer('cat', usermap)).stdout;
    const pids = (await inContainer('systemctl', 'show', '-p', 'MainPID', '--value', 'cloudlet-portal', 'cloudlet-relay')).stdout;
    const config = (await inContainer('cat', '/etc/cloudlet/cloudlet.yml')).stdout;
    // Rosalind given Ada's uid: a rule the usermap validator refuses.
    const bad = good.replace('uid: 20002', 'uid: 20001');
    expect(bad).not.toBe(good);
    await sh(['podman', 'exec', '-i', CONTAINER, 'sh', '-c', `cat > ${usermap}`], { input: bad });
    try {
      // A config change that would restart every service, if the play got that far.
      const r = await converge({ cloudlet_log_level: 'debug' });
      expect(r.recap).toMatchObject({ failed: 1 });
      // The task that failed is the usermap validation: the last TASK header before "fatal:".
      const beforeFatal = r.stdout.slice(0, r.stdout.indexOf('fatal:'));
      const tasks = [...beforeFatal.matchAll(/^TASK \[(.*)\]/gm)].map((m) => m[1]);
      expect(tasks.pop()).toBe('cloudlet_services : Validate the live usermap with the new release (stops here on any problem)');
      expect(r.stdout).toMatch(/uid 20001 is already used by/);
      expect((await inContainer('cat', '/etc/cloudlet/cloudlet.yml')).stdout).toBe(config);
      expect((await inContainer('systemctl', 'show', '-p', 'MainPID', '--value', 'cloudlet-portal', 'cloudlet-relay')).stdout).toBe(pids);
    } finally {
      await sh(['podman', 'exec', '-i', CONTAINER, 'sh', '-c', `cat > ${usermap}`], { input: good });
    }
  }, 20 * 60_000);
});
