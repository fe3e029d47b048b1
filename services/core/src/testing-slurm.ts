/**
 * A real single-node Slurm for integration tests: munged (as user munge, on its own socket and
 * key), slurmctld and slurmd (as root, in the foreground) with a slurm.conf in a temp dir and
 * ports picked free. Several can run at once on one machine: nothing is shared with the system's
 * own munge or Slurm. Needs root and the packages from scripts/bootstrap (slurm-wlm, munge).
 *
 * Accounting: without slurmdbd (a database server we do not want in tests), plain `sacct` says
 * "Slurm accounting storage is disabled". `JobCompType=jobcomp/filetxt` makes `sacct -c` report
 * finished jobs (JobID, JobName, State, ExitCode, ElapsedRaw; no Comment, and it ignores --name),
 * and `scontrol show job` keeps finished jobs for MinJobAge seconds.
 */
import { execFile } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { freePort, type RunningProcess, startProcess, tempDir, waitFor } from './testing';

const run = promisify(execFile);

export interface SlurmCluster {
  /** process.env plus SLURM_CONF: pass it to every Slurm command. */
  env: NodeJS.ProcessEnv;
  partition: string;
  confDir: string;
  /** Where jobcomp/filetxt records finished jobs (what `sacct -c` reads). */
  jobcompFile: string;
  /** Stops slurmctld only; slurmd and running jobs carry on, as in a real controller outage. */
  stopController(): Promise<void>;
  /** Starts slurmctld again and waits until the node is back. `clearState` forgets every job (a controller that lost its disk). */
  startController(options?: { clearState?: boolean }): Promise<void>;
  /** Cancels what is left, stops the daemons and removes the temp dir. */
  stop(): Promise<void>;
}

const PARTITION = 'test';
const PROGRAMS = ['setpriv', 'munged', 'slurmctld', 'slurmd', 'sbatch', 'squeue', 'sacct', 'scontrol', 'scancel', 'sinfo'] as const;
type Program = (typeof PROGRAMS)[number];

export async function startSlurm(): Promise<SlurmCluster> {
  const bins = checkPrerequisites();
  const dir = tempDir('cloudlet-slurm-');
  // munged runs as user munge and must reach its socket through this directory.
  fs.chmodSync(dir, 0o755);
  const mungeDir = path.join(dir, 'munge');
  const munge = mungeIds();
  fs.mkdirSync(mungeDir, { mode: 0o755 });
  fs.chownSync(mungeDir, munge.uid, munge.gid);
  const key = path.join(mungeDir, 'munge.key');
  fs.writeFileSync(key, crypto.randomBytes(128), { mode: 0o600 });
  fs.chownSync(key, munge.uid, munge.gid);
  const socket = path.join(mungeDir, 'munge.socket');
  for (const sub of ['state', 'spool']) fs.mkdirSync(path.join(dir, sub));

  const host = os.hostname().split('.')[0] ?? 'localhost';
  const ctldPort = await freePort();
  const conf = path.join(dir, 'slurm.conf');
  const jobcompFile = path.join(dir, 'jobcomp.txt');
  fs.writeFileSync(conf, slurmConf({ dir, host, ctldPort, slurmdPort: await freePort(), socket, jobcompFile }));
  const env: NodeJS.ProcessEnv = { ...process.env, SLURM_CONF: conf };

  const processes: RunningProcess[] = [];
  let ctld: RunningProcess | undefined;
  const stopAll = async (): Promise<void> => {
    if (ctld) processes.push(ctld);
    await Promise.all(processes.reverse().map((p) => stopProcess(p)));
    processes.length = 0;
    ctld = undefined;
  };
  const startCtld = async (clearState = false): Promise<void> => {
    ctld = startProcess(bins.slurmctld, ['-D', ...(clearState ? ['-c'] : [])], { env });
    await waitForPort(ctldPort, ctld);
  };
  const nodeUp = async (): Promise<void> => {
    await waitFor(
      async () => {
        for (const p of [ctld, ...processes]) {
          if (p && p.child.exitCode !== null) throw new Error(`a Slurm daemon exited (${p.child.exitCode}):\n${p.lines.slice(-20).join('\n')}`);
        }
        const { stdout } = await run(bins.sinfo, ['-h', '-p', PARTITION, '-o', '%t'], { env, timeout: 10_000 }).catch(() => ({ stdout: '' }));
        // Up and responding (no '*'); jobs may already hold it after a controller restart.
        return /^(idle|mix|alloc|comp)$/.test(stdout.trim());
      },
      30_000,
      'the Slurm node to be up',
    );
  };

  try {
    const mungeArgs = ['-F', `--socket=${socket}`, `--key-file=${key}`, `--pid-file=${path.join(mungeDir, 'munged.pid')}`, `--log-file=${path.join(mungeDir, 'munged.log')}`, `--seed-file=${path.join(mungeDir, 'munged.seed')}`];
    const munged = startProcess(bins.setpriv, [`--reuid=${munge.uid}`, `--regid=${munge.gid}`, '--clear-groups', bins.munged, ...mungeArgs], { env });
    processes.push(munged);
    await waitFor(() => {
      if (munged.child.exitCode !== null) throw new Error(`munged exited (${munged.child.exitCode}):\n${munged.lines.join('\n')}`);
      return fs.existsSync(socket);
    }, 10_000, 'the munge socket');
    await startCtld();
    processes.push(startProcess(bins.slurmd, ['-D', '-N', host], { env }));
    await nodeUp();
  } catch (err) {
    await stopAll();
    fs.rmSync(dir, { recursive: true, force: true });
    throw err;
  }

  return {
    env,
    partition: PARTITION,
    confDir: dir,
    jobcompFile,
    async stopController() {
      if (ctld) await stopProcess(ctld);
      ctld = undefined;
    },
    async startController(options = {}) {
      if (ctld) throw new Error('slurmctld is already running');
      await startCtld(options.clearState);
      await nodeUp();
    },
    async stop() {
      // A test that failed with the controller down would otherwise leave its jobs running.
      if (!ctld) await startCtld().catch(() => undefined);
      if (ctld) {
        // slurmstepd outlives slurmd: cancel the jobs so none keeps running after the test.
        await run(bins.scancel, ['--me'], { env, timeout: 10_000 }).catch(() => undefined);
        await waitFor(async () => {
          const { stdout } = await run(bins.squeue, ['-h', '--me', '-o', '%i'], { env, timeout: 10_000 }).catch(() => ({ stdout: '' }));
          return stdout.trim() === '';
        }, 15_000, 'the jobs to end').catch(() => undefined);
      }
      await stopAll();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

interface ConfParams {
  dir: string;
  host: string;
  ctldPort: number;
  slurmdPort: number;
  socket: string;
  jobcompFile: string;
}

function slurmConf(p: ConfParams): string {
  const cpus = os.availableParallelism();
  return `${[
    'ClusterName=cloudlet-test',
    `SlurmctldHost=${p.host}(127.0.0.1)`,
    `SlurmctldPort=${p.ctldPort}`,
    `SlurmdPort=${p.slurmdPort}`,
    'AuthType=auth/munge',
    'CredType=cred/munge',
    `AuthInfo=socket=${p.socket}`,
    'SlurmUser=root',
    'SlurmdUser=root',
    `StateSaveLocation=${path.join(p.dir, 'state')}`,
    `SlurmdSpoolDir=${path.join(p.dir, 'spool')}`,
    `SlurmctldPidFile=${path.join(p.dir, 'slurmctld.pid')}`,
    `SlurmdPidFile=${path.join(p.dir, 'slurmd.pid')}`,
    'ProctrackType=proctrack/linuxproc',
    'TaskPlugin=task/none',
    'SelectType=select/cons_tres',
    'SelectTypeParameters=CR_Core',
    'JobAcctGatherType=jobacct_gather/none',
    'AccountingStorageType=accounting_storage/none',
    'JobCompType=jobcomp/filetxt',
    `JobCompLoc=${p.jobcompFile}`,
    'MpiDefault=none',
    'MailProg=/bin/true',
    'ReturnToService=2',
    // Short waits so cancels end quickly and an absent controller is reported within seconds.
    'KillWait=2',
    'MessageTimeout=5',
    'MinJobAge=300',
    `NodeName=${p.host} NodeAddr=127.0.0.1 CPUs=${cpus} State=UNKNOWN`,
    `PartitionName=${PARTITION} Nodes=${p.host} Default=YES MaxTime=INFINITE State=UP`,
  ].join('\n')}\n`;
}

function checkPrerequisites(): Record<Program, string> {
  if (process.getuid?.() !== 0) {
    throw new Error('startSlurm needs root: slurmd runs jobs as their submitter and munged must be started as user munge');
  }
  const dirs = [...(process.env.PATH ?? '').split(':'), '/usr/sbin', '/sbin', '/usr/bin'].filter(Boolean);
  const found = PROGRAMS.map((name) => [name, dirs.map((d) => path.join(d, name)).find((f) => fs.existsSync(f))] as const);
  const missing = found.filter(([, file]) => file === undefined).map(([name]) => name);
  if (missing.length > 0) throw new Error(`Slurm or munge is not installed (missing ${missing.join(', ')}): run scripts/bootstrap as root`);
  return Object.fromEntries(found) as Record<Program, string>;
}

function mungeIds(): { uid: number; gid: number } {
  const line = fs.readFileSync('/etc/passwd', 'utf8').split('\n').find((l) => l.startsWith('munge:'));
  const [, , uid, gid] = line?.split(':') ?? [];
  if (uid === undefined || gid === undefined) throw new Error('there is no user munge: run scripts/bootstrap as root (the munge package creates it)');
  return { uid: Number(uid), gid: Number(gid) };
}

async function waitForPort(port: number, owner: RunningProcess): Promise<void> {
  await waitFor(async () => {
    if (owner.child.exitCode !== null) throw new Error(`slurmctld exited (${owner.child.exitCode}):\n${owner.lines.slice(-20).join('\n')}`);
    return new Promise<boolean>((resolve) => {
      const socket = net.connect(port, '127.0.0.1');
      socket.once('connect', () => {
        socket.destroy();
        resolve(true);
      });
      socket.once('error', () => resolve(false));
    });
  }, 20_000, `slurmctld on port ${port}`);
}

async function stopProcess(p: RunningProcess): Promise<void> {
  const timer = setTimeout(() => p.child.kill('SIGKILL'), 5_000);
  await p.stop('SIGTERM');
  clearTimeout(timer);
}
