// The FABRIC slice spec and its script: the schema accepts the example and rejects bad specs,
// the script compiles, and --dry-run prints the fablib calls without importing fablib.
'use strict';
const { spawn } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const FABRIC = path.resolve(__dirname, '..');
const SCRIPT = path.join(FABRIC, 'cloudlet_slice.py');
const EXAMPLE = path.join(FABRIC, 'slice.example.yml');

jest.setTimeout(60_000);

function py(args, env = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn('python3', args, { cwd: FABRIC, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

let dir;
let example;
beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cloudlet-slice-'));
  // The example as JSON (python3 -c so the test needs no YAML parser of its own).
  const r = await py(['-c', 'import json,sys,yaml; print(json.dumps(yaml.safe_load(open(sys.argv[1]))))', EXAMPLE]);
  expect(r.stderr).toBe('');
  example = JSON.parse(r.stdout);
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

/** Writes a variant of the example (JSON is YAML) and validates it. */
async function validate(mutate) {
  const spec = structuredClone(example);
  mutate(spec);
  const file = path.join(dir, `spec-${Math.random().toString(36).slice(2)}.yml`);
  fs.writeFileSync(file, JSON.stringify(spec));
  // deploy paths are resolved relative to the spec: keep the example's meaning.
  return py([SCRIPT, 'validate', '--spec', file]);
}

test('the script compiles', async () => {
  // Compiled into the temp dir, so the tree gets no __pycache__.
  const r = await py(['-c', 'import py_compile,sys; py_compile.compile(sys.argv[1], cfile=sys.argv[2], doraise=True)', SCRIPT, path.join(dir, 'cloudlet_slice.pyc')]);
  expect(r).toMatchObject({ code: 0, stderr: '' });
});

test('the schema is valid JSON Schema (draft 7) and accepts the example', async () => {
  const check = await py(['-c', 'import json,jsonschema,sys; jsonschema.Draft7Validator.check_schema(json.load(open(sys.argv[1])))', path.join(FABRIC, 'slice.schema.json')]);
  expect(check).toMatchObject({ code: 0, stderr: '' });
  const r = await py([SCRIPT, 'validate', '--spec', EXAMPLE]);
  expect(r.code).toBe(0);
  expect(r.stdout).toMatch(/valid/);
});

test.each([
  ['a missing site', (s) => delete s.node.site, /node: 'site' is a required property/],
  ['FABNetv4Ext switched off', (s) => (s.network.fabnetv4ext.enabled = false), /network\/fabnetv4ext\/enabled/],
  ['a VLAN out of range', (s) => (s.network.facility_port.vlan = 5000), /network\/facility_port\/vlan: 5000 is greater than the maximum/],
  ['an unknown GPU model', (s) => (s.node.gpus[0].model = 'GPU_H100_NOT_A_MODEL'), /node\/gpus\/0\/model/],
  ['an unknown key', (s) => (s.node.colour = 'blue'), /Additional properties are not allowed \('colour'/],
  ['a lease beyond 14 days', (s) => (s.slice.lease_days = 30), /slice\/lease_days: 30 is greater than the maximum of 14/],
  ['an address without a prefix', (s) => (s.network.facility_port.address = '10.20.0.10'), /network\/facility_port\/address/],
])('the schema rejects %s', async (_name, mutate, message) => {
  const r = await validate(mutate);
  expect(r.code).toBe(2);
  expect(r.stderr).toMatch(message);
});

test('every problem is reported at once', async () => {
  const r = await validate((s) => {
    delete s.node.site;
    s.network.facility_port.vlan = 0;
  });
  expect(r.code).toBe(2);
  expect(r.stderr).toMatch(/2 problem\(s\)/);
});

test('create --dry-run prints the fablib calls, in order, for the whole spec', async () => {
  const r = await py([SCRIPT, 'create', '--dry-run', '--spec', EXAMPLE]);
  expect(r).toMatchObject({ code: 0, stderr: '' });
  const expected = [
    "fablib.new_slice(name='cloudlet-krios')",
    "slice.add_node(name='cloudlet', site='TACC', image='default_debian_12', cores=16, ram=64, disk=500)",
    "node.add_component(model='GPU_RTX6000', name='gpu00')",
    "node.add_component(model='NVME_P4510', name='nvme00')",
    "node.add_component(model='NIC_Basic', name='nic-public')",
    "slice.add_l3network(name='net-public', interfaces=[interfaces[0]], type='IPv4Ext')",
    "slice.add_facility_port(name='Cryo-EM-Lab', site='TACC', vlan='3110')",
    "slice.add_l2network(name='net-instrument', interfaces=[interfaces[0], interfaces[0]])",
    'slice.submit()',
    'net.get_available_ips()',
    'net.make_ip_publicly_routable(',
    'slice.submit()',
    'slice.renew(',
  ];
  const lines = r.stdout.split('\n');
  let at = 0;
  for (const call of expected) {
    const found = lines.findIndex((l, i) => i >= at && l.startsWith(call));
    expect({ call, found: found >= 0 }).toEqual({ call, found: true });
    at = found + 1;
  }
  expect(r.stdout).toMatch(/^slice\.renew\('\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \+0000'\)$/m);
  expect(r.stdout).toMatch(/^run: ansible-playbook -i \S+ \S+\/ansible\/fabric-vm\.yml$/m);
});

test('--dry-run never imports fablib (a fablib that fails on import changes nothing)', async () => {
  const fake = path.join(dir, 'fake', 'fabrictestbed_extensions', 'fablib');
  fs.mkdirSync(fake, { recursive: true });
  fs.writeFileSync(path.join(fake, '..', '__init__.py'), 'raise RuntimeError("fablib imported in a dry run")\n');
  fs.writeFileSync(path.join(fake, '__init__.py'), '');
  const env = { PYTHONPATH: path.join(dir, 'fake') };
  const dry = await py([SCRIPT, 'up', '--dry-run', '--spec', EXAMPLE], env);
  expect(dry).toMatchObject({ code: 0, stderr: '' });
  // The control: without --dry-run the same script does import it.
  const real = await py([SCRIPT, 'check', '--spec', EXAMPLE], env);
  expect(real.code).not.toBe(0);
  expect(real.stderr).toMatch(/fablib imported in a dry run/);
});

test('check --dry-run reports a missing slice and exits 1', async () => {
  const r = await py([SCRIPT, 'check', '--dry-run', '--spec', EXAMPLE]);
  expect(r.code).toBe(1);
  expect(r.stdout).toMatch(/fablib\.get_slice\(name='cloudlet-krios'\)/);
  expect(r.stdout).toMatch(/cloudlet-krios: slice cloudlet-krios does not exist/);
});

test('the notebook is valid nbformat 4 JSON that uses the script', () => {
  const nb = JSON.parse(fs.readFileSync(path.join(FABRIC, 'cloudlet_slice.ipynb'), 'utf8'));
  expect(nb.nbformat).toBe(4);
  const code = nb.cells.filter((c) => c.cell_type === 'code').map((c) => c.source.join('')).join('\n');
  expect(code).toMatch(/import cloudlet_slice as cs/);
  for (const step of ['cs.load_spec(', "'--dry-run'", 'cs.check(', 'cs.build(', 'cs.deploy(', '.renew(']) expect(code).toContain(step);
});
