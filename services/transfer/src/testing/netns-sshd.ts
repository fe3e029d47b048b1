/**
 * A real sshd on a second "host": a network namespace reached over a veth pair, so a test can
 * cut the link for real (`ip link set <veth> down`) in the middle of a transfer and bring it
 * back. core's startSshd listens on loopback, which cannot be cut; this reuses what it sets up
 * (the remote test user, the host key, the client key) and runs a second sshd inside the
 * namespace on the same keys. Needs root and iproute2 (DESIGN.md section 8).
 */
import { execFile } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { promisify } from 'node:util';
import { type RunningProcess, type SshServer, startProcess, startSshd, tempDir, waitFor } from '@cloudlet/core/testing';

const run = promisify(execFile);

export interface NetnsSshd {
  /** The sshd's address inside the namespace. */
  host: string;
  port: number;
  knownHostsLine: string;
  user: string;
  uid: number;
  home: string;
  clientKey: string;
  /** The host-side end of the veth pair: down cuts the link, up restores it. */
  veth: string;
  cut(): Promise<void>;
  restore(): Promise<void>;
  /** Stops both sshds and deletes the namespace (which deletes the veth pair). Safe to call twice. */
  stop(): Promise<void>;
}

const PORT = 2222;

export async function startNetnsSshd(): Promise<NetnsSshd> {
  const id = crypto.randomBytes(3).toString('hex');
  const ns = `cloudlet-t-${id}`;
  // Interface names are at most 15 characters.
  const veth = `clt${id}h`;
  const peer = `clt${id}n`;
  // A /30 in 10.213.0.0/16 picked at random: several test files may run at once.
  const net3 = crypto.randomInt(0, 256);
  const net4 = crypto.randomInt(0, 64) * 4;
  const hostAddr = `10.213.${net3}.${net4 + 1}`;
  const nsAddr = `10.213.${net3}.${net4 + 2}`;
  const dir = tempDir('cloudlet-netns-sshd-');
  fs.chmodSync(dir, 0o755);
  let loopback: SshServer | undefined;
  let daemon: RunningProcess | undefined;
  let stopped = false;

  const stop = async (): Promise<void> => {
    if (stopped) return;
    stopped = true;
    if (daemon) await stopDaemon(daemon);
    await run('ip', ['netns', 'del', ns]).catch(() => undefined);
    await loopback?.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  };

  try {
    // For the user, the host key and the client key; its own loopback sshd just idles.
    loopback = await startSshd();
    await run('ip', ['netns', 'add', ns]);
    await run('ip', ['link', 'add', veth, 'type', 'veth', 'peer', 'name', peer, 'netns', ns]);
    await run('ip', ['addr', 'add', `${hostAddr}/30`, 'dev', veth]);
    await run('ip', ['link', 'set', veth, 'up']);
    await run('ip', ['-n', ns, 'addr', 'add', `${nsAddr}/30`, 'dev', peer]);
    await run('ip', ['-n', ns, 'link', 'set', peer, 'up']);
    await run('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);

    const authorizedKeys = path.join(dir, 'authorized_keys');
    fs.writeFileSync(authorizedKeys, fs.readFileSync(`${loopback.clientKey}.pub`), { mode: 0o644 });
    const config = path.join(dir, 'sshd_config');
    fs.writeFileSync(config, `${[
      `Port ${PORT}`,
      `ListenAddress ${nsAddr}`,
      `HostKey ${loopback.hostKeyFile}`,
      `PidFile ${path.join(dir, 'sshd.pid')}`,
      `AuthorizedKeysFile ${authorizedKeys}`,
      `AllowUsers ${loopback.user}`,
      'PubkeyAuthentication yes',
      'PasswordAuthentication no',
      'KbdInteractiveAuthentication no',
      'UsePAM no',
      'StrictModes no', // the keys live under /tmp
      'PermitRootLogin no',
      'X11Forwarding no',
      'AllowTcpForwarding no',
      // A cut link must end sessions on this side too, or stale ones pile up.
      'ClientAliveInterval 5',
      'ClientAliveCountMax 3',
    ].join('\n')}\n`);
    daemon = startProcess('ip', ['netns', 'exec', ns, '/usr/sbin/sshd', '-D', '-e', '-f', config]);
    const knownHostsLine = `[${nsAddr}]:${PORT} ${loopback.hostKeyPublic}`;
    const knownHosts = path.join(dir, 'known_hosts');
    fs.writeFileSync(knownHosts, `${knownHostsLine}\n`);
    const sshd = daemon;
    await waitFor(async () => {
      if (sshd.child.exitCode !== null) throw new Error(`sshd in ${ns} exited:\n${sshd.lines.slice(-20).join('\n')}`);
      return (await accepts(nsAddr, PORT)) && login(nsAddr, loopback as SshServer, knownHosts);
    }, 20_000, `sshd in namespace ${ns}`);

    return {
      host: nsAddr,
      port: PORT,
      knownHostsLine,
      user: loopback.user,
      uid: loopback.uid,
      home: loopback.home,
      clientKey: loopback.clientKey,
      veth,
      cut: async () => {
        await run('ip', ['link', 'set', veth, 'down']);
      },
      restore: async () => {
        await run('ip', ['link', 'set', veth, 'up']);
      },
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}

async function login(host: string, server: SshServer, knownHosts: string): Promise<boolean> {
  const args = ['-F', '/dev/null', '-o', 'BatchMode=yes', '-o', 'StrictHostKeyChecking=yes', '-o', `UserKnownHostsFile=${knownHosts}`, '-o', 'GlobalKnownHostsFile=/dev/null', '-o', 'IdentitiesOnly=yes', '-i', server.clientKey, '-p', String(PORT), '-l', server.user, '--', host, 'true'];
  return run('ssh', args, { timeout: 10_000 }).then(() => true, () => false);
}

function accepts(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(port, host);
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

async function stopDaemon(p: RunningProcess): Promise<void> {
  const timer = setTimeout(() => p.child.kill('SIGKILL'), 5_000);
  await p.stop('SIGTERM');
  clearTimeout(timer);
}
