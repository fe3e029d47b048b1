import fs from 'node:fs';
import os from 'node:os';
import { ProcessBackend } from './process-backend';
import { describeLauncherBehaviour } from './launcher-behaviour';
import { tempDir } from '@cloudlet/core/testing';

// The process backend runs everything as the current user: the suite's user is this one.
const me = os.userInfo();
const stateDir = tempDir('cloudlet-procs-');
const server = "require('net').createServer((s) => s.end()).listen(Number(process.env.CLOUDLET_SESSION_PORT), '127.0.0.1')";

afterAll(() => fs.rmSync(stateDir, { recursive: true, force: true }));

describe('launcher on the process backend', () => {
  describeLauncherBehaviour({
    backend: () => new ProcessBackend(stateDir, 2000),
    user: { username: me.username, uid: me.uid, gid: me.gid },
    serveCommand: (before) => ['/bin/sh', '-c', `${before} exec "${process.execPath}" -e "${server}"`, 'serve'],
    appExtras: {},
    instance: 'proc-test',
  });
});
