#!/usr/bin/env node
// `npm start`: the whole cloudlet on one machine, each service in its own process, as systemd
// would run them in production. Config: $CLOUDLET_CONFIG, else config/cloudlet.yml when present,
// else the embedded defaults in config/cloudlet.example.yml. If one service dies, all stop.
'use strict';
const { spawn } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const root = path.resolve(__dirname, '..');
const config =
  process.env.CLOUDLET_CONFIG ??
  [path.join(root, 'config', 'cloudlet.yml'), path.join(root, 'config', 'cloudlet.example.yml')].find((f) => fs.existsSync(f));

// Later services add themselves here.
const SERVICES = [
  { name: 'instrument-sim', main: 'services/instrument-sim/dist/main.js', args: [] },
  { name: 'relay', main: 'services/instrument-relay/dist/main.js', args: ['serve'] },
  { name: 'stream', main: 'services/stream/dist/main.js', args: ['serve'] },
  { name: 'launcher', main: 'services/launcher/dist/main.js', args: ['serve'] },
  { name: 'portal', main: 'services/portal/dist/main.js', args: [] },
];

const children = new Map();
let stopping = false;

function stopAll(code) {
  if (stopping) return;
  stopping = true;
  for (const child of children.values()) child.kill('SIGTERM');
  const timer = setTimeout(() => process.exit(code), 5000);
  timer.unref();
  const check = setInterval(() => {
    if ([...children.values()].every((c) => c.exitCode !== null || c.signalCode !== null)) {
      clearInterval(check);
      process.exit(code);
    }
  }, 50);
}

process.stderr.write(`cloudlet: starting ${SERVICES.map((s) => s.name).join(', ')} with ${path.relative(root, config)}\n`);
for (const service of SERVICES) {
  const child = spawn(process.execPath, [path.join(root, service.main), '--config', config, ...service.args], { cwd: root, stdio: 'inherit' });
  children.set(service.name, child);
  child.on('exit', (code, signal) => {
    if (!stopping) {
      process.stderr.write(`cloudlet: ${service.name} exited (${signal ?? code}); stopping the rest\n`);
      stopAll(code || 1);
    }
  });
}
process.on('SIGINT', () => stopAll(0));
process.on('SIGTERM', () => stopAll(0));
