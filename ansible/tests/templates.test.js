// The templates that matter most, rendered by Ansible from config/inventory.example.yml and
// checked by the programs that will read them: cloudlet.yml by every service's schema (the
// compiled tree has the release's layout), the nftables table by nft itself.
'use strict';
const fs = require('node:fs');
const path = require('node:path');
const { ANSIBLE_DIR, REPO, run, tempDir } = require('./helpers');

jest.setTimeout(120_000);

let dir;
beforeAll(() => {
  dir = tempDir('cloudlet-templates-');
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

/** Renders role/templates/<template> with the role's defaults and vars plus the example inventory. */
async function render(role, template, extraVarsFiles = []) {
  const out = path.join(dir, template.replace(/\.j2$/, ''));
  const roleDir = path.join(ANSIBLE_DIR, 'roles', role);
  const varsFiles = ['cloudlet_base/defaults/main.yml', `${role}/defaults/main.yml`, ...extraVarsFiles]
    .map((f) => path.join(ANSIBLE_DIR, 'roles', f))
    .filter((f) => fs.existsSync(f));
  const playbook = path.join(dir, `render-${role}.yml`);
  fs.writeFileSync(playbook, JSON.stringify([{
    hosts: 'cloudlet',
    gather_facts: false,
    vars_files: varsFiles,
    tasks: [{ 'ansible.builtin.template': { src: path.join(roleDir, 'templates', template), dest: out, mode: '0644' } }],
  }]));
  // The example inventory's variables as extra vars, so they win over the role defaults loaded
  // as vars_files (the precedence the inventory has over defaults in a real run).
  const inventoryVars = path.join(dir, 'inventory-vars.json');
  const dump = await run(['python3', '-c', "import json,sys,yaml; print(json.dumps(yaml.safe_load(open(sys.argv[1]))['all']['children']['cloudlet']['vars']))",
    path.join(REPO, 'config/inventory.example.yml')]);
  fs.writeFileSync(inventoryVars, dump.stdout);
  const r = await run(['ansible-playbook', '-i', path.join(REPO, 'config/inventory.example.yml'), '-c', 'local', '-e', `@${inventoryVars}`,
    '-e', JSON.stringify({ ansible_facts: { os_family: 'Debian' }, ansible_python_interpreter: '/usr/bin/python3' }), playbook]);
  expect({ code: r.code, out: r.code === 0 ? '' : r.stdout }).toEqual({ code: 0, out: '' });
  return out;
}

test('cloudlet.yml from the example inventory passes every service schema', async () => {
  const file = await render('cloudlet_services', 'cloudlet.yml.j2', ['cloudlet_services/vars/main.yml']);
  const check = path.join(ANSIBLE_DIR, 'roles/cloudlet_services/files/cloudlet-check-config.js');
  const r = await run([process.execPath, check, REPO, file]);
  expect({ code: r.code, err: r.stderr }).toEqual({ code: 0, err: '' });
  const text = fs.readFileSync(file, 'utf8');
  expect(text).toMatch(/listen_port: 8080\n/); // a number, not the string '8080'
  expect(text).toMatch(/listen_host: 127\.0\.0\.2\n/); // the relay's own address
  expect(text).toMatch(/workers: 2\n/); // cloudlet_config_overrides applied
});

test('the config checker refuses a bad cloudlet.yml and names the key (it can fail)', async () => {
  const bad = path.join(dir, 'bad.yml');
  fs.writeFileSync(bad, 'relay:\n  max_viewers: 3\nportal:\n  listen_port: "8080"\n');
  const check = path.join(ANSIBLE_DIR, 'roles/cloudlet_services/files/cloudlet-check-config.js');
  const r = await run([process.execPath, check, REPO, bad]);
  expect(r.code).toBe(1);
  expect(r.stderr).toMatch(/portal\.listen_port/);
  expect(r.stderr).toMatch(/max_viewers/);
});

const canCheckNft = process.getuid?.() === 0 && fs.existsSync('/usr/sbin/nft');
(canCheckNft ? test : test.skip)('the nftables table from the example zones is accepted by nft -c', async () => {
  const file = await render('firewall', 'cloudlet.nft.j2', ['cloudlet_services/defaults/main.yml']);
  const r = await run(['nft', '-c', '-f', file]);
  expect({ code: r.code, err: r.stderr }).toEqual({ code: 0, err: '' });
  const text = fs.readFileSync(file, 'utf8');
  expect(text).toMatch(/policy drop;/);
  expect(text).toMatch(/ip saddr 198\.51\.100\.0\/24 tcp dport 22 accept/);
  expect(text).toMatch(/oifname \{ "ens8" \} counter drop/);
});
if (!canCheckNft) process.stderr.write('templates.test.js: nft -c needs root and nftables; that case is skipped\n');
