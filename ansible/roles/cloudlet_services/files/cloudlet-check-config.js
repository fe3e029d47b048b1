#!/usr/bin/env node
// Installed by Ansible (cloudlet_services): checks a cloudlet.yml against every service's
// schema in a given release, the way each service will read it, and prints every problem.
//   node cloudlet-check-config.js <release dir> <cloudlet.yml>
'use strict';
const path = require('node:path');

const [release, file] = process.argv.slice(2);
if (!release || !file) {
  process.stderr.write('usage: cloudlet-check-config <release dir> <cloudlet.yml>\n');
  process.exit(2);
}
const load = (rel) => require(path.join(release, rel));
const core = load('services/core/dist/index.js');
const sections = {
  site: core.siteSection,
  instruments: core.instrumentsSection,
  usermap: load('services/usermap/dist/config.js').usermapSection,
  portal: load('services/portal/dist/config.js').portalSection,
  relay: load('services/instrument-relay/dist/config.js').relaySection,
  stream: load('services/stream/dist/config.js').streamSection,
  transfer: load('services/transfer/dist/config.js').transferSection,
};
try {
  // An empty environment: overrides in Ansible's own environment must not hide a problem.
  core.loadConfig(sections, { file, env: {} });
  process.stdout.write(`${file}: valid\n`);
} catch (err) {
  process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
}
