// The OOD user_map_cmd, as OOD calls it (a shell per request, the escaped user in quotes),
// against a 100,000-identity usermap, side by side with the pilot-style bash+awk mapper over a
// 1,000-entry email,user file. Both are timed per lookup, wall clock, start to exit.
'use strict';
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const ROOT = path.resolve(__dirname, '..');
const READER = path.join(ROOT, 'services', 'usermap', 'bin', 'cloudlet-user-map');
const CLI = path.join(ROOT, 'services', 'usermap', 'dist', 'main.js');
const { oodEscape } = require(path.join(ROOT, 'services', 'usermap', 'dist', 'ood-escape.js'));
const ISSUER = 'https://cilogon.org';

// The pilot's mapper, reconstructed: decode the argument, then walk a flat file line by line,
// with awk splitting each line (its LDAP query is left out, which only flatters it).
const PILOT_SCRIPT = `#!/bin/bash
user=$(printf '%b' "\${1//%/\\\\x}")
while IFS= read -r line; do
  email=$(echo "$line" | awk -F, '{print $1}')
  if [ "$email" == "$user" ]; then
    echo "$line" | awk -F, '{print $2}'
    exit 0
  fi
done < "$MAP_FILE"
`;

function percentile(sorted, p) {
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
}

function timeLookups(keys, command, env) {
  const times = [];
  let wrong = 0;
  for (const { arg, expected } of keys) {
    const start = process.hrtime.bigint();
    const out = spawnSync('/bin/sh', ['-c', `${command} '${arg}'`], { env, encoding: 'utf8' }).stdout;
    times.push(Number(process.hrtime.bigint() - start) / 1e6);
    if ((out.split('\n')[0] ?? '') !== expected) wrong++;
  }
  if (wrong > 0) throw new Error(`${wrong} of ${keys.length} lookups returned the wrong answer`);
  times.sort((a, b) => a - b);
  return { p50_ms: round(percentile(times, 50)), p99_ms: round(percentile(times, 99)) };
}

function round(x) {
  return Math.round(x * 100) / 100;
}

function pick(n, total) {
  return Array.from({ length: n }, () => Math.floor(Math.random() * total));
}

async function run(args) {
  const identities = Number(process.env.BENCH_IDENTITIES ?? 100_000);
  const lookups = Number(process.env.BENCH_LOOKUPS ?? 10_000);
  const peerEntries = 1000;
  const peerLookups = Number(process.env.BENCH_PEER_LOOKUPS ?? 20);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cloudlet-bench-usermap-'));

  // A usermap of 50,000 people with two CILogon identities each (two home institutions).
  const people = identities / 2;
  const lines = ['version: 1', `uid_range: { min: 100000, max: ${100000 + people} }`, 'people:'];
  for (let i = 0; i < people; i++) {
    lines.push(
      `  - id: p${i}`,
      `    name: Person ${i}`,
      `    account: { username: u${i}, uid: ${100000 + i}, gid: ${100000 + i} }`,
      '    identities:',
      `      - { iss: '${ISSUER}', sub: 'http://cilogon.org/serverA/users/${1000000 + i}' }`,
      `      - { iss: '${ISSUER}', sub: 'http://cilogon.org/serverE/users/${9000000 + i}' }`,
    );
  }
  const usermap = path.join(dir, 'usermap.yml');
  const index = path.join(dir, 'ood-index.tsv');
  fs.writeFileSync(usermap, `${lines.join('\n')}\n`);
  const env = { ...process.env, CLOUDLET_USERMAP__FILE: usermap, CLOUDLET_USERMAP__INDEX_FILE: index, CLOUDLET_USERMAP__OOD_ISSUER: ISSUER, CLOUDLET_USERMAP_INDEX: index };
  const compileStart = Date.now();
  const compiled = spawnSync(process.execPath, [CLI, 'compile'], { env, encoding: 'utf8' });
  if (compiled.status !== 0) throw new Error(`compile failed: ${compiled.stderr}`);
  const compileS = (Date.now() - compileStart) / 1000;

  // 10,000 random lookups, one in ten for somebody who is not mapped.
  const keys = pick(lookups, people).map((i, n) =>
    n % 10 === 9
      ? { arg: oodEscape(`http://cilogon.org/serverZ/users/${i}`), expected: '' }
      : { arg: oodEscape(n % 2 ? `http://cilogon.org/serverA/users/${1000000 + i}` : `http://cilogon.org/serverE/users/${9000000 + i}`), expected: `u${i}` },
  );
  const ours = timeLookups(keys, READER, env);

  const pilot = path.join(dir, 'pilot-user-map.sh');
  const mapFile = path.join(dir, 'pilot-map.csv');
  fs.writeFileSync(pilot, PILOT_SCRIPT, { mode: 0o755 });
  fs.writeFileSync(mapFile, Array.from({ length: peerEntries }, (_, i) => `person${i}@uni${i % 37}.example.edu,user${i}`).join('\n') + '\n');
  const peerKeys = pick(peerLookups, peerEntries).map((i) => ({ arg: oodEscape(`person${i}@uni${i % 37}.example.edu`), expected: `user${i}` }));
  const peer = timeLookups(peerKeys, pilot, { ...process.env, MAP_FILE: mapFile });

  fs.rmSync(dir, { recursive: true, force: true });
  console.error(`usermap: compiled ${identities} identities in ${compileS.toFixed(1)} s; ${lookups} lookups through the OOD reader; ${peerLookups} pilot-style lookups over ${peerEntries} entries`);
  void args;
  return { bench: 'usermap', identities, ...ours, peer: { identities: peerEntries, ...peer } };
}

module.exports = { run };
