// ansible-lint (production profile) and ansible-playbook --syntax-check, as CI runs them.
'use strict';
const fs = require('node:fs');
const path = require('node:path');
const { ANSIBLE_DIR, run } = require('./helpers');

// Each role by name, so ansible-lint lints it as a role (meta, argument_specs) and not only as files.
const ROLES = fs.readdirSync(path.join(ANSIBLE_DIR, 'roles')).map((r) => `roles/${r}`);

jest.setTimeout(120_000);

test('ansible-lint passes with the production profile', async () => {
  const r = await run(['ansible-lint', '--profile', 'production', '--offline', '--nocolor', 'site.yml', 'fabric-vm.yml', ...ROLES]);
  expect({ code: r.code, out: r.code === 0 ? '' : r.stdout + r.stderr }).toEqual({ code: 0, out: '' });
  expect(r.stdout + r.stderr).toMatch(/Passed with production profile/);
});

test.each(['site.yml', 'fabric-vm.yml'])('%s passes ansible-playbook --syntax-check', async (playbook) => {
  const r = await run(['ansible-playbook', '--syntax-check', '-i', 'localhost,', playbook]);
  expect({ code: r.code, err: r.code === 0 ? '' : r.stderr }).toEqual({ code: 0, err: '' });
});
