/**
 * A "cluster" for integration tests: a real sshd (login user cloudlet-remote, uid 3100) and a
 * real single-node Slurm on this machine, reached only through that sshd, plus the known_hosts
 * files, usermap and transfer config that point at them.
 */
import { execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { type SlurmCluster, type SshServer, startSlurm, startSshd, tempDir } from '@cloudlet/core/testing';
import { UserMap, validateUsermap } from '@cloudlet/usermap';
import { transferSection, type TransferConfig } from '../config';

export interface TestCluster {
  sshd: SshServer;
  slurm: SlurmCluster;
  dir: string;
  /** Local folder under local_roots. */
  data: string;
  /** Allowed remote root, in the remote user's home. */
  remoteRoot: string;
  templates: string;
  usermap(uid?: number): UserMap;
  config(overrides?: Record<string, unknown>): TransferConfig;
  stop(): Promise<void>;
}

export async function startTestCluster(): Promise<TestCluster> {
  const [sshd, slurm] = await Promise.all([startSshd(), startSlurm()]);
  // Without slurmdbd, finished jobs are in the jobcomp file, and `sacct -c` loads the jobcomp
  // plugin, which opens that file for appending even to read it: as any user but root it fails
  // unless the file is writable. On a real cluster any user asks slurmdbd about their own jobs;
  // here the (throwaway) file is opened up before the first job ends (slurmctld keeps its mode).
  fs.writeFileSync(slurm.jobcompFile, '', { flag: 'a' });
  fs.chmodSync(slurm.jobcompFile, 0o666);
  const dir = tempDir('cloudlet-remote-it-');
  const data = path.join(dir, 'data');
  const templates = path.join(dir, 'templates');
  fs.mkdirSync(data);
  fs.mkdirSync(templates);
  const remoteRoot = path.join(sshd.home, `cloudlet-remote-${crypto.randomBytes(4).toString('hex')}`);
  fs.writeFileSync(path.join(dir, 'known_hosts'), `${sshd.knownHostsLine}\n`);
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', path.join(dir, 'other_host')]);
  const otherKey = fs.readFileSync(path.join(dir, 'other_host.pub'), 'utf8').split(' ').slice(0, 2).join(' ');
  fs.writeFileSync(path.join(dir, 'known_hosts.changed'), `[127.0.0.1]:${sshd.port} ${otherKey}\n`);

  return {
    sshd,
    slurm,
    dir,
    data,
    remoteRoot,
    templates,
    usermap(uid = sshd.uid) {
      const result = validateUsermap({
        version: 1,
        uid_range: { min: 5000, max: 6000 },
        people: [
          { id: 'alice', name: 'Alice', account: { username: 'alice', uid: 5001, gid: 5001 }, clusters: ['hpc', 'hpc-changed'].map((cluster) => ({ cluster, username: sshd.user, uid, gid: uid })) },
          { id: 'bob', name: 'Bob', account: { username: 'bob', uid: 5002, gid: 5002 } },
        ],
      });
      if (!result.ok) throw new Error(result.problems.join('\n'));
      return new UserMap(result.doc);
    },
    config(overrides = {}) {
      const cluster = { host: sshd.host, port: sshd.port, key_file: sshd.clientKey, allowed_remote_roots: [remoteRoot], slurm_env: { SLURM_CONF: slurm.env.SLURM_CONF } };
      return transferSection.parse({
        clusters: [
          { id: 'hpc', known_hosts_file: path.join(dir, 'known_hosts'), ...cluster },
          { id: 'hpc-changed', known_hosts_file: path.join(dir, 'known_hosts.changed'), ...cluster },
        ],
        local_roots: [data],
        ledger_file: path.join(dir, `ledger-${crypto.randomBytes(4).toString('hex')}.sqlite`),
        retry_backoff_ms: 50,
        listen_port: 0,
        remote_jobs: { templates_dir: templates, poll_interval_ms: 300 },
        ...overrides,
      });
    },
    async stop() {
      await Promise.allSettled([slurm.stop(), sshd.stop()]);
      fs.rmSync(dir, { recursive: true, force: true });
      fs.rmSync(remoteRoot, { recursive: true, force: true });
    },
  };
}
